"""The Shopify feed turns a GraphQL order into the same domain events, streams and keys as the
order's webhooks, so a fact seen both ways folds into one decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from journal.deliveries import SHOP, payload, signed

from adapters.shopify import ShopifyAdapter
from adapters.shopify._graphql import (
    MAX_QUERY_COST,
    gid_number,
    order_cost,
    orders_query,
    page_size,
)
from adapters.shopify.feed import ShopifyFeed
from kit.adapters import normalise_headers
from kit.domain import DomainEvent, OrderCancelled, OrderFulfilled, OrderPaid, OrderPlaced
from kit.errors import ConfigError, PayloadError
from kit.feeds import FeedOrder, FeedWindow

from .orders import FIXTURE_NODE, SOURCE, fixture_node, shopify_config


def _page(*nodes: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "data": {
                "orders": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "nodes": nodes}
            },
            "extensions": {
                "cost": {
                    "requestedQueryCost": 989,
                    "actualQueryCost": 30,
                    "throttleStatus": {
                        "maximumAvailable": 2000.0,
                        "currentlyAvailable": 1970.0,
                        "restoreRate": 100.0,
                    },
                }
            },
        }
    ).encode()


def _read(node: dict[str, Any], **keys: Any) -> FeedOrder:
    feed = ShopifyFeed(source=SOURCE, config=shopify_config(**keys))
    page = feed._page(200, None, _page(node))
    (listed,) = page.orders
    return listed if isinstance(listed, FeedOrder) else listed.read()


def _webhook(body: dict[str, Any], topic: str) -> list[DomainEvent]:
    adapter = ShopifyAdapter(source=SOURCE, config=shopify_config())
    headers, raw = signed(body, topic, webhook_id="wh-1")
    parsed = adapter.parse(
        normalise_headers(headers), raw, received_at=datetime(2025, 3, 5, tzinfo=UTC)
    )
    assert isinstance(parsed, list)
    return parsed


def _facts_only(event: DomainEvent) -> DomainEvent:
    """The event without its transport ids and topic, which say how it travelled."""
    return attrs.evolve(event, delivery_id="-", event_id=None, topic=None)


def test_a_polled_order_makes_the_webhooks_fulfilment_event() -> None:
    """The GraphQL shape of the fixture order gives the same OrderFulfilled (stream, shipment,
    order facts, time) as its orders/fulfilled webhook."""
    order = _read(FIXTURE_NODE)
    assert not isinstance(order.parsed, type(None))
    assert isinstance(order.parsed, list)
    polled = [e for e in order.parsed if isinstance(e, OrderFulfilled)]
    (hooked,) = _webhook(payload("order_fulfilled"), "orders/fulfilled")
    assert len(polled) == 1
    assert _facts_only(polled[0]) == _facts_only(hooked)


def test_a_polled_order_makes_the_webhooks_created_paid_and_cancelled_events() -> None:
    """orders/create, orders/paid (at the processing time) and orders/cancelled: the same
    facts and times as the webhooks, for the same stream."""
    node = fixture_node(cancelledAt="2025-03-05T08:00:00Z", cancelReason="CUSTOMER")
    node["updatedAt"] = "2025-03-05T08:00:00Z"
    order = _read(node)
    assert isinstance(order.parsed, list)
    kinds = [type(e) for e in order.parsed]
    assert kinds == [OrderCancelled, OrderPlaced, OrderPaid, OrderFulfilled]
    body = payload("order_fulfilled")
    body.update(
        cancelled_at="2025-03-05T09:00:00+01:00",
        updated_at="2025-03-05T09:00:00+01:00",
        cancel_reason="customer",
    )
    (placed,) = _webhook(body, "orders/create")
    (cancelled,) = _webhook(body, "orders/cancelled")
    assert _facts_only(order.parsed[1]) == _facts_only(placed)
    assert _facts_only(order.parsed[0]) == _facts_only(cancelled)
    paid = order.parsed[2]
    assert paid.occurred_at == datetime(2025, 3, 1, 8, 12, 44, tzinfo=UTC)
    assert {e.stream for e in order.parsed} == {"5560001000001"}
    assert {e.account for e in order.parsed} == {SHOP}


def test_a_polled_order_version_is_its_delivery_identity() -> None:
    """The same version read twice is the same delivery; a change is a new one."""
    first = _read(FIXTURE_NODE)
    again = _read(FIXTURE_NODE)
    changed = _read(fixture_node(updatedAt="2025-03-06T10:00:00Z"))
    assert first.identity == again.identity
    assert first.identity.delivery_id == "poll:5560001000001@2025-03-04T10:15:01.000Z"
    assert changed.identity != first.identity
    assert first.placed_at == datetime(2025, 3, 1, 8, 12, 44, tzinfo=UTC)


def test_customer_email_falls_back_to_the_deprecated_field_on_older_versions() -> None:
    """From 2025-04 the query reads defaultEmailAddress; before, Customer.email, which the
    facts fall back to when the order carries no e-mail of its own."""
    assert "defaultEmailAddress" in orders_query("2025-07", with_number=False)
    old_query = orders_query("2025-01", with_number=False)
    assert "defaultEmailAddress" not in old_query
    assert "email emailMarketingConsent" in old_query
    node = fixture_node(email=None)
    node["customer"] = {
        "id": "gid://shopify/Customer/7010000000042",
        "firstName": "Erika",
        "lastName": "Muster",
        "email": "old.field@example.org",
    }
    order = _read(node, api_version="2025-01")
    assert isinstance(order.parsed, list)
    facts = order.parsed[0].order  # type: ignore[union-attr]
    assert facts is not None
    assert facts.email == "old.field@example.org"
    node["customer"]["defaultEmailAddress"] = {"emailAddress": "new.field@example.org"}
    newer = _read(node)
    assert isinstance(newer.parsed, list)
    assert newer.parsed[0].order.email == "new.field@example.org"  # type: ignore[union-attr]


def test_a_delivered_fulfilment_becomes_the_delivered_event() -> None:
    """displayStatus DELIVERED reads like the fulfillments/update webhook: OrderDelivered at
    the delivery time."""
    node = fixture_node()
    node["fulfillments"][0].update(
        displayStatus="DELIVERED",
        deliveredAt="2025-03-06T12:00:00Z",
        updatedAt="2025-03-06T12:00:01Z",
    )
    order = _read(node)
    assert isinstance(order.parsed, list)
    delivered = [e for e in order.parsed if e.kind == "order_delivered"]
    assert len(delivered) == 1
    assert delivered[0].occurred_at == datetime(2025, 3, 6, 12, 0, tzinfo=UTC)


def test_refunds_and_removed_products_map_like_the_webhooks() -> None:
    """A refund's lines become the refund event; a deleted product leaves no product id."""
    node = fixture_node()
    node["lineItems"]["nodes"][1]["product"] = None
    node["refunds"] = [
        {
            "id": "gid://shopify/Refund/900",
            "createdAt": "2025-03-06T10:00:00Z",
            "refundLineItems": {
                "nodes": [{"lineItem": {"id": "gid://shopify/LineItem/1300001"}, "quantity": 1}]
            },
        }
    ]
    order = _read(node)
    assert isinstance(order.parsed, list)
    refunds = [e for e in order.parsed if e.kind == "order_refunded"]
    assert len(refunds) == 1
    refund = refunds[0].refund  # type: ignore[union-attr]
    assert refund.refund_id == "900"
    assert [(line.line_id, line.quantity) for line in refund.lines] == [("1300001", 1)]
    facts = next(e.order for e in order.parsed if isinstance(e, OrderPlaced))
    assert facts.lines[1].product_id is None


def test_the_page_size_keeps_a_query_under_the_single_query_cost_limit() -> None:
    """``first`` is the largest page whose requested cost stays within 1,000 points."""
    size = page_size()
    assert 1 <= size <= 250
    assert 2 + size * order_cost() <= MAX_QUERY_COST < 2 + (size + 1) * order_cost()


async def test_a_source_without_a_token_is_not_polled_and_cannot_be_read() -> None:
    """Without admin_access_token a Shopify source has webhooks only: polling is off, and a
    backfill stops before its first request, naming the key."""
    feed = ShopifyFeed(source=SOURCE, config=shopify_config(admin_access_token=None))
    assert feed.poll_interval is None
    with pytest.raises(ConfigError, match="admin_access_token"):
        await feed.read_page(None, FeedWindow(since=datetime(2025, 3, 1, tzinfo=UTC)), None)  # type: ignore[arg-type]
    assert ShopifyFeed(source=SOURCE, config=shopify_config()).poll_interval == timedelta(minutes=5)


def test_gids_must_be_shopify_gids() -> None:
    assert gid_number("gid://shopify/Order/12", "id") == "12"
    with pytest.raises(PayloadError, match="not a Shopify GID"):
        gid_number("12", "orders.nodes[0].id")
