"""Signed Shopify deliveries built from the synthetic fixtures (platforms.md §3.9)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.adapters import ParseResult, normalise_headers

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "shpss_kit_test_secret_do_not_use"
SHOP = "kit-demo.myshopify.com"
RECEIVED = datetime(2025, 3, 4, 10, 15, 3, tzinfo=UTC)
WEBHOOK_ID = "5f1b2c3d-0000-4000-8000-00000000a001"
EVENT_ID = "9a8b7c6d-0000-4000-8000-00000000e001"
TRIGGERED_AT = "2025-03-04T10:15:02.123456789Z"


def payload(name: str) -> dict[str, Any]:
    """A fresh copy of a fixture, free to change in a test."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def sign(raw: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


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
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers: dict[str, str | None] = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2025-07",
        "X-Shopify-Webhook-Id": WEBHOOK_ID,
        "X-Shopify-Event-Id": EVENT_ID,
        "X-Shopify-Triggered-At": TRIGGERED_AT,
        "X-Shopify-Hmac-Sha256": sign(raw, secret),
    }
    for suffix, value in overrides.items():
        headers["X-Shopify-" + suffix.replace("_", "-").title()] = value
    return normalise_headers({k: v for k, v in headers.items() if v is not None}), raw


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
