"""The POST cutoff: a scope past its deadline (on the event loop's clock, or a wall-clock bound
that comes first) raises TimeoutError, as ``asyncio.timeout`` would, and the scopes of one
deadline share one timer."""

from __future__ import annotations

import asyncio

import pytest

from kit.flusher.cutoff import Deadlines

NOW = 1_000_000.0
SOON = 0.05  # seconds until a deadline that is meant to pass
GUARD = 10.0  # a test that hangs fails instead


def fixed_clock() -> float:
    return NOW


def soon() -> float:
    """A deadline on the running loop's clock, SOON from now."""
    return asyncio.get_running_loop().time() + SOON


async def test_a_scope_past_its_deadline_raises_timeout_and_leaves_the_task_uncancelled() -> None:
    deadlines = Deadlines(fixed_clock)
    async with asyncio.timeout(GUARD):
        with pytest.raises(TimeoutError), deadlines.cut_off_at(soon()) as cutoff:
            await asyncio.Event().wait()
    assert cutoff.expired
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_a_scope_left_in_time_is_not_cut_off_later() -> None:
    deadlines = Deadlines(fixed_clock)
    with deadlines.cut_off_at(soon()) as cutoff:
        await asyncio.sleep(0)
    # Past the deadline now: the timer was cancelled when the scope was left.
    await asyncio.sleep(SOON * 3)
    assert not cutoff.expired


async def test_scopes_of_one_deadline_expire_together() -> None:
    deadlines = Deadlines(fixed_clock)
    entered = 0
    all_in = asyncio.Event()
    deadline = soon()

    async def post() -> str:
        nonlocal entered
        try:
            with deadlines.cut_off_at(deadline):
                entered += 1
                if entered == 3:
                    all_in.set()
                await asyncio.Event().wait()
        except TimeoutError:
            return "cut off"
        return "answered"

    async with asyncio.timeout(GUARD):
        results = await asyncio.gather(post(), post(), post())
    assert all_in.is_set()
    assert list(results) == ["cut off"] * 3


async def test_one_scope_leaving_does_not_cancel_the_others_timer() -> None:
    deadlines = Deadlines(fixed_clock)
    inside = asyncio.Event()
    deadline = soon()

    async def waits() -> str:
        try:
            with deadlines.cut_off_at(deadline):
                inside.set()
                await asyncio.Event().wait()
        except TimeoutError:
            return "cut off"
        return "answered"

    async with asyncio.timeout(GUARD):
        task = asyncio.create_task(waits())
        await inside.wait()
        with deadlines.cut_off_at(deadline):  # joins the same deadline, then leaves early
            await asyncio.sleep(0)
        assert await task == "cut off"


async def test_a_deadline_already_past_cuts_off_at_the_first_await() -> None:
    deadlines = Deadlines(fixed_clock)
    past = asyncio.get_running_loop().time() - 1.0
    async with asyncio.timeout(GUARD):
        with pytest.raises(TimeoutError), deadlines.cut_off_at(past):
            await asyncio.Event().wait()


async def test_a_wall_clock_that_says_the_deadline_is_far_off_does_not_delay_it() -> None:
    """The deadline counts on the loop's clock: a wall clock stepped back since the lease was
    claimed (it says an hour is left) does not hold the cutoff off."""
    deadlines = Deadlines(fixed_clock)
    async with asyncio.timeout(GUARD):
        with pytest.raises(TimeoutError), deadlines.cut_off_at(soon(), NOW + 3600.0):
            await asyncio.Event().wait()


async def test_a_wall_clock_bound_that_comes_first_cuts_off_first() -> None:
    """A wall clock stepped forward since the claim ends the lease earlier, for the other
    flushers as for this one: the scope is cut off at the wall-clock bound."""
    deadlines = Deadlines(fixed_clock)
    far = asyncio.get_running_loop().time() + 3600.0
    async with asyncio.timeout(GUARD):
        with pytest.raises(TimeoutError), deadlines.cut_off_at(far, NOW + SOON):
            await asyncio.Event().wait()


async def test_a_cancel_from_outside_goes_on_even_when_the_deadline_passed_too() -> None:
    """A stop that abandons the POSTs in flight must not be turned into a timeout (the
    flusher records an abandoned POST as in doubt, and a timeout as a result)."""
    deadlines = Deadlines(fixed_clock)
    cut_off = asyncio.Event()

    async def post() -> None:
        with deadlines.cut_off_at(soon()) as cutoff:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                assert cutoff.expired
                cut_off.set()
                await asyncio.Event().wait()  # still cleaning up when the stop comes

    async with asyncio.timeout(GUARD):
        task = asyncio.create_task(post())
        await cut_off.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
