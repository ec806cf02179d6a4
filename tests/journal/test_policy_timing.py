"""When an invite is sent, through the intake: the hold-back by segment (domestic,
international, point of sale) and the delivered trigger with its fallback.

Each test shows the journaled decision and the outbox entry's ``send_after`` (its ``due_at``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from kit.domain import SkipReason
from kit.outbox.types import State
from kit.policy import Amend, Enqueue, Trigger

from .conftest import Kit, decided, deliver, history, outcomes
from .deliveries import (
    DELIVERED_AT,
    KEY,
    SHIPPED_AT,
    delivered_fulfilment,
    fulfilled_order,
)

SEGMENTED = {
    "delay": "3d",
    "delay_international": "10d",
    "delay_pos": "2d",
}
HOME = {"home_countries": ["DE", "AT"]}


def shipped_to(country: str | None, *, source_name: str = "web") -> dict[str, Any]:
    order = fulfilled_order()
    order["source_name"] = source_name
    if country is None:
        order.pop("shipping_address")
    else:
        order["shipping_address"]["country_code"] = country
    return order


@pytest.mark.parametrize(
    ("order", "hold_back"),
    [
        pytest.param(shipped_to("DE"), timedelta(days=3), id="domestic"),
        pytest.param(shipped_to("at"), timedelta(days=3), id="domestic-lower-case"),
        pytest.param(shipped_to("US"), timedelta(days=10), id="international"),
        pytest.param(shipped_to(None, source_name="pos"), timedelta(days=2), id="pos"),
        pytest.param(shipped_to("US", source_name="pos"), timedelta(days=2), id="pos-abroad"),
    ],
)
async def test_the_hold_back_follows_the_orders_segment(
    kit: Kit, order: dict[str, Any], hold_back: timedelta
) -> None:
    """Domestic orders wait ``delay``, orders shipped outside ``home_countries`` wait
    ``delay_international``, point-of-sale orders ``delay_pos`` (before any other segment)."""
    result = await deliver(kit, order, "orders/fulfilled", "w-1", policy=HOME, **SEGMENTED)

    assert decided(result) == [("enqueue", "enqueued")]
    (journaled,) = result.decisions
    assert isinstance(journaled.decision, Enqueue)
    assert journaled.decision.key == KEY
    assert journaled.decision.send_after == SHIPPED_AT + hold_back
    entry = await kit.outbox.get(KEY)
    assert entry.state is State.PENDING
    assert entry.due_at == (SHIPPED_AT + hold_back).timestamp()
    assert outcomes(await history(kit)) == [("enqueue", "enqueued")]


async def test_without_home_countries_no_order_is_international(kit: Kit) -> None:
    result = await deliver(kit, shipped_to("US"), "orders/fulfilled", "w-1", **SEGMENTED)

    assert decided(result) == [("enqueue", "enqueued")]
    assert (await kit.outbox.get(KEY)).due_at == (SHIPPED_AT + timedelta(days=3)).timestamp()


DELIVERY_KEY = KEY.replace("order_shipped", "delivery")


def on_delivery(**settings: Any) -> dict[str, Any]:
    trigger = Trigger(on="order_delivered", event_type="delivery", delay="2d", **settings)
    return {"triggers": (trigger,)}


async def test_on_delivery_the_invite_waits_for_the_carriers_report(kit: Kit) -> None:
    """Without a fallback a fulfilment alone sends nothing; the delivery report enqueues the
    invite, held back from the delivery, with the delivery date as its estimated one."""
    shipped = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", policy=on_delivery())

    assert decided(shipped) == [("recorded", "recorded")]
    assert await kit.storage.get(DELIVERY_KEY) is None

    arrived = await deliver(
        kit, delivered_fulfilment(), "fulfillments/update", "w-2", policy=on_delivery()
    )

    assert decided(arrived) == [("enqueue", "enqueued")]
    entry = await kit.outbox.get(DELIVERY_KEY)
    assert entry.state is State.PENDING
    assert entry.due_at == (DELIVERED_AT + timedelta(days=2)).timestamp()
    body = entry.body()
    assert body is not None
    assert body["type"] == "delivery"
    assert body["estimatedDeliveryDate"] == DELIVERED_AT.date().isoformat()
    assert outcomes(await history(kit)) == [("recorded", "recorded"), ("enqueue", "enqueued")]


async def test_on_delivery_the_fallback_sends_when_no_delivery_is_reported(kit: Kit) -> None:
    policy = on_delivery(delivered_fallback="14d")
    result = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", policy=policy)

    assert decided(result) == [("enqueue", "enqueued")]
    (journaled,) = result.decisions
    assert isinstance(journaled.decision, Enqueue)
    assert journaled.decision.send_after == SHIPPED_AT + timedelta(days=14)
    entry = await kit.outbox.get(DELIVERY_KEY)
    assert entry.due_at == (SHIPPED_AT + timedelta(days=14)).timestamp()
    assert outcomes(await history(kit)) == [("enqueue", "enqueued")]


async def test_a_delivery_reported_while_the_fallback_waits_brings_the_invite_forward(
    kit: Kit,
) -> None:
    """The same invite, now timed from the delivery: amended in place, never a second one, and
    the body ends as it would have had the delivery come first."""
    policy = on_delivery(delivered_fallback="14d")
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", policy=policy)

    result = await deliver(kit, delivered_fulfilment(), "fulfillments/update", "w-2", policy=policy)

    assert decided(result) == [("amend", "amended")]
    (journaled,) = result.decisions
    assert isinstance(journaled.decision, Amend)
    assert journaled.decision.send_after == DELIVERED_AT + timedelta(days=2)
    entry = await kit.outbox.get(DELIVERY_KEY)
    assert entry.state is State.PENDING
    assert entry.due_at == (DELIVERED_AT + timedelta(days=2)).timestamp()
    body = entry.body()
    assert body is not None
    assert body["estimatedDeliveryDate"] == date(2025, 3, 6).isoformat()
    assert (await kit.outbox.stats()).counts[State.PENDING] == 1
    assert outcomes(await history(kit)) == [("enqueue", "enqueued"), ("amend", "amended")]


async def test_a_delivery_report_before_any_order_snapshot_waits_for_one(kit: Kit) -> None:
    """fulfillments/update carries no order: the trigger fires, is skipped for want of the
    order's facts, and the first delivery that describes the order enqueues the invite, still
    timed from the delivery."""
    arrived = await deliver(
        kit, delivered_fulfilment(), "fulfillments/update", "w-1", policy=on_delivery()
    )

    assert [(d.decision.kind, getattr(d.decision, "reason", None)) for d in arrived.decisions] == [
        ("skipped", SkipReason.NO_ORDER_FACTS)
    ]
    assert await kit.storage.get(DELIVERY_KEY) is None

    described = await deliver(
        kit, fulfilled_order(), "orders/fulfilled", "w-2", policy=on_delivery()
    )

    assert decided(described) == [("enqueue", "enqueued")]
    entry = await kit.outbox.get(DELIVERY_KEY)
    assert entry.due_at == (DELIVERED_AT + timedelta(days=2)).timestamp()
    assert outcomes(await history(kit)) == [("skipped", "recorded"), ("enqueue", "enqueued")]
