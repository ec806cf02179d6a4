"""The one-transaction ingest: a Shopify delivery in, the journal and the outbox agree after.

Every test checks both the outbox and the journal, on memory, a SQLite file and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from kit.adapters import DeliveryIdentity
from kit.domain import OrderFacts, OrderFulfilled, SkipReason
from kit.errors import OutboxMovedError
from kit.journal.records import IngestStatus, Outcome, StreamHistory
from kit.outbox.types import KEY_MARKER, State
from kit.policy import Skipped

from .conftest import Kit, deliver, history, outcomes, skus, source
from .deliveries import (
    CHANNEL,
    EMAIL,
    KEY,
    ORDER_ID,
    SHIPPED_AT,
    SHOP,
    cancelled_order,
    fulfilled_order,
    payload,
)


async def test_a_fulfilled_order_becomes_one_invite_with_the_mapped_body(kit: Kit) -> None:
    """An order's first fulfilment puts one invite into the outbox, keyed per shop, order and
    event type, held back by the trigger's delay, and the journal shows why."""
    result = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")

    assert result.status is IngestStatus.ACCEPTED
    assert result.enqueued == (KEY,)
    entry = await kit.outbox.get(KEY)
    assert entry.state is State.PENDING
    assert entry.due_at == (SHIPPED_AT + timedelta(days=3)).timestamp()
    body = entry.body()
    assert body is not None
    assert body["type"] == "order_shipped"
    assert body["channel"]["id"] == CHANNEL
    assert body["customer"]["email"] == EMAIL
    assert body["transaction"]["reference"] == "#1042"
    assert skus(body) == ["SOCK-MER-3942-GR", "HAT-MER-GR"]
    assert body["metadata"][KEY_MARKER] == KEY
    assert body["metadata"]["account"] == SHOP
    found = await history(kit)
    assert [e.kind for e in found.events] == ["order_fulfilled"]
    assert outcomes(found) == [("enqueue", "enqueued")]
    assert found.waiting == frozenset({KEY})


async def test_a_redelivered_webhook_is_recorded_once(kit: Kit) -> None:
    """Shopify retries with the same webhook id: the retry is a duplicate and changes nothing."""
    first = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    again = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")

    assert first.status is IngestStatus.ACCEPTED
    assert again.status is IngestStatus.DUPLICATE
    assert again.decisions == ()
    found = await history(kit)
    assert len(found.events) == 1
    assert outcomes(found) == [("enqueue", "enqueued")]
    assert (await kit.outbox.stats()).counts[State.PENDING] == 1


async def test_one_event_through_two_subscriptions_is_recorded_once(kit: Kit) -> None:
    """Two webhook ids, one platform event id: the second delivery is a duplicate."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", event_id="e-1")
    second = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-2", event_id="e-1")

    assert second.status is IngestStatus.DUPLICATE
    assert len((await history(kit)).events) == 1


async def test_a_cancellation_inside_the_hold_back_cancels_the_waiting_invite(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    result = await deliver(kit, cancelled_order(), "orders/cancelled", "w-2")

    assert [(d.decision.kind, d.outcome.value) for d in result.decisions] == [
        ("cancel", "cancelled")
    ]
    assert (await kit.outbox.get(KEY)).state is State.CANCELLED
    found = await history(kit)
    assert outcomes(found) == [("enqueue", "enqueued"), ("cancel", "cancelled")]
    assert found.waiting == frozenset()


async def test_a_cancellation_after_the_invite_was_claimed_is_recorded_and_undoes_nothing(
    kit: Kit,
) -> None:
    """Once a flusher claimed the entry its POST may have reached eTrusted: the cancellation
    is journaled as already sent and the entry is left alone."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    entry = await kit.outbox.get(KEY)
    claimed = await kit.storage.claim(owner="f", limit=10, lease_seconds=60, now=entry.due_at)
    assert [c.key for c in claimed] == [KEY]

    result = await deliver(kit, cancelled_order(), "orders/cancelled", "w-2")

    assert [(d.decision.kind, d.outcome.value) for d in result.decisions] == [
        ("recorded", "already_sent")
    ]
    after = await kit.outbox.get(KEY)
    assert after.state is State.SENDING
    assert after.payload == entry.payload
    assert outcomes(await history(kit))[-1] == ("recorded", "already_sent")


async def test_a_partial_refund_drops_the_refunded_product_from_the_waiting_invite(
    kit: Kit,
) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    before = await kit.outbox.get(KEY)
    refund = payload("refund_create")
    refund["refund_line_items"][0]["quantity"] = 2  # both pairs of socks go back

    result = await deliver(kit, refund, "refunds/create", "w-2")

    assert [(d.decision.kind, d.outcome.value) for d in result.decisions] == [("amend", "amended")]
    after = await kit.outbox.get(KEY)
    assert after.state is State.PENDING
    assert skus(after.body()) == ["HAT-MER-GR"]
    assert after.due_at == before.due_at
    assert after.payload_sha256 != before.payload_sha256
    assert outcomes(await history(kit))[-1] == ("amend", "amended")


