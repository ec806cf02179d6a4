"""Domain events: what happened in a shop, in the kit's own words.

An adapter turns a platform delivery into these; the journal stores them; the policy reads a
stream's events to decide what eTrusted should hear. They say what happened, never what to do
about it, so the same event can feed different policies. Every event names where it came from
(``platform``/``account``/``source``), the stream it belongs to (the platform's order,
subscription or customer id), when it happened in the shop (``occurred_at``, UTC), and the
platform's transport ids, which the journal uses to record a redelivery once. An event that
the platform sends naming only a payment, not the order it paid, can still find its stream by
an id that stream's own events recorded (``aliases`` and ``link``).

Events that a platform sends without the order (a Shopify fulfilment or refund webhook) carry
``order=None``; the policy folds the stream's newest snapshot in from earlier events.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

import attrs

from kit.domain.facts import OrderFacts, Refund, Shipment, _optional_utc, utc


@attrs.frozen(kw_only=True)
class _Envelope:
    """Fields every domain event carries (private: use :data:`DomainEvent` in signatures)."""

    kind: ClassVar[str]

    source: str  # the merchant's configured source name
    platform: str  # the stream's platform: the adapter's name, e.g. ``shopify``
    account: str  # the platform tenant, e.g. ``kit-demo.myshopify.com``
    stream: str  # the platform's order, subscription or customer id
    occurred_at: datetime = attrs.field(converter=utc)
    delivery_id: str  # transport id; a retry of the same delivery repeats it
    event_id: str | None = None  # the platform's event id; two subscriptions repeat it
    topic: str | None = None  # the platform's name for what it sent, for ``explain``
    # Other platform ids that name this stream (a Stripe invoice's charge and payment intent),
    # so that a later event knowing only one of them finds the stream: see ``link``.
    aliases: tuple[str, ...] = ()
    # Ids of the stream this event belongs to, when the platform did not name that stream: the
    # journal moves the event to the newest stream of its source whose events listed one of
    # them in ``aliases``. ``stream`` is where it stays when none did.
    link: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class OrderPlaced(_Envelope):
    kind: ClassVar[str] = "order_placed"
    order: OrderFacts


@attrs.frozen(kw_only=True)
class OrderPaid(_Envelope):
    kind: ClassVar[str] = "order_paid"
    order: OrderFacts


@attrs.frozen(kw_only=True)
class OrderUpdated(_Envelope):
    """A new snapshot of the order with no status change the platform named."""

    kind: ClassVar[str] = "order_updated"
    order: OrderFacts


@attrs.frozen(kw_only=True)
class OrderFulfilled(_Envelope):
    """One shipment left (or the order was marked fulfilled without shipment detail)."""

    kind: ClassVar[str] = "order_fulfilled"
    order: OrderFacts | None = None
    shipment: Shipment | None = None


@attrs.frozen(kw_only=True)
class OrderDelivered(_Envelope):
    """A carrier reported one shipment delivered."""

    kind: ClassVar[str] = "order_delivered"
    order: OrderFacts | None = None
    shipment: Shipment | None = None


@attrs.frozen(kw_only=True)
class OrderCancelled(_Envelope):
    kind: ClassVar[str] = "order_cancelled"
    order: OrderFacts | None = None
    reason: str | None = None


@attrs.frozen(kw_only=True)
class OrderRefunded(_Envelope):
    """Money went back. ``full`` only when the platform said the whole order is refunded;
    otherwise the policy weighs the refund's lines against the order's lines. ``disputed``:
    the buyer disputed the charge, which the policy names as its own reason."""

    kind: ClassVar[str] = "order_refunded"
    refund: Refund
    full: bool = False
    disputed: bool = False  # the buyer's bank took the money back (a chargeback), in full
    order: OrderFacts | None = None


@attrs.frozen(kw_only=True)
class SubscriptionRenewed(_Envelope):
    """A subscription charged again; ``order`` describes what was renewed.

    ``order`` is ``None`` when the platform reports the renewal without it (a Shopify billing
    attempt names only the order it created); the order's own webhooks fill it in.

    The stream is the renewal's own charge (a Stripe invoice, or the shop order a renewal
    created: see :mod:`kit.renewals`), so a refund of that charge lands on it. ``renewal`` 0 is
    the charge that started the subscription (the first purchase), 1 the first renewal; ``None``
    when the platform does not count, and the journal counts the subscription's earlier charges
    instead (:mod:`kit.policy.renewals`).
    """

    kind: ClassVar[str] = "subscription_renewed"
    order: OrderFacts | None = None
    renewal: int | None = None
    order_stream: str | None = None  # the order the renewal created, if any
    subscription: str | None = None  # the platform's subscription id: what charges share
    started_at: datetime | None = attrs.field(default=None, converter=_optional_utc)


class ErasureScope(enum.StrEnum):
    CUSTOMER = "customer"  # erase one customer's data
    ACCOUNT = "account"  # the merchant left: erase everything of the account


@attrs.frozen(kw_only=True)
class CustomerErasureRequested(_Envelope):
    """The platform asks for a customer's (or a whole account's) data to be erased."""

    kind: ClassVar[str] = "customer_erasure_requested"
    scope: ErasureScope = ErasureScope.CUSTOMER
    customer_id: str | None = None
    email: str | None = attrs.field(default=None, repr=False)
    order_streams: tuple[str, ...] = ()


DomainEvent = (
    OrderPlaced
    | OrderPaid
    | OrderUpdated
    | OrderFulfilled
    | OrderDelivered
    | OrderCancelled
    | OrderRefunded
    | SubscriptionRenewed
    | CustomerErasureRequested
)

EVENT_TYPES: tuple[type[DomainEvent], ...] = (
    OrderPlaced,
    OrderPaid,
    OrderUpdated,
    OrderFulfilled,
    OrderDelivered,
    OrderCancelled,
    OrderRefunded,
    SubscriptionRenewed,
    CustomerErasureRequested,
)
"""Every concrete domain event class; their ``kind`` values are unique and stable."""


def order_of(event: DomainEvent) -> OrderFacts | None:
    """The order snapshot an event carries, if any (erasure requests carry none)."""
    if isinstance(event, CustomerErasureRequested):
        return None
    return event.order


__all__ = [
    "EVENT_TYPES",
    "CustomerErasureRequested",
    "DomainEvent",
    "ErasureScope",
    "OrderCancelled",
    "OrderDelivered",
    "OrderFulfilled",
    "OrderPaid",
    "OrderPlaced",
    "OrderRefunded",
    "OrderUpdated",
    "SubscriptionRenewed",
    "order_of",
]
