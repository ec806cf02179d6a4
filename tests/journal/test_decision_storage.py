"""An invite decision is stored without the order's facts, which its events already hold, and
is read back whole: with the order the policy decided on."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kit.domain import OrderFacts, OrderPlaced
from kit.errors import ValidationError
from kit.journal import Intake
from kit.journal.records import StreamHistory
from kit.journal.rows import decision_reader
from kit.mapping import BodyFacts
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.policy import Enqueue, dump_decision, load_decision

from .conftest import Clock, Kit, deliver, history, source
from .deliveries import EMAIL, fulfilled_order, payload, signed


def enqueued(found: StreamHistory) -> Enqueue:
    (decision,) = [d.decision for d in found.decisions if isinstance(d.decision, Enqueue)]
    assert isinstance(decision, Enqueue)
    return decision


async def test_an_invite_reads_back_as_the_policy_decided_it(kit: Kit) -> None:
    """The journal's Enqueue equals the one the ingest carried out, order facts and all."""
    result = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")

    (carried,) = [d.decision for d in result.decisions]
    found = await history(kit)
    assert enqueued(found) == carried
    assert enqueued(found).facts.order.email == EMAIL


async def test_an_invite_takes_the_order_of_the_event_the_policy_folded_to(kit: Kit) -> None:
    """A fulfilment carries no order: the invite's order is the one an earlier delivery
    brought, and that is what the journal reads back."""
    await deliver(kit, payload("order_fulfilled"), "orders/create", "w-1")
    result = await deliver(kit, payload("fulfillment_create"), "fulfillments/create", "w-2")

    (carried,) = [d.decision for d in result.decisions]
    assert isinstance(carried, Enqueue)
    found = await history(kit)
    placed = found.events[0].event
    assert isinstance(placed, OrderPlaced)
    assert enqueued(found) == carried
    assert enqueued(found).facts.order == placed.order


async def test_the_invite_row_holds_no_copy_of_the_order(tmp_path: Path) -> None:
    """The event row has the customer's facts; the decision row only what the invite adds."""
    clock = Clock()
    path = tmp_path / "outbox.db"
    async with Outbox(SQLiteStorage(path), clock=clock) as outbox:
        intake = Intake(outbox, clock=clock)
        await intake.ingest_raw(
            source(), *signed(fulfilled_order(), "orders/fulfilled", webhook_id="w-1")
        )
    with sqlite3.connect(path) as db:
        (body,) = db.execute(
            "SELECT body FROM etk_journal_decisions WHERE kind = 'enqueue'"
        ).fetchone()
        (event_body,) = db.execute("SELECT body FROM etk_journal_events").fetchone()
    stored = json.loads(body)
    assert "order" not in stored["facts"]
    assert [p["sku"] for p in stored["facts"]["products"]]
    assert EMAIL not in body
    assert EMAIL in event_body


def test_a_decision_stored_with_its_order_is_read_as_it_is() -> None:
    """Rows written before the order was left out read back unchanged, events or not."""
    enqueue = _an_enqueue()
    read = decision_reader(())
    assert read(1, json.dumps(dump_decision(enqueue))) == enqueue


def test_an_invite_without_its_events_fails_loudly() -> None:
    """No event to fold the order from is a broken journal, not an invite without a customer."""
    body = json.dumps(dump_decision(_an_enqueue(), order=False))
    with pytest.raises(ValidationError, match="order"):
        decision_reader(())(1, body)


def _an_enqueue() -> Enqueue:
    order = OrderFacts(reference="#1001", placed_at=datetime(2025, 3, 1, tzinfo=UTC), email=EMAIL)
    return Enqueue(
        key="shopify:shop:1001:order_shipped",
        event_type="order_shipped",
        channel_id="chl-1",
        facts=BodyFacts(platform="shopify", account="shop", stream="1001", order=order),
        send_after=datetime(2025, 3, 4, tzinfo=UTC),
    )


def test_an_invite_without_its_order_is_the_whole_invite_less_the_order() -> None:
    """The short form differs from the codec's in the order alone, and reads back whole."""
    enqueue = _an_enqueue()
    whole = dump_decision(enqueue)
    del whole["facts"]["order"]
    assert dump_decision(enqueue, order=False) == whole
    assert load_decision(whole, order=enqueue.facts.order) == enqueue
