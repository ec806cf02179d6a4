"""The per-customer throttle through the intake: at most one invite per e-mail address within
``per_customer``, across the customer's orders. (One order throttled by an earlier one, and a
withdrawn invite that throttles nothing, are in ``test_ingest.py``.)"""

from __future__ import annotations

from datetime import timedelta

from kit.outbox.types import State
from kit.policy import Throttled

from .conftest import Kit, decided, deliver, history, outcomes
from .deliveries import (
    SHIPPED_AT,
    SHOP,
    cancelled_order,
    delivered_fulfilment,
    fulfilled_order,
    shipped_at,
    updated,
)

OTHER = "5560001000777"
OTHER_KEY = f"shopify:{SHOP}:{OTHER}:order_shipped"
FIRST_INVITE_AT = SHIPPED_AT + timedelta(days=3)


async def test_the_throttle_names_the_invite_it_defers_to(kit: Kit) -> None:
    """The second order's decision is journaled with its own key and the time of the invite
    that throttled it; the address compares without case."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", per_customer="30d")
    second = shipped_at(
        fulfilled_order(OTHER, email="Erika.Muster@EXAMPLE.org"), SHIPPED_AT + timedelta(days=10)
    )

    result = await deliver(kit, second, "orders/fulfilled", "w-2", per_customer="30d")

    assert decided(result) == [("throttled", "recorded")]
    assert result.decisions[0].decision == Throttled(key=OTHER_KEY, last_invite_at=FIRST_INVITE_AT)
    assert await kit.storage.get(OTHER_KEY) is None
    found = await history(kit, OTHER)
    assert outcomes(found) == [("throttled", "recorded")]
    assert found.decisions[0].key == OTHER_KEY


async def test_an_order_after_the_window_gets_its_invite(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", per_customer="30d")
    later = shipped_at(fulfilled_order(OTHER), SHIPPED_AT + timedelta(days=31))

    result = await deliver(kit, later, "orders/fulfilled", "w-2", per_customer="30d")

    assert decided(result) == [("enqueue", "enqueued")]
    entry = await kit.outbox.get(OTHER_KEY)
    assert entry.state is State.PENDING
    assert entry.due_at == (SHIPPED_AT + timedelta(days=34)).timestamp()
    assert (await kit.outbox.stats()).counts[State.PENDING] == 2


async def test_another_customer_is_not_throttled(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", per_customer="30d")
    result = await deliver(
        kit,
        fulfilled_order(OTHER, email="max.muster@example.org"),
        "orders/fulfilled",
        "w-2",
        per_customer="30d",
    )

    assert decided(result) == [("enqueue", "enqueued")]
    assert (await kit.outbox.get(OTHER_KEY)).state is State.PENDING


async def test_a_throttled_order_stays_without_an_invite(kit: Kit) -> None:
    """Throttled is final: later news of that order (a new snapshot, the delivery) and even the
    withdrawal of the invite that throttled it enqueue nothing for it."""
    trigger = {"per_customer": "30d"}
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", **trigger)
    second = shipped_at(fulfilled_order(OTHER), SHIPPED_AT + timedelta(days=1))
    await deliver(kit, second, "orders/fulfilled", "w-2", **trigger)
    newer = updated(
        shipped_at(fulfilled_order(OTHER), SHIPPED_AT + timedelta(days=1)),
        SHIPPED_AT + timedelta(days=2),
    )
    newer["tags"] = "gift"

    for n, (body, topic) in enumerate(
        [(newer, "orders/updated"), (delivered_fulfilment(OTHER), "fulfillments/update")]
    ):
        result = await deliver(kit, body, topic, f"w-later-{n}", **trigger)
        assert decided(result) == [("recorded", "recorded")]

    withdrawn = await deliver(kit, cancelled_order(), "orders/cancelled", "w-cancel", **trigger)
    assert decided(withdrawn) == [("cancel", "cancelled")]
    newest = updated(newer, SHIPPED_AT + timedelta(days=3))
    result = await deliver(kit, newest, "orders/updated", "w-newest", **trigger)
    assert decided(result) == [("recorded", "recorded")]

    assert await kit.storage.get(OTHER_KEY) is None
    assert outcomes(await history(kit, OTHER)) == [
        ("throttled", "recorded"),
        ("recorded", "recorded"),
        ("recorded", "recorded"),
        ("recorded", "recorded"),
    ]
