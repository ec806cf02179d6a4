"""The facts a shop event carries: who bought what, where, and what they agreed to.

These are the platform-neutral values an adapter fills in and the mapping and the policy read.
Collections are tuples, so the records stay hashable, immutable and serialise in a stable
order; money is :class:`~decimal.Decimal`, so a total survives the journal exactly. Customer
data stays out of ``repr``: these records end up in log lines and test failure output.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal

import attrs


def utc(value: datetime) -> datetime:
    """Normalise an aware datetime to UTC; a naive one is refused, never guessed."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"a naive datetime has no place in a domain event: {value!r}")
    return value.astimezone(UTC)


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


class Consent(enum.StrEnum):
    """The buyer's marketing consent as the platform reports it.

    ``UNKNOWN`` covers "never asked" and "not subscribed": only an explicit withdrawal is
    ``OPTED_OUT``, which is what the ``unless_opted_out`` consent mode relies on.
    """

    OPTED_IN = "opted_in"
    OPTED_OUT = "opted_out"
    UNKNOWN = "unknown"


@attrs.frozen(kw_only=True)
class LineItem:
    """One order line. ``quantity`` is what is still ordered after edits, before refunds.

    Gift cards and lines without a product stay in the record (the policy's gift-card-only
    exclusion must see them); the mapping decides what becomes an eTrusted product.
    """

    line_id: str
    name: str
    quantity: int = 1
    product_id: str | None = None
    variant_id: str | None = None
    sku: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    brand: str | None = None
    url: str | None = None
    image_url: str | None = None
    gift_card: bool = False


@attrs.frozen(kw_only=True)
class RefundedLine:
    """How many units of one line a refund gave back."""

    line_id: str
    quantity: int


@attrs.frozen(kw_only=True)
class Refund:
    """One refund of an order, as listed in an order snapshot."""

    refund_id: str
    lines: tuple[RefundedLine, ...] = ()


@attrs.frozen(kw_only=True)
class Shipment:
    """One fulfilment (parcel). ``line_ids`` empty means the platform did not say which."""

    shipment_id: str
    line_ids: tuple[str, ...] = ()
    estimated_delivery: date | None = None
    carrier: str | None = None


@attrs.frozen(kw_only=True)
class OrderFacts:
    """A snapshot of an order (or a renewal's order) as the platform last described it.

    ``reference`` is the merchant-visible transaction reference the adapter chose (for Shopify
    the order ``name`` by default); ``locale`` is already an eTrusted ``ll_CC`` locale or
    ``None`` (see :mod:`kit.locale`); ``updated_at`` is the platform's version of the snapshot,
    so the newest snapshot wins however the deliveries were ordered.
    """

    reference: str
    placed_at: datetime = attrs.field(converter=utc)
    updated_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    email: str | None = attrs.field(default=None, repr=False)
    first_name: str | None = attrs.field(default=None, repr=False)
    last_name: str | None = attrs.field(default=None, repr=False)
    customer_id: str | None = None
    locale: str | None = None
    lines: tuple[LineItem, ...] = ()
    refunds: tuple[Refund, ...] = ()
    total: Decimal | None = None
    currency: str | None = None
    shipping_country: str | None = None  # ISO 3166-1 alpha-2, upper case
    tags: tuple[str, ...] = ()
    customer_tags: tuple[str, ...] = ()
    test: bool = False
    sales_channel: str | None = None  # the platform's own word (Shopify ``source_name``)
    point_of_sale: bool = False
    consent: Consent = Consent.UNKNOWN


__all__ = [
    "Consent",
    "LineItem",
    "OrderFacts",
    "Refund",
    "RefundedLine",
    "Shipment",
    "utc",
]
