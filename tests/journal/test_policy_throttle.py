"""The per-customer throttle through the intake: at most one invite per e-mail address within
``per_customer``, across the customer's orders. (One order throttled by an earlier one, and a
withdrawn invite that throttles nothing, are in ``test_ingest.py``.)"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

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


FAR = "5560001000999"
NEAR = "5560001000888"


@pytest.mark.parametrize(
    "order", list(itertools.permutations(["far", "near", "nearer"])), ids="-".join
)
async def test_every_other_invite_counts_not_only_the_newest(
    kit: Kit, order: tuple[str, ...]
) -> None:
    """Two invites within ``per_customer`` of each other are never both enqueued, whatever the
    order they are decided in, even when another invite of the customer is due further off
    (a longer hold-back): the later-decided one is throttled, naming the invite it defers to."""
    orders = {
        "far": (shipped_at(fulfilled_order(FAR), SHIPPED_AT), "60d"),
        "near": (shipped_at(fulfilled_order(NEAR), SHIPPED_AT), "3d"),
        "nearer": (shipped_at(fulfilled_order(OTHER), SHIPPED_AT + timedelta(days=1)), "3d"),
    }
    invite_at = {
        "far": SHIPPED_AT + timedelta(days=60),
        "near": SHIPPED_AT + timedelta(days=3),
        "nearer": SHIPPED_AT + timedelta(days=4),
    }
    results = {}
    for name in order:
        body, delay = orders[name]
        results[name] = await deliver(
            kit, body, "orders/fulfilled", f"w-{name}", delay=delay, per_customer="30d"
        )

    first, second = (name for name in order if name != "far")
    assert decided(results["far"]) == [("enqueue", "enqueued")]
    assert decided(results[first]) == [("enqueue", "enqueued")]
    assert decided(results[second]) == [("throttled", "recorded")]
    assert results[second].decisions[0].decision.last_invite_at == invite_at[first]
    assert (await kit.outbox.stats()).counts[State.PENDING] == 2
