"""The shipped samples sign as Shopify does and parse into the events the demo and bench expect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.shopify import ShopifyAdapter, ShopifyConfig, samples
from kit.adapters import normalise_headers
from kit.domain import OrderCancelled, OrderFulfilled
from kit.errors import VerificationError

SHOP = "samples.myshopify.com"
SECRET = "shpss_samples_secret"
SHIPPED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def shop() -> ShopifyAdapter:
    return ShopifyAdapter(source="s", config=ShopifyConfig(shop_domain=SHOP))


def test_sign_matches_the_published_vector() -> None:
    """platforms.md §3.2: a vector computed independently of the kit."""
    body = b'{"id":820982911946154508,"name":"#9999","email":"jon@example.com"}'
    assert (
        samples.sign(body, "shpss_test_secret_do_not_use")
        == "sfSaXmY9AJesvYMGCNaPOANdOyRKxSBwmukXvbVPhJ4="
    )


@pytest.mark.parametrize("name", samples.SAMPLE_NAMES)
def test_every_sample_ships_as_a_json_object(name: str) -> None:
    data = samples.sample(name)
    assert isinstance(data, dict)
    data["changed"] = True
    assert "changed" not in samples.sample(name)  # each call hands out a fresh copy


def test_an_unknown_sample_is_named_in_the_error() -> None:
    with pytest.raises(KeyError, match="no Shopify sample 'nope'"):
        samples.sample("nope")


def test_a_signed_delivery_carries_every_shopify_header_and_verifies() -> None:
    order = samples.fulfilled_order(42, shipped_at=SHIPPED)
    headers, raw = samples.signed_delivery(
        order,
        "orders/fulfilled",
        secret=SECRET,
        shop_domain=SHOP,
        webhook_id="w-1",
        event_id="e-1",
        triggered_at="2026-01-02T03:04:06Z",
    )
    assert set(headers) == {
        "Content-Type",
        "X-Shopify-Topic",
        "X-Shopify-Shop-Domain",
        "X-Shopify-API-Version",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Event-Id",
        "X-Shopify-Triggered-At",
        "X-Shopify-Hmac-Sha256",
    }
    lowered = normalise_headers(headers)
    shop().verify(lowered, raw, [SECRET])
    with pytest.raises(VerificationError):
        shop().verify(lowered, raw.replace(b"42", b"43", 1), [SECRET])
    with pytest.raises(VerificationError):
        shop().verify(lowered, raw, ["another secret"])


def test_a_header_given_as_none_is_left_out() -> None:
    headers, _ = samples.signed_delivery(
        b"{}", "orders/create", secret=SECRET, shop_domain=SHOP, webhook_id=None, api_version=None
    )
    assert "X-Shopify-Webhook-Id" not in headers
    assert "X-Shopify-API-Version" not in headers
    assert "X-Shopify-Event-Id" not in headers


def test_a_fulfilled_order_is_that_order_shipped_at_that_time() -> None:
    order = samples.fulfilled_order(777, shipped_at=SHIPPED, email="a@example.org", test=True)
    headers, raw = samples.signed_delivery(
        order, "orders/fulfilled", secret=SECRET, shop_domain=SHOP, webhook_id="w"
    )
    [event] = shop().parse(normalise_headers(headers), raw, received_at=SHIPPED)
    assert isinstance(event, OrderFulfilled)
    assert event.stream == "777"
    assert event.occurred_at == SHIPPED
    assert event.order is not None
    assert event.order.email == "a@example.org"
    assert event.order.test
    assert event.order.reference == "#777"


def test_a_cancellation_is_the_same_order_cancelled_then() -> None:
    order = samples.fulfilled_order(778, shipped_at=SHIPPED)
    at = SHIPPED + timedelta(minutes=5)
    headers, raw = samples.signed_delivery(
        samples.cancelled(order, at=at),
        "orders/cancelled",
        secret=SECRET,
        shop_domain=SHOP,
        webhook_id="w",
    )
    [event] = shop().parse(normalise_headers(headers), raw, received_at=at)
    assert isinstance(event, OrderCancelled)
    assert event.stream == "778"
    assert event.occurred_at == at
    assert order["cancelled_at"] is None  # the original order is untouched
