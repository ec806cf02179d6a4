"""The GraphQL side of the Shopify feed: the orders query, its cost, and the order it returns
in the REST shape the webhook rules already read.

A GraphQL order is translated, field by field, into the shape of an ``orders/*`` webhook body
(numeric ids from the GIDs, ``shopMoney`` amounts, lower-case statuses, tags joined), so the
same functions (:mod:`adapters.shopify._order`) and the same topic handlers make its facts and
events: a fact seen by webhook and by poll cannot come out different.

Cost (Shopify's calculated query cost): an object costs 1, a scalar or enum 0, a connection or
a list with ``first`` costs 2 plus ``first`` times one element. Shopify refuses a query whose
requested cost exceeds 1,000 points, so the page size is the largest ``first`` (at most 250)
that keeps the requested cost under it with the nested limits below.
"""

from __future__ import annotations

from typing import Any

from kit.errors import PayloadError
from kit.payload import Node

MAX_PAGE = 250  # the most nodes Shopify returns per connection page
MAX_QUERY_COST = 1000  # the single-query limit of the GraphQL Admin API
# Nested limits: every one multiplies the cost of each order on the page, so they are kept to
# what a typical order has; an order with more is read with the first ones only.
LINE_ITEMS = 10
FULFILLMENTS = 2
FULFILMENT_LINES = 10
REFUNDS = 2
REFUND_LINES = 10
# The first version whose Customer has defaultEmailAddress (Customer.email is deprecated).
DEFAULT_EMAIL_SINCE = "2025-04"


def _connection(first: int, element: int) -> int:
    return 2 + first * element


def order_cost() -> int:
    """The requested cost of one order node of :func:`orders_query`."""
    objects = 1 + 2 + 2 + 2  # order; customer + its e-mail; two addresses; totalPriceSet + money
    lines = _connection(LINE_ITEMS, 1 + 1 + 1)  # line, variant, product
    fulfilment = 1 + _connection(1, 1) + _connection(FULFILMENT_LINES, 1 + 1)
    refund = 1 + _connection(REFUND_LINES, 1 + 1)
    return objects + lines + _connection(FULFILLMENTS, fulfilment) + _connection(REFUNDS, refund)


