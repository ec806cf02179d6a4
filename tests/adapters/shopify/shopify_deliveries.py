"""Signed Shopify deliveries built from the adapter's synthetic samples (platforms.md §3.9)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.shopify import ShopifyAdapter, ShopifyConfig, samples
from kit.adapters import ParseResult, normalise_headers

SECRET = "shpss_kit_test_secret_do_not_use"
SHOP = "kit-demo.myshopify.com"
RECEIVED = datetime(2025, 3, 4, 10, 15, 3, tzinfo=UTC)
WEBHOOK_ID = "5f1b2c3d-0000-4000-8000-00000000a001"
EVENT_ID = "9a8b7c6d-0000-4000-8000-00000000e001"
TRIGGERED_AT = "2025-03-04T10:15:02.123456789Z"


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of a sample payload, free to change in a test."""
    return samples.sample(name)


def sign(raw: bytes, secret: str = SECRET) -> str:
    return samples.sign(raw, secret)


def delivery(
    body: dict[str, Any] | bytes,
    topic: str,
    /,
    *,
    secret: str = SECRET,
    **overrides: str | None,
) -> tuple[dict[str, str], bytes]:
    """Headers (lower-cased, as the intake hands them over) and the raw body of a delivery.

    ``overrides`` replace headers by their suffix (``webhook_id="..."``); ``None`` drops one.
    """
    signed, raw = samples.signed_delivery(
        body,
        topic,
        secret=secret,
        shop_domain=SHOP,
        webhook_id=WEBHOOK_ID,
        event_id=EVENT_ID,
        triggered_at=TRIGGERED_AT,
    )
    headers = normalise_headers(signed)
    for suffix, value in overrides.items():
        name = "x-shopify-" + suffix.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers, raw


def adapter(**config: Any) -> ShopifyAdapter:
    return ShopifyAdapter(source="my-shop", config=ShopifyConfig(shop_domain=SHOP, **config))


def parse(
    body: dict[str, Any] | bytes,
    topic: str,
    /,
    *,
    config: dict[str, Any] | None = None,
    **overrides: str | None,
) -> ParseResult:
    """Verify and parse one delivery the way the intake will."""
    shop = adapter(**(config or {}))
    headers, raw = delivery(body, topic, **overrides)
    shop.verify(headers, raw, [SECRET])
    return shop.parse(headers, raw, received_at=RECEIVED)