async def test_the_per_customer_throttle_holds_across_orders(kit: Kit) -> None:
    """A second order of the same customer within the window gets no second invite."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", per_customer="30d")
    other = "5560001000777"
    result = await deliver(
        kit, fulfilled_order(other), "orders/fulfilled", "w-2", per_customer="30d"
    )

    assert [(d.decision.kind, d.outcome.value) for d in result.decisions] == [
        ("throttled", "recorded")
    ]
    assert (await kit.outbox.stats()).counts[State.PENDING] == 1
    assert outcomes(await history(kit, other)) == [("throttled", "recorded")]


async def test_a_withdrawn_invite_does_not_throttle_the_next_order(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", per_customer="30d")
    await deliver(kit, cancelled_order(), "orders/cancelled", "w-2", per_customer="30d")
    other = "5560001000777"
    result = await deliver(
        kit, fulfilled_order(other), "orders/fulfilled", "w-3", per_customer="30d"
    )

    assert [d.outcome.value for d in result.decisions] == ["enqueued"]


async def test_a_stale_delivery_does_not_undo_the_newer_state(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    old = fulfilled_order()
    old["updated_at"] = "2025-03-02T08:00:00+01:00"
    old["fulfillments"] = []
    old["fulfillment_status"] = None

    result = await deliver(kit, old, "orders/updated", "w-2")

    assert [(d.decision.kind, d.outcome.value) for d in result.decisions] == [("stale", "recorded")]
    entry = await kit.outbox.get(KEY)
    assert entry.state is State.PENDING
    assert skus(entry.body()) == ["SOCK-MER-3942-GR", "HAT-MER-GR"]


async def test_a_test_order_is_journaled_as_skipped_and_enqueues_nothing(kit: Kit) -> None:
    order = fulfilled_order()
    order["test"] = True

    result = await deliver(kit, order, "orders/fulfilled", "w-1")

    assert result.status is IngestStatus.ACCEPTED
    assert [(d.decision.kind, d.outcome.value) for d in result.decisions] == [
        ("skipped", "recorded")
    ]
    assert await kit.storage.get(KEY) is None
    assert outcomes(await history(kit)) == [("skipped", "recorded")]


async def test_a_delivery_the_adapter_skips_is_journaled_once_with_its_reason(kit: Kit) -> None:
    body = payload("customers_data_request")
    result = await deliver(kit, body, "customers/data_request", "w-1")
    again = await deliver(kit, body, "customers/data_request", "w-1")

    assert result.status is IngestStatus.SKIPPED
    assert result.skip is not None
    assert result.skip.reason.value == "data_request"
    assert again.status is IngestStatus.DUPLICATE


async def test_a_delivery_that_cannot_be_stored_leaves_nothing_behind(kit: Kit) -> None:
    """A failed transaction records neither the delivery nor its events, so the platform's
    retry (it got no 2xx) is taken in as new, not turned away as a duplicate."""
    await kit.storage.set_moved("postgresql://elsewhere/shop")
    with pytest.raises(OutboxMovedError):
        await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    assert await history(kit) == StreamHistory()
    await kit.storage.set_moved(None)

    retry = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")

    assert retry.status is IngestStatus.ACCEPTED
    assert retry.enqueued == (KEY,)


async def test_text_no_database_stores_is_cleaned_and_the_order_still_invited(kit: Kit) -> None:
    """A signed order may escape a NUL or half a surrogate pair into its strings. Neither
    PostgreSQL nor SQLite can store that text; the order is still journaled and invited, the NUL
    dropped and the lone surrogate shown as U+FFFD, on every backend."""
    order = fulfilled_order()
    order["line_items"][0]["title"] = "Merino\u0000 Socken"
    order["customer"]["last_name"] = "Muster\ud800"

    result = await deliver(kit, order, "orders/fulfilled", "w-1")

    assert result.enqueued == (KEY,)
    body = (await kit.outbox.get(KEY)).body()
    assert body is not None
    assert body["customer"]["lastName"] == "Muster\ufffd"
    assert body["products"][0]["name"] == "Merino Socken"
    assert outcomes(await history(kit)) == [("enqueue", "enqueued")]


async def test_an_invite_whose_body_breaks_the_etrusted_rules_is_skipped_and_journaled(
    kit: Kit,
) -> None:
    """The delivery is still accepted (a retry would fail the same way); the journal names the
    fields, never their values."""
    order = OrderFacts(reference="   ", placed_at=SHIPPED_AT, email=EMAIL)
    shipped = OrderFulfilled(
        source="my-shop",
        platform="shopify",
        account=SHOP,
        stream=ORDER_ID,
        occurred_at=SHIPPED_AT,
        delivery_id="w-1",
        order=order,
    )

    result = await kit.intake.ingest(source(), DeliveryIdentity("w-1"), [shipped])

    (journaled,) = result.decisions
    assert journaled.outcome is Outcome.INVALID
    assert journaled.decision == Skipped(
        key=KEY, reason=SkipReason.INVALID_EVENT, detail="fields: transaction.reference"
    )
    assert await kit.storage.get(KEY) is None
    assert outcomes(await history(kit)) == [("skipped", "invalid")]


async def test_a_delivery_with_several_events_journals_each_and_decides_in_order(
    kit: Kit,
) -> None:
    """An order listing two shipments is one delivery and two events: the first shipment
    enqueues the invite, the second sees that decision and adds nothing."""
    order = fulfilled_order()
    second = dict(order["fulfillments"][0], id=6200002, created_at="2025-03-04T15:00:00+01:00")
    order["fulfillments"].append(second)

    result = await deliver(kit, order, "orders/fulfilled", "w-1")

    assert [(d.decision.kind, d.outcome.value) for d in result.decisions] == [
        ("enqueue", "enqueued"),
        ("recorded", "recorded"),
    ]
    found = await history(kit)
    assert [e.kind for e in found.events] == ["order_fulfilled", "order_fulfilled"]
    assert [d.event_seq for d in found.decisions] == [e.seq for e in found.events]
    assert (await kit.outbox.stats()).counts[State.PENDING] == 1