def page_size() -> int:
    """The largest ``first`` whose requested cost stays within :data:`MAX_QUERY_COST`."""
    return max(1, min(MAX_PAGE, (MAX_QUERY_COST - 2) // order_cost()))


def orders_query(api_version: str, *, with_number: bool) -> str:
    """The ``orders`` connection sorted by last change; ``$query`` filters ``updated_at``.

    Customer e-mail: ``defaultEmailAddress`` from 2025-04 on (``Customer.email`` is deprecated
    there), ``email`` before, where ``defaultEmailAddress`` does not exist yet.
    """
    if api_version >= DEFAULT_EMAIL_SINCE:
        email = "defaultEmailAddress { emailAddress marketingState }"
    else:
        email = "email emailMarketingConsent { marketingState }"
    number = "number" if with_number else ""
    return f"""query EtrustedKitOrders($first: Int!, $after: String, $query: String!) {{
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {{
    pageInfo {{ hasNextPage endCursor }}
    nodes {{
      id name {number} email createdAt processedAt updatedAt cancelledAt cancelReason test
      sourceName tags customerLocale displayFinancialStatus displayFulfillmentStatus currencyCode
      totalPriceSet {{ shopMoney {{ amount currencyCode }} }}
      customer {{ id firstName lastName tags {email} }}
      billingAddress {{ firstName lastName countryCodeV2 }}
      shippingAddress {{ firstName lastName countryCodeV2 }}
      lineItems(first: {LINE_ITEMS}) {{
        nodes {{
          id title name sku vendor quantity currentQuantity isGiftCard
          variant {{ id }} product {{ id }}
        }}
      }}
      fulfillments(first: {FULFILLMENTS}) {{
        id name status displayStatus createdAt updatedAt deliveredAt estimatedDeliveryAt
        trackingInfo(first: 1) {{ company }}
        fulfillmentLineItems(first: {FULFILMENT_LINES}) {{ nodes {{ lineItem {{ id }} }} }}
      }}
      refunds(first: {REFUNDS}) {{
        id createdAt
        refundLineItems(first: {REFUND_LINES}) {{ nodes {{ lineItem {{ id }} quantity }} }}
      }}
    }}
  }}
}}"""


def gid_number(value: str | None, path: str) -> str | None:
    """``gid://shopify/Order/123`` -> ``123`` (the id webhooks carry); None stays None."""
    if value is None:
        return None
    prefix, _, number = value.rpartition("/")
    if not prefix.startswith("gid://shopify/") or not number.isdigit():
        raise PayloadError(f"{path} is not a Shopify GID: {value!r}")
    return number


def _lower(value: str | None) -> str | None:
    return None if value is None else value.lower()


def _name(address: Node | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "first_name": address.text("firstName"),
        "last_name": address.text("lastName"),
        "country_code": address.text("countryCodeV2"),
    }


def _tags(node: Node) -> str | None:
    raw = node.raw("tags")
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise PayloadError(f"{node.path}.tags must be an array of strings")
    return ", ".join(raw)


def _ref(node: Node, key: str) -> str | None:
    """The numeric id of a nested ``{ id }`` object (``variant``, ``product``, ``lineItem``)."""
    inner = node.node(key)
    return None if inner is None else gid_number(inner.text("id"), f"{inner.path}.id")


def _nodes(node: Node, key: str) -> list[Node]:
    connection = node.node(key)
    return [] if connection is None else connection.nodes("nodes")


def _customer(node: Node | None) -> dict[str, Any] | None:
    if node is None:
        return None
    default = node.node("defaultEmailAddress")
    consent = default or node.node("emailMarketingConsent")
    state = _lower(consent.text("marketingState")) if consent is not None else None
    return {
        "id": gid_number(node.text("id"), f"{node.path}.id"),
        "email": (default.text("emailAddress") if default is not None else None)
        or node.text("email"),
        "first_name": node.text("firstName"),
        "last_name": node.text("lastName"),
        "tags": _tags(node),
        "email_marketing_consent": {"state": state} if state else None,
    }


def _line(line: Node) -> dict[str, Any]:
    product = _ref(line, "product")
    return {
        "id": gid_number(line.text("id"), f"{line.path}.id"),
        "title": line.text("title"),
        "name": line.text("name"),
        "sku": line.text("sku"),
        "vendor": line.text("vendor"),
        "quantity": line.integer("quantity"),
        "current_quantity": line.integer("currentQuantity"),
        "gift_card": line.flag("isGiftCard"),
        "variant_id": _ref(line, "variant"),
        "product_id": product,
        "product_exists": product is not None,
    }


def fulfilment(node: Node, order_id: str) -> dict[str, Any]:
    """A fulfilment in the shape of a ``fulfillments/*`` webhook body."""
    tracking = node.nodes("trackingInfo")
    delivered = _lower(node.text("displayStatus")) == "delivered"
    return {
        "id": gid_number(node.text("id"), f"{node.path}.id"),
        "order_id": order_id,
        "name": node.text("name"),
        "status": _lower(node.text("status")),
        "created_at": node.text("createdAt"),
        # When the carrier delivered: what the delivered webhook's updated_at stands for.
        "updated_at": (node.text("deliveredAt") if delivered else None) or node.text("updatedAt"),
        "estimated_delivery_at": node.text("estimatedDeliveryAt"),
        "tracking_company": tracking[0].text("company") if tracking else None,
        "shipment_status": "delivered" if delivered else None,
        "line_items": [
            {"id": _ref(item, "lineItem")} for item in _nodes(node, "fulfillmentLineItems")
        ],
    }


def refund(node: Node, order_id: str) -> dict[str, Any]:
    """A refund in the shape of a ``refunds/create`` webhook body."""
    return {
        "id": gid_number(node.text("id"), f"{node.path}.id"),
        "order_id": order_id,
        "created_at": node.text("createdAt"),
        "refund_line_items": [
            {"line_item_id": _ref(item, "lineItem"), "quantity": item.integer("quantity")}
            for item in _nodes(node, "refundLineItems")
        ],
    }


def rest_order(node: Node) -> dict[str, Any]:
    """One GraphQL order node as an ``orders/*`` webhook body (see the module docstring)."""
    order_id = gid_number(node.text("id"), f"{node.path}.id")
    if order_id is None:
        raise PayloadError(f"{node.path}.id is required")
    money = node.node("totalPriceSet")
    shop_money = money.node("shopMoney") if money is not None else None
    return {
        "id": order_id,
        "admin_graphql_api_id": node.text("id"),
        "name": node.text("name"),
        "order_number": node.integer("number"),
        "email": node.text("email"),
        "created_at": node.text("createdAt"),
        "processed_at": node.text("processedAt"),
        "updated_at": node.text("updatedAt"),
        "cancelled_at": node.text("cancelledAt"),
        "cancel_reason": _lower(node.text("cancelReason")),
        "test": node.flag("test"),
        "source_name": node.text("sourceName"),
        "tags": _tags(node),
        "customer_locale": node.text("customerLocale"),
        "financial_status": _lower(node.text("displayFinancialStatus")),
        "fulfillment_status": _lower(node.text("displayFulfillmentStatus")),
        "currency": (shop_money.text("currencyCode") if shop_money else None)
        or node.text("currencyCode"),
        "total_price": shop_money.text("amount") if shop_money is not None else None,
        "customer": _customer(node.node("customer")),
        "billing_address": _name(node.node("billingAddress")),
        "shipping_address": _name(node.node("shippingAddress")),
        "line_items": [_line(line) for line in _nodes(node, "lineItems")],
        "fulfillments": [fulfilment(f, order_id) for f in node.nodes("fulfillments")],
        "refunds": [refund(r, order_id) for r in node.nodes("refunds")],
    }


__all__ = [
    "DEFAULT_EMAIL_SINCE",
    "MAX_QUERY_COST",
    "fulfilment",
    "gid_number",
    "order_cost",
    "orders_query",
    "page_size",
    "refund",
    "rest_order",
]
