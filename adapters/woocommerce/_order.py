"""WooCommerce REST v3 orders -> the kit's order facts and domain events.

A webhook (``order.created``, ``order.updated``) and the REST orders feed carry the same
order shape, so both read it here and one order becomes the same events whichever way it
came. WooCommerce sends snapshots, not transitions: the events say what the snapshot shows
(placed, paid, in a fulfilled status, cancelled, refunded), each at the time the order names
for it, and the policy folds repeated reports of one status into the earliest.

The rules follow platforms.md §7.3: e-mail and names from the billing address (names then
from the shipping address), the customer id only for registered customers (``0`` is a guest),
times from the ``*_gmt`` fields (UTC written without an offset), the locale from WPML's
``wpml_language`` meta when present. Nothing is filtered here: the policy's exclusions and the
mapping's product rules see every line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.woocommerce.config import ReferenceField, WooCommerceConfig, status_name
from kit.domain import (
    DomainEvent,
    LineItem,
    OrderCancelled,
    OrderFacts,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderUpdated,
    Refund,
)
from kit.errors import PayloadError
from kit.locale import etrusted_locale
from kit.payload import Node, first_text

CANCELLED = "cancelled"
REFUNDED = "refunded"
FULL_REFUND_ID = "status-refunded"
"""The refund id of the ``refunded`` status: the order lists its refunds without their lines,
so the status itself is the refund of everything (one id, however often it is reported)."""
LOCALE_META_KEYS = ("wpml_language",)


def order_facts(order: Node, config: WooCommerceConfig) -> OrderFacts:
    """The facts of one order (a webhook body or one element of a feed page)."""
    billing = order.node("billing")
    shipping = order.node("shipping")
    placed_at = order.when("date_created_gmt", naive_is_utc=True)
    if placed_at is None:
        raise PayloadError(f"{order.path or 'order'} has no date_created_gmt")
    customer = order.integer("customer_id")
    return OrderFacts(
        reference=_reference(order, config.reference),
        placed_at=placed_at,
        updated_at=order.when("date_modified_gmt", naive_is_utc=True),
        email=first_text((billing, "email")),
        first_name=first_text((billing, "first_name"), (shipping, "first_name")),
        last_name=first_text((billing, "last_name"), (shipping, "last_name")),
        customer_id=str(customer) if customer else None,
        locale=etrusted_locale(_meta_text(order, LOCALE_META_KEYS)),
        lines=tuple(_line(line, config) for line in order.nodes("line_items")),
        refunds=tuple(
            Refund(refund_id=refund.required_ident("id")) for refund in order.nodes("refunds")
        ),
        total=order.decimal("total"),
        currency=order.text("currency"),
        shipping_country=_country(shipping),
        sales_channel=order.text("created_via"),
    )


def order_events(
    order: Node,
    config: WooCommerceConfig,
    *,
    envelope: dict[str, Any],
    placed: bool,
) -> list[DomainEvent]:
    """The domain events one order snapshot reports.

    ``envelope`` holds the event fields of the delivery (source, platform, account, transport
    ids, topic); ``occurred_at`` and ``stream`` are added here. ``placed`` says whether the
    snapshot reports the order's creation (``order.created``; every feed read, which cannot
    tell whether the creation was seen). Without a status to report, an update is an
    :class:`OrderUpdated`, so the journal keeps the newer snapshot.
    """
    facts = order_facts(order, config)
    stream = order.required_ident("id")
    modified = facts.updated_at or facts.placed_at
    status = status_name(order.text("status") or "")

    def at(when: datetime | None) -> dict[str, Any]:
        return {**envelope, "stream": stream, "occurred_at": when or modified}

    events: list[DomainEvent] = []
    if placed:
        events.append(OrderPlaced(**at(facts.placed_at), order=facts))
    paid_at = order.when("date_paid_gmt", naive_is_utc=True)
    if paid_at is not None:
        events.append(OrderPaid(**at(paid_at), order=facts))
    if status in config.fulfilled_statuses:
        completed = order.when("date_completed_gmt", naive_is_utc=True)
        events.append(OrderFulfilled(**at(completed), order=facts))
    elif status == CANCELLED:
        events.append(OrderCancelled(**at(modified), order=facts))
    elif status == REFUNDED:
        refund = Refund(refund_id=FULL_REFUND_ID)
        events.append(OrderRefunded(**at(modified), order=facts, refund=refund, full=True))
    if not events:
        events.append(OrderUpdated(**at(modified), order=facts))
    return events


def _reference(order: Node, field: ReferenceField) -> str:
    value = order.ident("number") if field is ReferenceField.NUMBER else order.ident("id")
    if value is None:
        raise PayloadError(f"the order has no {field.value} for its transaction reference")
    return value


def _line(line: Node, config: WooCommerceConfig) -> LineItem:
    image = line.node("image")
    product_id = _positive_id(line, "product_id")  # 0: a deleted product or a custom line
    variation_id = _positive_id(line, "variation_id")
    sku = line.text("sku")
    url = None
    if config.product_url is not None and product_id is not None:
        url = config.product_url.format(
            product_id=product_id, variation_id=variation_id or "", sku=sku or ""
        )
    return LineItem(
        line_id=line.required_ident("id"),
        # A variation's name carries its attributes ("Hoodie - Blue"); a review is about the
        # product, which is what eTrusted shows.
        name=line.text("parent_name") or line.text("name") or "",
        quantity=line.integer("quantity") or 0,
        product_id=product_id,
        variant_id=variation_id,
        sku=sku,
        url=url,
        image_url=image.text("src") if image is not None else None,
    )


def _positive_id(node: Node, key: str) -> str | None:
    value = node.ident(key)
    return None if value in (None, "0") else value


def _meta_text(order: Node, keys: tuple[str, ...]) -> str | None:
    for meta in order.nodes("meta_data"):
        if meta.text("key") in keys:
            value = meta.raw("value")
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def _country(address: Node | None) -> str | None:
    code = address.text("country") if address is not None else None
    return code.upper() if code else None


__all__ = ["CANCELLED", "FULL_REFUND_ID", "REFUNDED", "order_events", "order_facts"]
