"""The kit's vocabulary of what happens in a shop, shared by every adapter and the policy.

Adapters produce :data:`DomainEvent` values (or a :class:`Skip`); the journal stores them with
:func:`dump_event` / :func:`load_event`; the policy and the mapping read them. Nothing here
knows a platform or eTrusted.
"""

from __future__ import annotations

from kit.domain.codec import dump_event, load_event
from kit.domain.events import (
    EVENT_TYPES,
    CustomerErasureRequested,
    DomainEvent,
    ErasureScope,
    OrderCancelled,
    OrderDelivered,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderUpdated,
    SubscriptionRenewed,
    order_of,
)
from kit.domain.facts import Consent, LineItem, OrderFacts, Refund, RefundedLine, Shipment, utc
from kit.domain.skip import Skip, SkipReason

__all__ = [
    "EVENT_TYPES",
    "Consent",
    "CustomerErasureRequested",
    "DomainEvent",
    "ErasureScope",
    "LineItem",
    "OrderCancelled",
    "OrderDelivered",
    "OrderFacts",
    "OrderFulfilled",
    "OrderPaid",
    "OrderPlaced",
    "OrderRefunded",
    "OrderUpdated",
    "Refund",
    "RefundedLine",
    "Shipment",
    "Skip",
    "SkipReason",
    "SubscriptionRenewed",
    "dump_event",
    "load_event",
    "order_of",
    "utc",
]
