"""Signed WooCommerce deliveries built from the synthetic fixture order (platforms.md §7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapters.woocommerce import WooCommerceAdapter, WooCommerceConfig
from kit.adapters import ParseResult, normalise_headers

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "wc_kit_test_secret_do_not_use"
STORE_URL = "https://kit-shop.example"
STORE = "kit-shop.example"
ORDER_ID = "727"
WEBHOOK_ID = "14"
DELIVERY_ID = "7d5c1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
RECEIVED = datetime(2025, 3, 4, 10, 15, 3, tzinfo=UTC)


def order(**changes: Any) -> dict[str, Any]:
    """A fresh copy of the fixture order with top-level fields replaced."""
    data: dict[str, Any] = json.loads((FIXTURES / "order.json").read_text(encoding="utf-8"))
    data.update(changes)
    return data


def completed(**changes: Any) -> dict[str, Any]:
    """The fixture order marked completed a day after it was paid."""
    values: dict[str, Any] = {
        "status": "completed",
        "date_completed_gmt": "2025-03-02T10:00:00",
        "date_modified_gmt": "2025-03-02T10:00:00",
    }
    return order(**(values | changes))


def wp_json(body: dict[str, Any]) -> bytes:
    """The bytes WooCommerce signs: ``trim(wp_json_encode($payload))``, so ``/`` is ``\\/``
    and non-ASCII text is ``\\u`` escaped."""
    return json.dumps(body, separators=(",", ":")).replace("/", "\\/").encode()


def sign(raw: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def delivery(
    body: dict[str, Any] | bytes,
    topic: str = "order.updated",
    /,
    *,
    secret: str = SECRET,
    **overrides: str | None,
) -> tuple[dict[str, str], bytes]:
    """Headers (lower-cased, as the intake hands them over) and the raw body of a delivery.

    ``overrides`` replace ``X-WC-Webhook-*`` headers by their suffix (``delivery_id="..."``);
    ``None`` drops one.
    """
    raw = body if isinstance(body, bytes) else wp_json(body)
    resource, _, event = topic.partition(".")
    headers: dict[str, str | None] = {
        "Content-Type": "application/json",
        "User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7.1)",
        "X-WC-Webhook-Source": STORE_URL + "/",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": resource,
        "X-WC-Webhook-Event": event,
        "X-WC-Webhook-Signature": sign(raw, secret),
        "X-WC-Webhook-ID": WEBHOOK_ID,
        "X-WC-Webhook-Delivery-ID": DELIVERY_ID,
    }
    lowered: dict[str, str | None] = {name.lower(): value for name, value in headers.items()}
    for suffix, value in overrides.items():
        lowered["x-wc-webhook-" + suffix.replace("_", "-")] = value
    return normalise_headers({k: v for k, v in lowered.items() if v is not None}), raw


def ping(webhook_id: str = WEBHOOK_ID) -> tuple[dict[str, str], bytes]:
    """The unsigned POST WooCommerce sends when a webhook is created (``deliver_ping()``)."""
    headers = {"User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7.1)"}
    return normalise_headers(headers), f"webhook_id={webhook_id}".encode()


def config(**changes: Any) -> WooCommerceConfig:
    return WooCommerceConfig(**({"store_url": STORE_URL} | changes))


def adapter(**changes: Any) -> WooCommerceAdapter:
    return WooCommerceAdapter(source="my-store", config=config(**changes))


def parse(
    body: dict[str, Any] | bytes,
    topic: str = "order.updated",
    /,
    *,
    settings: dict[str, Any] | None = None,
    **overrides: str | None,
) -> ParseResult:
    """Verify and parse one delivery the way the intake will."""
    store = adapter(**(settings or {}))
    headers, raw = delivery(body, topic, **overrides)
    store.verify(headers, raw, [SECRET])
    return store.parse(headers, raw, received_at=RECEIVED)
