"""A status an order enters twice, or goes back through, never makes a second invite: checked
through the intake, where each repeat is its own signed delivery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kit.outbox.types import State
from kit.policy import Trigger

from .conftest import Kit, decided, deliver, history, outcomes
from .deliveries import KEY, SHIPPED_AT, fulfilled_order, payload, shipped_at, updated


async def pending_count(kit: Kit) -> int:
    return (await kit.outbox.stats()).counts[State.PENDING]


async def test_a_shipment_reported_by_every_topic_makes_one_invite(kit: Kit) -> None:
    """orders/fulfilled, fulfillments/create and a second orders/fulfilled (another
    subscription, another event id) all report the same parcel: one entry, timed from it."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    entry = await kit.outbox.get(KEY)

    again = [
        (payload("fulfillment_create"), "fulfillments/create", "w-2"),
        (updated(fulfilled_order(), SHIPPED_AT + timedelta(hours=2)), "orders/fulfilled", "w-3"),
    ]
    for body, topic, webhook_id in again:
        result = await deliver(kit, body, topic, webhook_id)
        assert decided(result) == [("recorded", "recorded")]

    after = await kit.outbox.get(KEY)
    assert (after.state, after.due_at, after.payload) == (
        State.PENDING,
        entry.due_at,
        entry.payload,
    )
    assert await pending_count(kit) == 1
    found = await history(kit)
    assert len(found.events) == 3
    assert outcomes(found) == [
        ("enqueue", "enqueued"),
        ("recorded", "recorded"),
        ("recorded", "recorded"),
    ]


async def test_an_order_paid_twice_makes_one_invite(kit: Kit) -> None:
    """With ``on = "order_paid"``: a second orders/paid for the same order finds the key
    enqueued and adds nothing; the invite stays timed from the first payment."""
    trigger = Trigger(on="order_paid", event_type="order_paid", delay="3d")
    policy = {"triggers": (trigger,)}
    key = KEY.replace("order_shipped", "order_paid")
    first = updated(fulfilled_order(), SHIPPED_AT)
    await deliver(kit, first, "orders/paid", "w-1", policy=policy)
    second = updated(fulfilled_order(), SHIPPED_AT + timedelta(days=1))

    result = await deliver(kit, second, "orders/paid", "w-2", policy=policy)

    assert decided(result) == [("recorded", "recorded")]
    entry = await kit.outbox.get(key)
    assert entry.due_at == (SHIPPED_AT + timedelta(days=3)).timestamp()
    assert await pending_count(kit) == 1
    assert outcomes(await history(kit)) == [("enqueue", "enqueued"), ("recorded", "recorded")]


def refulfilled() -> dict[str, Any]:
    """The order shipped again in a new parcel, a day after the first."""
    order = fulfilled_order()
    parcel = dict(order["fulfillments"][0], id=6200009)
    order["fulfillments"] = [parcel]
    return shipped_at(order, SHIPPED_AT + timedelta(days=1))


def unfulfilled() -> dict[str, Any]:
    """A newer snapshot: the fulfilment was cancelled, the order is unfulfilled again."""
    order = updated(fulfilled_order(), SHIPPED_AT + timedelta(hours=12))
    order["fulfillments"] = []
    order["fulfillment_status"] = None
    return order


async def test_an_order_that_goes_back_through_fulfilled_keeps_its_one_waiting_invite(
    kit: Kit,
) -> None:
    """Unfulfilled and shipped again while the invite waits: the same entry, still timed
    from the first shipment."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    entry = await kit.outbox.get(KEY)

    back = await deliver(kit, unfulfilled(), "orders/updated", "w-2")
    again = await deliver(kit, refulfilled(), "orders/fulfilled", "w-3")

    assert decided(back) == [("recorded", "recorded")]
    assert decided(again) == [("recorded", "recorded")]
    after = await kit.outbox.get(KEY)
    assert (after.state, after.due_at) == (State.PENDING, entry.due_at)
    assert await pending_count(kit) == 1


async def test_an_order_that_goes_back_through_fulfilled_after_its_invite_left_gets_no_second(
    kit: Kit,
) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    entry = await kit.outbox.get(KEY)
    await kit.storage.claim(owner="f", limit=10, lease_seconds=60, now=entry.due_at)

    await deliver(kit, unfulfilled(), "orders/updated", "w-2")
    result = await deliver(kit, refulfilled(), "orders/fulfilled", "w-3")

    assert decided(result) == [("recorded", "recorded")]
    assert [e.key for e in await kit.storage.entries()] == [KEY]
    assert (await kit.outbox.get(KEY)).state is State.SENDING
    assert outcomes(await history(kit)) == [
        ("enqueue", "enqueued"),
        ("recorded", "recorded"),
        ("recorded", "recorded"),
    ]


async def test_a_partly_then_fully_fulfilled_order_is_invited_once_from_its_first_parcel(
    kit: Kit,
) -> None:
    first = fulfilled_order()
    await deliver(kit, first, "orders/partially_fulfilled", "w-1")
    both = fulfilled_order()
    later = dict(both["fulfillments"][0], id=6200002, created_at="2025-03-05T15:00:00+01:00")
    both["fulfillments"].append(later)
    both["updated_at"] = "2025-03-05T15:00:01+01:00"

    result = await deliver(kit, both, "orders/fulfilled", "w-2")

    assert decided(result) == [("recorded", "recorded"), ("recorded", "recorded")]
    entry = await kit.outbox.get(KEY)
    assert entry.due_at == (SHIPPED_AT + timedelta(days=3)).timestamp()
    assert await pending_count(kit) == 1
