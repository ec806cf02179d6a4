"""A Recharge charge, in either payload version, -> the kit's order facts (platforms.md §6.4).

Recharge serialises a webhook in the API version the store chose, so one adapter reads both:

======================  =====================================  ==============================
fact                    2021-11                                2021-01
======================  =====================================  ==============================
e-mail                  ``customer.email``                     ``email``
first / last name       ``billing_address``, then shipping     top-level, then the addresses
customer id             ``customer.external_customer_id``      ``shopify_customer_id``, then
                        ``.ecommerce``, then ``customer.id``   ``customer_id``
Shopify order           ``external_order_id.ecommerce``        ``shopify_order_id``
line id                 ``purchase_item_id``                   ``subscription_id``
product / variant id    ``external_product_id.ecommerce`` /    ``shopify_product_id`` /
                        ``external_variant_id.ecommerce``      ``shopify_variant_id``
======================  =====================================  ==============================

Both: ``title``, ``sku``, ``quantity``, ``images.original`` (else the largest size sent) per
line; ``processed_at``, ``updated_at``, ``total_price``, ``currency``, ``tags`` (a list or a
comma-separated string) and ``shipping_address.country_code`` per charge. A payload is 2021-11
when its charge has a ``customer`` object or an ``external_order_id``.
"""

from __future__ import annotations

import enum
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo

from adapters.recharge.config import RechargeConfig
from kit.codec import parse_datetime
from kit.domain import LineItem, OrderFacts
from kit.errors import PayloadError
from kit.payload import Node, first_text

_IMAGE_SIZES = ("original", "large", "medium", "small")


class Version(enum.StrEnum):
    V2021_01 = "2021-01"
    V2021_11 = "2021-11"


def version(charge: Node) -> Version:
    """Which payload version ``charge`` follows (see the module docstring)."""
    if charge.node("customer") is not None or charge.has("external_order_id"):
        return Version.V2021_11
    return Version.V2021_01


def when(node: Node, key: str, config: RechargeConfig) -> datetime | None:
    """A Recharge timestamp in UTC; one without an offset is in the configured time zone."""
    value = node.text(key)
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        pass
    try:
        naive = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{node.path}.{key} is not an ISO 8601 date-time") from None
    zone: tzinfo = ZoneInfo(config.timezone)
    return naive.replace(tzinfo=zone) if naive.tzinfo is None else naive


def _ecommerce(node: Node, key: str) -> str | None:
    """``{key: {"ecommerce": id}}``, Recharge 2021-11's wrapper of the shop's own ids."""
    inner = node.node(key)
    return inner.ident("ecommerce") if inner is not None else None


def shopify_order_id(charge: Node) -> str | None:
    """The id of the Shopify order the charge created, if it names one."""
    if version(charge) is Version.V2021_11:
        return _ecommerce(charge, "external_order_id")
    return charge.ident("shopify_order_id")


def subscription_id(charge: Node) -> str | None:
    """What the charges of one subscription share: the lowest subscription id among the
    charge's subscription lines. Recharge bundles an address's subscriptions into one charge;
    the oldest one stays while others join or leave, so the count of renewals goes on."""
    if version(charge) is Version.V2021_11:
        ids = [
            line.ident("purchase_item_id")
            for line in charge.nodes("line_items")
            if (line.text("purchase_item_type") or "subscription").lower() == "subscription"
        ]
    else:
        ids = [line.ident("subscription_id") for line in charge.nodes("line_items")]
    known = sorted((i for i in ids if i is not None), key=lambda i: (len(i), i))
    return known[0] if known else None


def order_facts(charge: Node, config: RechargeConfig) -> OrderFacts:
    """The facts of one paid charge; the reference is the Shopify order it created, else the
    charge id."""
    v = version(charge)
    billing = charge.node("billing_address")
    shipping = charge.node("shipping_address")
    placed_at = when(charge, "processed_at", config) or when(charge, "created_at", config)
    if placed_at is None:
        raise PayloadError(f"{charge.path} has neither processed_at nor created_at")
    if v is Version.V2021_11:
        customer = charge.node("customer")
        email = customer.text("email") if customer is not None else None
        names: tuple[Node | None, ...] = (billing, shipping)
        customer_id = (
            (_ecommerce(customer, "external_customer_id") or customer.ident("id"))
            if customer is not None
            else None
        )
    else:
        email = charge.text("email")
        names = (charge, billing, shipping)
        customer_id = charge.ident("shopify_customer_id") or charge.ident("customer_id")
    country = shipping.text("country_code") if shipping is not None else None
    return OrderFacts(
        reference=shopify_order_id(charge) or charge.required_ident("id"),
        placed_at=placed_at,
        updated_at=when(charge, "updated_at", config),
        email=email,
        first_name=first_text(*((n, "first_name") for n in names)),
        last_name=first_text(*((n, "last_name") for n in names)),
        customer_id=customer_id,
        lines=tuple(
            _line(line, index, v, config) for index, line in enumerate(charge.nodes("line_items"))
        ),
        total=charge.decimal("total_price"),
        currency=charge.text("currency"),
        shipping_country=country.upper() if country else None,
        tags=_tags(charge),
    )


def _line(line: Node, index: int, v: Version, config: RechargeConfig) -> LineItem:
    if v is Version.V2021_11:
        line_id = line.ident("purchase_item_id")
        product_id = _ecommerce(line, "external_product_id")
        variant_id = _ecommerce(line, "external_variant_id")
    else:
        line_id = line.ident("subscription_id")
        product_id = line.ident("shopify_product_id")
        variant_id = line.ident("shopify_variant_id")
    sku = line.text("sku")
    handle = line.text("handle")
    url = None
    if config.product_url is not None and product_id is not None:
        url = config.product_url.format(
            handle=handle or "", product_id=product_id, variant_id=variant_id or "", sku=sku or ""
        )
    images = line.node("images")
    image = first_text(*((images, size) for size in _IMAGE_SIZES)) if images else None
    quantity = line.integer("quantity")
    return LineItem(
        line_id=line_id or f"line-{index}",
        name=line.text("title") or "",
        quantity=1 if quantity is None else quantity,
        product_id=product_id,
        variant_id=variant_id,
        sku=sku,
        url=url,
        image_url=image,
    )


def _tags(charge: Node) -> tuple[str, ...]:
    raw = charge.raw("tags")
    if raw is None:
        return ()
    if isinstance(raw, str):
        parts = raw.split(",")
    elif isinstance(raw, list) and all(isinstance(t, str) for t in raw):
        parts = raw
    else:
        raise PayloadError(f"{charge.path}.tags must be a string or an array of strings")
    return tuple(tag for tag in (part.strip() for part in parts) if tag)


__all__ = ["Version", "order_facts", "shopify_order_id", "subscription_id", "version", "when"]
