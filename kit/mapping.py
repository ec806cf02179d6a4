"""Domain facts -> the eTrusted event body: written once, for every adapter.

Adapters know nothing of eTrusted and the policy decides only *whether* and *when*; this module
decides *what* eTrusted hears, so every platform sends the same shape:

* ``customer``: the e-mail, first and last name, and the platform's customer id as
  ``reference`` (left out for guests, never ``"0"``). Phone and address are never sent: an
  invite does not need them (data minimisation).
* ``transaction``: the merchant-visible reference and the order's placement time (UTC).
* ``defaultLocale``: only when the adapter could place it (an absent one falls back to the
  channel's locale, a wrong one sends the invite in the wrong language).
* ``products``: what the buyer still has (:func:`reviewable_lines`) and eTrusted can show; a
  product needs a name, SKU and URL, so a line without them is left out rather than refused.
* ``metadata``: where the event came from (platform, account, stream, currency), strings only.

The body is built through :class:`kit.models.Event`, so it has exactly the wire shape the
outbox validates and the client sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

import attrs

from kit.domain import LineItem, OrderFacts, Refund
from kit.errors import FieldError, ValidationError
from kit.models import ChannelType, Customer, Event, EventChannel, Product, Transaction


@attrs.frozen(kw_only=True)
class BodyFacts:
    """Everything an eTrusted body is built from, as the policy settled it.

    ``products`` are the lines the invite is about, already without refunded or excluded ones;
    the policy stores this record with its decision, so the journal shows what was sent.
    """

    platform: str
    account: str
    stream: str
    order: OrderFacts
    products: tuple[LineItem, ...] = ()
    estimated_delivery_date: date | None = None


def refunded_quantities(refunds: Iterable[Refund]) -> dict[str, int]:
    """Units refunded per line id; a refund listed twice (a snapshot and its own webhook)
    counts once."""
    seen: set[str] = set()
    totals: dict[str, int] = {}
    for refund in refunds:
        if refund.refund_id in seen:
            continue
        seen.add(refund.refund_id)
        for line in refund.lines:
            totals[line.line_id] = totals.get(line.line_id, 0) + line.quantity
    return totals


def purchased_lines(order: OrderFacts, refunds: Iterable[Refund] = ()) -> tuple[LineItem, ...]:
    """Lines the buyer still has: not removed, not fully refunded (gift cards included)."""
    refunded = refunded_quantities((*order.refunds, *refunds))
    return tuple(line for line in order.lines if line.quantity - refunded.get(line.line_id, 0) > 0)


def reviewable_lines(order: OrderFacts, refunds: Iterable[Refund] = ()) -> tuple[LineItem, ...]:
    """Purchased lines a review can be about: no gift cards, no deleted or custom products,
    one line per product (variants of one product are one product to review)."""
    out: list[LineItem] = []
    products: set[str] = set()
    for line in purchased_lines(order, refunds):
        if line.gift_card or line.product_id is None or line.product_id in products:
            continue
        products.add(line.product_id)
        out.append(line)
    return tuple(out)


def _product(line: LineItem) -> Product | None:
    if not (line.name and line.sku and line.url):
        return None
    return Product(
        name=line.name,
        sku=line.sku,
        url=line.url,
        gtin=line.gtin,
        image_url=line.image_url,
        mpn=line.mpn,
        brand=line.brand,
    )


def _products(lines: Sequence[LineItem]) -> list[Product] | None:
    products = [p for p in (_product(line) for line in lines) if p is not None]
    return products or None


def metadata(facts: BodyFacts) -> dict[str, str]:
    """Where the event came from, so a stored eTrusted event leads back to its order."""
    out = {"platform": facts.platform, "account": facts.account, "stream": facts.stream}
    if facts.order.currency:
        out["currency"] = facts.order.currency
    return out


def event_body(
    facts: BodyFacts,
    *,
    event_type: str,
    channel_id: str,
    system: str,
    system_version: str,
) -> dict[str, Any]:
    """The camelCase body of ``POST /events`` for one invite.

    Raises :class:`~kit.errors.ValidationError` for an order without an e-mail: the policy
    skips those (``no_email``), so reaching here without one is a caller's mistake.
    """
    order = facts.order
    if not order.email:
        raise ValidationError([FieldError("customer.email", "is required")], subject="event")
    event = Event(
        type=event_type,
        customer=Customer(
            email=order.email,
            first_name=order.first_name,
            last_name=order.last_name,
            reference=order.customer_id,
        ),
        channel=EventChannel(id=channel_id, type=ChannelType.ETRUSTED),
        transaction=Transaction(reference=order.reference, date=order.placed_at),
        system=system,
        system_version=system_version,
        default_locale=order.locale,
        estimated_delivery_date=facts.estimated_delivery_date,
        products=_products(facts.products),
        metadata=metadata(facts),
    )
    return event.to_body()


__all__ = [
    "BodyFacts",
    "event_body",
    "metadata",
    "purchased_lines",
    "refunded_quantities",
    "reviewable_lines",
]
