"""Builders for one order's domain events, and a journal stand-in that feeds the policy.

The stand-in does what the real journal will: keeps the stream's events and decisions in
arrival order and tells the policy which keys still wait (enqueued, not cancelled, not sent).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from kit.domain import (
    DomainEvent,
    LineItem,
    OrderCancelled,
    OrderDelivered,
    OrderFacts,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderUpdated,
    Refund,
    RefundedLine,
    Shipment,
)
from kit.policy import Amend, Cancel, Decision, Enqueue, History, PolicyConfig, decide

SHOP = "kit-demo.myshopify.com"
STREAM = "5560001000001"
CHANNEL = "chl-00000000-0000-4000-8000-000000000001"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
KEY = f"shopify:{SHOP}:{STREAM}:order_shipped"

SOCKS = LineItem(
    line_id="1", name="Socks", quantity=2, product_id="p1", sku="SOCK", url="https://x.example/1"
)
HAT = LineItem(
    line_id="2", name="Hat", quantity=1, product_id="p2", sku="HAT", url="https://x.example/2"
)
GIFT_CARD = LineItem(line_id="3", name="Gift card", quantity=1, product_id="p3", gift_card=True)

ORDER = OrderFacts(
    reference="#1042",
    placed_at=T0,
    updated_at=T0,
    email="erika.muster@example.org",
    first_name="Erika",
    last_name="Muster",
    customer_id="7010000000042",
    locale="de_DE",
    lines=(SOCKS, HAT),
    total=Decimal("59.80"),
    currency="EUR",
    shipping_country="DE",
    sales_channel="web",
)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def order(**changes: Any) -> OrderFacts:
    return attrs.evolve(ORDER, **changes)


def _envelope(kind: str, when: datetime, delivery: str | None) -> dict[str, Any]:
    return {
        "source": "my-shop",
        "platform": "shopify",
        "account": SHOP,
        "stream": STREAM,
        "occurred_at": when,
        "delivery_id": delivery or f"{kind}@{when.isoformat()}",
    }


def placed(days: float = 0, facts: OrderFacts = ORDER) -> OrderPlaced:
    return OrderPlaced(**_envelope("placed", at(days), None), order=facts)


def paid(days: float = 0.1, facts: OrderFacts = ORDER) -> OrderPaid:
    return OrderPaid(**_envelope("paid", at(days), None), order=facts)


def updated(days: float, facts: OrderFacts = ORDER) -> OrderUpdated:
    """A snapshot whose version is its time: newer snapshots win however they arrive."""
    return OrderUpdated(
        **_envelope("updated", at(days), None), order=attrs.evolve(facts, updated_at=at(days))
    )


def fulfilled(
    days: float = 3,
    shipment: str = "s1",
    facts: OrderFacts | None = ORDER,
    estimated: date | None = None,
) -> OrderFulfilled:
    parcel = Shipment(shipment_id=shipment, estimated_delivery=estimated)
    return OrderFulfilled(
        **_envelope(f"fulfilled-{shipment}", at(days), None), order=facts, shipment=parcel
    )


def delivered(days: float = 5, shipment: str = "s1") -> OrderDelivered:
    return OrderDelivered(
        **_envelope(f"delivered-{shipment}", at(days), None),
        shipment=Shipment(shipment_id=shipment),
    )


def cancelled(days: float = 4) -> OrderCancelled:
    return OrderCancelled(**_envelope("cancelled", at(days), None), reason="customer")


def refunded(
    days: float = 4,
    lines: tuple[tuple[str, int], ...] = (),
    *,
    full: bool = False,
    refund: str = "r1",
) -> OrderRefunded:
    return OrderRefunded(
        **_envelope(f"refund-{refund}", at(days), None),
        refund=Refund(
            refund_id=refund, lines=tuple(RefundedLine(line_id=i, quantity=q) for i, q in lines)
        ),
        full=full,
    )


@attrs.define
class Journal:
    """One stream, fed event by event, as the intake will do it."""

    config: PolicyConfig
    customer_invites: tuple[datetime, ...] = ()
    events: list[DomainEvent] = attrs.Factory(list)
    decisions: list[Decision] = attrs.Factory(list)
    sent: set[str] = attrs.Factory(set)

    def waiting(self) -> frozenset[str]:
        enqueued = {d.key for d in self.decisions if isinstance(d, Enqueue)}
        withdrawn = {d.key for d in self.decisions if isinstance(d, Cancel)}
        return frozenset(enqueued - withdrawn - self.sent)

    def feed(self, event: DomainEvent) -> list[Decision]:
        history = History(
            events=tuple(self.events),
            decisions=tuple(self.decisions),
            waiting=self.waiting(),
            customer_invites=self.customer_invites,
        )
        out = decide(self.config, history, event)
        self.events.append(event)
        self.decisions.extend(out)
        return out

    def feed_all(self, *events: DomainEvent) -> list[Decision]:
        """Feed every event; the decisions of the last one."""
        out: list[Decision] = []
        for event in events:
            out = self.feed(event)
        return out

    def entry(self, key: str = KEY) -> tuple[bool, tuple[LineItem, ...], datetime] | None:
        """The outbox entry the decisions amount to: (live, products, send_after)."""
        state: tuple[bool, tuple[LineItem, ...], datetime] | None = None
        for d in self.decisions:
            if getattr(d, "key", None) != key:
                continue
            if isinstance(d, Enqueue):
                state = (True, d.facts.products, d.send_after)
            elif isinstance(d, Amend) and state is not None:
                state = (state[0], d.products, d.send_after)
            elif isinstance(d, Cancel) and state is not None:
                state = (False, state[1], state[2])
        return state


def config(**changes: Any) -> PolicyConfig:
    return PolicyConfig(channel_id=CHANNEL, **changes)
