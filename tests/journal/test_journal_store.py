"""The journal store's own operations, each a transaction of its own, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kit.adapters import DeliveryIdentity, normalise_headers
from kit.domain import OrderFacts, OrderFulfilled, OrderPlaced
from kit.journal.records import Delivery, Outcome
from kit.outbox import email_hash
from kit.policy import Note, Recorded

from .conftest import Kit, source
from .deliveries import EMAIL, KEY, NOW, ORDER_ID, SHOP, fulfilled_order, signed
from .test_ingest import deliver

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ORDER = OrderFacts(reference="#1042", placed_at=T0, email=EMAIL)


def delivery(webhook: str, event: str | None = None) -> Delivery:
    return Delivery(source="my-shop", identity=DeliveryIdentity(webhook, event), received_at=NOW)


def placed(hours: float, webhook: str) -> OrderPlaced:
    return OrderPlaced(
        source="my-shop",
        platform="shopify",
        account=SHOP,
        stream=ORDER_ID,
        occurred_at=T0 + timedelta(hours=hours),
        delivery_id=webhook,
        order=ORDER,
    )


async def test_a_delivery_is_appended_once_per_delivery_id_and_per_event_id(kit: Kit) -> None:
    journal = kit.intake.journal

    assert await journal.append(delivery("w-1", "e-1"), [placed(0, "w-1")])
    assert not await journal.append(delivery("w-1", "e-9"), [placed(0, "w-1")])
    assert not await journal.append(delivery("w-2", "e-1"), [placed(0, "w-2")])
    assert await journal.append(delivery("w-3"), [placed(0, "w-3")])
    assert await journal.append(delivery("w-4"), [placed(0, "w-4")])

    found = await journal.history("my-shop", ORDER_ID)
    assert [e.event.delivery_id if e.event else None for e in found.events] == [
        "w-1",
        "w-3",
        "w-4",
    ]


async def test_a_stream_reads_back_in_journal_order_with_its_decisions(kit: Kit) -> None:
    """Arrival order, not the time the events name: the policy folds them order-free, explain
    shows what came when."""
    journal = kit.intake.journal
    late = OrderFulfilled(
        source="my-shop",
        platform="shopify",
        account=SHOP,
        stream=ORDER_ID,
        occurred_at=T0 + timedelta(days=3),
        delivery_id="w-1",
    )
    await journal.append(delivery("w-1"), [late])
    await journal.append(delivery("w-2"), [placed(0, "w-2")])
    first = (await journal.history("my-shop", ORDER_ID)).events[0]
    note = Recorded(note=Note.NOTHING_TO_DO)
    await journal.record_decision(first.seq, "my-shop", ORDER_ID, note, Outcome.RECORDED)

    found = await journal.history("my-shop", ORDER_ID)

    assert [e.kind for e in found.events] == ["order_fulfilled", "order_placed"]
    assert [e.event for e in found.events] == [late, placed(0, "w-2")]
    assert found.events[0].seq < found.events[1].seq
    assert [(d.event_seq, d.decision, d.outcome) for d in found.decisions] == [
        (first.seq, note, Outcome.RECORDED)
    ]
    assert await journal.history("my-shop", "another-order") == type(found)()


async def test_the_customers_invites_are_found_by_email_hash_from_other_streams_only(
    kit: Kit,
) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    entry = await kit.outbox.get(KEY)
    hashed = email_hash(EMAIL)
    journal = kit.intake.journal

    assert await journal.customer_invites(hashed, source="my-shop", stream="other") == [
        entry.due_at
    ]
    assert await journal.customer_invites(hashed, source="my-shop", stream=ORDER_ID) == []
    assert await journal.customer_invites(email_hash("x@example.org"), source="s", stream="o") == []


async def test_an_ingest_reads_back_as_the_events_parsed_and_the_decisions_taken(
    kit: Kit,
) -> None:
    """The stored bodies of events and decisions read back to the very values journaled."""
    order = fulfilled_order()
    order["note"] = "Grüße, 🎁"  # text beyond ASCII, stored as it is
    headers, raw = signed(order, "orders/fulfilled", webhook_id="w-round")
    parsed = source().adapter.parse(normalise_headers(headers), raw, received_at=T0)
    result = await deliver(kit, order, "orders/fulfilled", "w-round")

    found = await kit.intake.journal.history("my-shop", ORDER_ID)
    assert [row.event for row in found.events] == list(parsed)
    assert [row.decision for row in found.decisions] == [d.decision for d in result.decisions]


async def test_the_customers_invites_leave_out_the_same_orders_invite_from_another_source(
    kit: Kit,
) -> None:
    """One order reported by two sources (a renewal from Recharge and from the shop) is one
    invite: the throttle does not hold it against the order itself."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    entry = await kit.outbox.get(KEY)
    hashed = email_hash(EMAIL)
    journal = kit.intake.journal
    same_order = KEY.removesuffix("order_shipped")
    other_order = f"shopify:{SHOP}:999:"

    assert await journal.customer_invites(hashed, source="subs", stream=ORDER_ID) == [entry.due_at]
    found = await journal.customer_invites(hashed, source="subs", stream=ORDER_ID, order=same_order)
    assert found == []
    found = await journal.customer_invites(hashed, source="subs", stream="999", order=other_order)
    assert found == [entry.due_at]
