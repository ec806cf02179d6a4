"""A stream's state, folded from its events in any order: the policy's view of one order.

Webhooks arrive late, twice and out of order, so nothing here depends on arrival order:

* the order's facts are the newest snapshot (by the platform's ``updated_at``, then by when the
  event happened, then by delivery id, so ties break the same way every time);
* a status is the earliest time any event reported it (fulfilled, delivered, ...);
* cancelled and refunded only ever become true: an older delivery cannot undo them;
* refunds are collected by refund id, so one listed in a snapshot and sent as its own webhook
  counts once.

Folding the same events in any order, with any repetitions, gives an equal state; the policy's
decisions are differences between such states and what earlier decisions already did.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import attrs

from kit.domain import (
    CustomerErasureRequested,
    DomainEvent,
    OrderCancelled,
    OrderDelivered,
    OrderFacts,
    OrderFulfilled,
    OrderRefunded,
    Refund,
    Shipment,
    SubscriptionRenewed,
    order_of,
)
from kit.mapping import purchased_lines


@attrs.frozen(kw_only=True)
class Happened:
    """The earliest report of one status: when, and the shipment it named (if any)."""

    at: datetime
    shipment: Shipment | None = None


@attrs.frozen(kw_only=True)
class StreamState:
    order: OrderFacts | None = None
    first: dict[str, Happened] = attrs.Factory(dict)  # domain event kind -> earliest report
    refunds: tuple[Refund, ...] = ()
    refunded_in_full: bool = False
    disputed: bool = False  # a dispute took the money back
    newest_at: datetime | None = None  # the latest occurred_at of any event
    charge: SubscriptionRenewed | None = None  # the subscription charge this stream is

    @property
    def cancelled(self) -> bool:
        return OrderCancelled.kind in self.first

    @property
    def fully_refunded(self) -> bool:
        """Said so by the platform, or nothing the buyer bought is left after the refunds."""
        if self.refunded_in_full or self.disputed:
            return True
        order = self.order
        return bool(order and order.lines and not purchased_lines(order, self.refunds))

    def earliest(self, *kinds: str) -> Happened | None:
        reports = [self.first[kind] for kind in kinds if kind in self.first]
        return min(reports, key=_report_order, default=None)


def _report_order(report: Happened) -> tuple[datetime, str]:
    return report.at, report.shipment.shipment_id if report.shipment else ""


def _snapshot_order(event: DomainEvent) -> tuple[datetime, datetime, str]:
    order = order_of(event)
    version = order.updated_at if order is not None and order.updated_at else event.occurred_at
    return version, event.occurred_at, event.delivery_id


def fold(events: Iterable[DomainEvent]) -> StreamState:
    """The state of a stream after ``events`` (any order, repeats allowed)."""
    snapshot: DomainEvent | None = None
    first: dict[str, Happened] = {}
    refunds: dict[str, Refund] = {}
    refunded_in_full = False
    disputed = False
    newest_at: datetime | None = None
    charges: list[SubscriptionRenewed] = []
    for event in events:
        if isinstance(event, SubscriptionRenewed):
            charges.append(event)
        newest_at = event.occurred_at if newest_at is None else max(newest_at, event.occurred_at)
        if order_of(event) is not None and (
            snapshot is None or _snapshot_order(event) > _snapshot_order(snapshot)
        ):
            snapshot = event
        if isinstance(event, CustomerErasureRequested):
            continue
        shipment = event.shipment if isinstance(event, OrderFulfilled | OrderDelivered) else None
        report = Happened(at=event.occurred_at, shipment=shipment)
        known = first.get(event.kind)
        if known is None or _report_order(report) < _report_order(known):
            first[event.kind] = report
        if isinstance(event, OrderRefunded):
            refunds.setdefault(event.refund.refund_id, event.refund)
            refunded_in_full = refunded_in_full or event.full
            disputed = disputed or event.disputed
    order = order_of(snapshot) if snapshot is not None else None
    if order is not None:
        for refund in order.refunds:
            refunds.setdefault(refund.refund_id, refund)
    return StreamState(
        order=order,
        first=first,
        refunds=tuple(refunds[key] for key in sorted(refunds)),
        refunded_in_full=refunded_in_full,
        disputed=disputed,
        newest_at=newest_at,
        charge=_charge(charges),
    )


def _charge(reports: list[SubscriptionRenewed]) -> SubscriptionRenewed | None:
    """The earliest report of the stream's charge, completed from the others.

    One renewal may be reported twice on one stream with different knowledge: Shopify's order
    webhook knows when the renewal's order was placed, its billing attempt which contract it
    renewed. The charge keeps the earliest report's time and takes the subscription, the
    renewal number and the start from the earliest report that names each.
    """
    if not reports:
        return None
    ordered = sorted(reports, key=lambda e: (e.occurred_at, e.delivery_id))
    first = ordered[0]
    return attrs.evolve(
        first,
        subscription=next((e.subscription for e in ordered if e.subscription), None),
        renewal=next((e.renewal for e in ordered if e.renewal is not None), None),
        started_at=next((e.started_at for e in ordered if e.started_at is not None), None),
    )


__all__ = ["Happened", "StreamState", "fold"]
