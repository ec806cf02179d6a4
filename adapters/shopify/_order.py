"""Shopify REST order, fulfilment and refund payloads -> the kit's order facts.

The rules follow platforms.md §3.5/§3.6: the e-mail from the order, then ``contact_email``,
then the customer; names from the customer, then the billing and the shipping address (guest
checkouts have no customer); dates in UTC; the locale through :mod:`kit.locale`. Nothing is
filtered here: gift cards, removed lines and refunds stay in the facts, because the policy's
exclusions and the mapping's product rules must see them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from adapters.shopify.config import ReferenceField, ShopifyConfig
from kit.domain import Consent, LineItem, OrderFacts, Refund, RefundedLine, Shipment
from kit.errors import PayloadError
from kit.locale import etrusted_locale
from kit.mapping import refunded_quantities
from kit.payload import Node, first_text

POINT_OF_SALE = "pos"
_CONSENT_STATES = {"subscribed": Consent.OPTED_IN, "unsubscribed": Consent.OPTED_OUT}


def order_facts(order: Node, config: ShopifyConfig) -> OrderFacts:
    """The facts of one order payload (``orders/*`` topics)."""
    customer = order.node("customer")
    billing = order.node("billing_address")
    shipping = order.node("shipping_address")
    placed_at = order.when("processed_at") or order.when("created_at")
    if placed_at is None:
        raise PayloadError(f"{order.path or 'order'} has neither processed_at nor created_at")
    source_name = order.text("source_name")
    refunds = tuple(refund(node) for node in order.nodes("refunds"))
    refunded = refunded_quantities(refunds)
    return OrderFacts(
        reference=_reference(order, config.reference),
        placed_at=placed_at,
        updated_at=order.when("updated_at"),
        email=first_text((order, "email"), (order, "contact_email"), (customer, "email")),
        first_name=first_text(
            (customer, "first_name"), (billing, "first_name"), (shipping, "first_name")
        ),
        last_name=first_text(
            (customer, "last_name"), (billing, "last_name"), (shipping, "last_name")
        ),
        customer_id=customer.ident("id") if customer is not None else None,
        locale=etrusted_locale(order.text("customer_locale")),
        lines=tuple(_line(line, config, refunded) for line in order.nodes("line_items")),
        refunds=refunds,
        total=order.decimal("total_price"),
        currency=order.text("currency"),
        shipping_country=_country(shipping),
        tags=split_tags(order.text("tags")),
        customer_tags=split_tags(customer.text("tags")) if customer is not None else (),
        test=order.flag("test"),
        sales_channel=source_name,
        point_of_sale=source_name == POINT_OF_SALE,
        consent=_consent(order, customer),
    )


def _reference(order: Node, field: ReferenceField) -> str:
    if field is ReferenceField.NAME:
        value = order.text("name")
    elif field is ReferenceField.ORDER_NUMBER:
        number = order.integer("order_number")
        value = None if number is None else str(number)
    else:
        value = order.ident("id")
    if value is None:
        raise PayloadError(f"the order has no {field.value} for its transaction reference")
    return value


def _line(line: Node, config: ShopifyConfig, refunded: Mapping[str, int]) -> LineItem:
    """One line, its quantity before the refunds the order lists: the policy subtracts every
    refund it knows once (:func:`kit.mapping.purchased_lines`), these and later ones alike."""
    line_id = line.required_ident("id")
    ordered = line.integer("quantity")
    # current_quantity (API 2024-01 on) is what is left after order edits AND refunds; the
    # listed refunds are added back so that they are not subtracted twice.
    current = line.integer("current_quantity")
    if current is None:
        quantity = ordered or 0
    else:
        quantity = current + refunded.get(line_id, 0)
        if ordered is not None:
            quantity = min(quantity, ordered)
    product_id = line.ident("product_id")
    if line.has("product_exists") and not line.flag("product_exists"):
        product_id = None  # a deleted product: nothing left to review
    variant_id = line.ident("variant_id")
    sku = line.text("sku")
    url = None
    if config.product_url is not None and product_id is not None:
        url = config.product_url.format(
            product_id=product_id, variant_id=variant_id or "", sku=sku or ""
        )
    return LineItem(
        line_id=line_id,
        name=line.text("title") or line.text("name") or "",
        quantity=quantity,
        product_id=product_id,
        variant_id=variant_id,
        sku=sku,
        brand=line.text("vendor"),
        url=url,
        gift_card=line.flag("gift_card"),
    )


def refund(node: Node) -> Refund:
    """One refund (a ``refunds/create`` payload or an entry of an order's ``refunds``)."""
    lines = tuple(
        RefundedLine(
            line_id=item.required_ident("line_item_id"), quantity=item.integer("quantity") or 0
        )
        for item in node.nodes("refund_line_items")
    )
    return Refund(refund_id=node.required_ident("id"), lines=lines)


def shipment(fulfilment: Node, config: ShopifyConfig) -> Shipment:
    """One fulfilment; the estimated delivery date from Shopify, else from ``transit_days``.

    Both are the shop's calendar dates: Shopify writes its times in the shop's offset.
    """
    delivery = fulfilment.local_date("estimated_delivery_at")
    if delivery is None and config.transit_days is not None:
        shipped_on = fulfilment.local_date("created_at")
        if shipped_on is not None:
            delivery = shipped_on + timedelta(days=config.transit_days)
    return Shipment(
        shipment_id=fulfilment.required_ident("id"),
        line_ids=tuple(item.required_ident("id") for item in fulfilment.nodes("line_items")),
        estimated_delivery=delivery,
        carrier=fulfilment.text("tracking_company"),
    )


def split_tags(value: str | None) -> tuple[str, ...]:
    """Shopify's comma-separated tags, trimmed, empty ones dropped, order kept."""
    if not value:
        return ()
    return tuple(tag for tag in (part.strip() for part in value.split(",")) if tag)


def _country(address: Node | None) -> str | None:
    code = address.text("country_code") if address is not None else None
    return code.upper() if code else None


def _consent(order: Node, customer: Node | None) -> Consent:
    """The customer's e-mail marketing state; the legacy ``buyer_accepts_marketing`` flag can
    only say yes (its ``false`` means "not asked" as often as "declined")."""
    marketing = customer.node("email_marketing_consent") if customer is not None else None
    state = marketing.text("state") if marketing is not None else None
    if state is not None and state.lower() in _CONSENT_STATES:
        return _CONSENT_STATES[state.lower()]
    if order.flag("buyer_accepts_marketing"):
        return Consent.OPTED_IN
    return Consent.UNKNOWN


__all__ = ["POINT_OF_SALE", "order_facts", "refund", "shipment", "split_tags"]
