"""The hand-off of claims to workers: items come out in order, each to one taker, and none is
lost when a woken taker is cancelled before it takes its item."""

from __future__ import annotations

import asyncio

import pytest

from kit.flusher.handoff import Handoff

GUARD = 10.0  # a test that hangs fails instead


async def test_items_are_taken_in_order_each_once() -> None:
    handoff: Handoff[int] = Handoff()
    for i in range(3):
        handoff.put(i)
    assert [await handoff.take() for _ in range(3)] == [0, 1, 2]
    assert handoff.take_all() == []


async def test_a_waiting_taker_gets_the_next_item() -> None:
    handoff: Handoff[str] = Handoff()
    async with asyncio.timeout(GUARD):
        taker = asyncio.create_task(handoff.take())
        await asyncio.sleep(0)
        handoff.put("claim")
        assert await taker == "claim"


async def test_a_woken_taker_that_is_cancelled_passes_its_item_on() -> None:
    handoff: Handoff[str] = Handoff()
    async with asyncio.timeout(GUARD):
        first = asyncio.create_task(handoff.take())
        second = asyncio.create_task(handoff.take())
        await asyncio.sleep(0)
        handoff.put("claim")  # wakes the first taker ...
        first.cancel()  # ... which leaves before it takes the item
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await second == "claim"


async def test_a_cancelled_taker_no_longer_waits() -> None:
    handoff: Handoff[str] = Handoff()
    async with asyncio.timeout(GUARD):
        gone = asyncio.create_task(handoff.take())
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        handoff.put("claim")
        assert await handoff.take() == "claim"


async def test_take_all_empties_it_in_order() -> None:
    handoff: Handoff[int] = Handoff()
    for i in range(3):
        handoff.put(i)
    assert handoff.take_all() == [0, 1, 2]
    assert handoff.take_all() == []
