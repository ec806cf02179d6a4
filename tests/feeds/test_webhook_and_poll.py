"""An order that reaches the kit by webhook and by poll, in either order or at the same time,
makes one outbox entry: the journal holds both facts and one enqueue decision."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from journal.deliveries import KEY, ORDER_ID, payload, signed

from kit.feeds import FeedWindow
from kit.journal import StreamHistory

from .conftest import FeedKit
from .orders import FIXTURE_NODE, SOURCE

WINDOW = FeedWindow(since=datetime(2025, 3, 1, tzinfo=UTC))


async def _webhook(kit: FeedKit) -> None:
    headers, raw = signed(payload("order_fulfilled"), "orders/fulfilled", webhook_id="wh-1")
    await kit.intake.ingest_raw(kit.source().intake, headers, raw)


async def _poll(kit: FeedKit) -> None:
    await kit.runner().backfill(WINDOW)


async def _one_entry_two_facts_one_decision(kit: FeedKit) -> StreamHistory:
    assert await kit.entries() == [KEY]
    history = await kit.intake.journal.history(SOURCE, ORDER_ID)
    fulfilled = [r.event for r in history.events if r.kind == "order_fulfilled"]
    assert {e.delivery_id.split(":")[0] for e in fulfilled if e is not None} == {"wh-1", "poll"}
    enqueues = [r for r in history.decisions if r.kind == "enqueue"]
    assert len(enqueues) == 1
    assert enqueues[0].key == KEY
    assert not [r for r in history.decisions if r.kind in ("amend", "cancel", "skipped")]
    return history


@pytest.fixture(autouse=True)
def _order(feed_kit: FeedKit) -> None:
    feed_kit.stand_in.put(FIXTURE_NODE)


async def test_webhook_then_poll(feed_kit: FeedKit) -> None:
    await _webhook(feed_kit)
    await _poll(feed_kit)
    await _one_entry_two_facts_one_decision(feed_kit)


async def test_poll_then_webhook(feed_kit: FeedKit) -> None:
    await _poll(feed_kit)
    await _webhook(feed_kit)
    await _one_entry_two_facts_one_decision(feed_kit)


async def test_webhook_and_poll_at_the_same_time(feed_kit: FeedKit) -> None:
    await asyncio.gather(_webhook(feed_kit), _poll(feed_kit))
    await _one_entry_two_facts_one_decision(feed_kit)


async def test_the_entry_waits_out_the_hold_back_from_the_shipment(feed_kit: FeedKit) -> None:
    """Whichever came first, the entry is due three days after the parcel left."""
    await _poll(feed_kit)
    await _webhook(feed_kit)
    entry = await feed_kit.outbox.storage.get(KEY)
    assert entry is not None
    shipped = datetime(2025, 3, 4, 10, 14, 58, tzinfo=UTC).timestamp()
    assert entry.due_at == shipped + 3 * 86400
