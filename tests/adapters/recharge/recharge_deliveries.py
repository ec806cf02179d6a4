"""One synthetic Recharge renewal in both payload versions (platforms.md §6.4), and signed
deliveries of it. The charge created Shopify order 5560002000042 (``#1077``) in the shop."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

from adapters.recharge import RechargeAdapter, RechargeConfig
from adapters.recharge.signing import legacy_signature, timestamped_signature
from kit.adapters import ParseResult, normalise_headers

SECRET = "rc_kit_test_client_secret_do_not_use"
SHOP = "kit-demo.myshopify.com"
SOURCE = "my-recharge"
ORDER_ID = "5560002000042"
CHARGE_ID = "88000001"
EMAIL = "erika.muster@example.org"
# The adapter's clock: five seconds after Recharge signed (and processed) the charge.
SIGNED_AT = int(datetime(2025, 3, 10, 8, 0, 10, tzinfo=UTC).timestamp())
NOW = SIGNED_AT + 5
RECEIVED = datetime.fromtimestamp(NOW, UTC)

_V2021_11: dict[str, Any] = {
    "charge": {
        "id": int(CHARGE_ID),
        "type": "recurring",
        "status": "success",
        "created_at": "2025-03-03T08:00:00+00:00",
        "scheduled_at": "2025-03-10",
        "processed_at": "2025-03-10T08:00:05+00:00",
        "updated_at": "2025-03-10T08:00:06+00:00",
        "currency": "EUR",
        "total_price": "29.80",
        "orders_count": 1,
        "tags": "Subscription, Subscription Recurring Order",
        "customer": {
            "id": 61000042,
            "email": EMAIL,
            "external_customer_id": {"ecommerce": "7010000000042"},
            "hash": "f00dfeed0000000000000042",
        },
        "billing_address": {
            "first_name": "Erika",
            "last_name": "Muster",
            "address1": "Beispielweg 5",
            "city": "Köln",
            "zip": "50667",
            "country_code": "DE",
            "phone": "+4915100000042",
        },
        "shipping_address": {
            "first_name": "Erika",
            "last_name": "Muster",
            "address1": "Beispielweg 5",
            "city": "Köln",
            "zip": "50667",
            "country_code": "de",
        },
        "external_order_id": {"ecommerce": ORDER_ID},
        "line_items": [
            {
                "purchase_item_id": 43000001,
                "purchase_item_type": "subscription",
                "title": "Merino Socken",
                "variant_title": "39-42 / Grau",
                "handle": "merino-socken",
                "sku": "SOCK-MER-3942-GR",
                "quantity": 2,
                "unit_price": "14.90",
                "external_product_id": {"ecommerce": "8800001"},
                "external_variant_id": {"ecommerce": "4400001"},
                "images": {
                    "small": "https://cdn.example/merino_small.jpg",
                    "original": "https://cdn.example/merino.jpg",
                },
            }
        ],
    }
}

_V2021_01: dict[str, Any] = {
    "charge": {
        "id": int(CHARGE_ID),
        "type": "RECURRING",
        "status": "SUCCESS",
        "created_at": "2025-03-03T08:00:00",
        "scheduled_at": "2025-03-10T00:00:00",
        "processed_at": "2025-03-10T08:00:05",
        "updated_at": "2025-03-10T08:00:06",
        "total_price": "29.80",
        "tags": "Subscription, Subscription Recurring Order",
        "email": EMAIL,
        "first_name": "Erika",
        "last_name": "Muster",
        "customer_id": 61000042,
        "customer_hash": "f00dfeed0000000000000042",
        "shopify_order_id": int(ORDER_ID),
        "billing_address": {"first_name": "Erika", "last_name": "Muster", "country": "Germany"},
        "shipping_address": {"first_name": "Erika", "last_name": "Muster", "country": "Germany"},
        "line_items": [
            {
                "subscription_id": 43000001,
                "title": "Merino Socken",
                "variant_title": "39-42 / Grau",
                "sku": "SOCK-MER-3942-GR",
                "quantity": 2,
                "price": "14.90",
                "shopify_product_id": 8800001,
                "shopify_variant_id": 4400001,
                "images": {"small": "https://cdn.example/merino_small.jpg"},
            }
        ],
    }
}

VERSIONS = {"2021-11": _V2021_11, "2021-01": _V2021_01}


def charge(version: str = "2021-11") -> dict[str, Any]:
    """A fresh copy of the renewal's ``charge/paid`` body in ``version``."""
    return copy.deepcopy(VERSIONS[version])


def raw(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def delivery(
    body: dict[str, Any] | bytes,
    topic: str | None = "charge/paid",
    *,
    secret: str = SECRET,
    scheme: str = "timestamped",
    signed_at: int = SIGNED_AT,
) -> tuple[dict[str, str], bytes]:
    """Headers (lower-cased) and raw body of one delivery, signed by ``scheme`` ("timestamped",
    "legacy" or "both", as Recharge may send both headers)."""
    data = raw(body)
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if topic is not None:
        headers["X-Recharge-Topic"] = topic
    if scheme in ("timestamped", "both"):
        headers["X-Recharge-Webhook-Signature"] = timestamped_signature(data, secret, signed_at)
        headers["X-Recharge-Webhook-Timestamp"] = str(signed_at)
    if scheme in ("legacy", "both"):
        headers["X-Recharge-Hmac-Sha256"] = legacy_signature(data, secret)
    return normalise_headers(headers), data


def adapter(*, now: float = NOW, **config: Any) -> RechargeAdapter:
    return RechargeAdapter(
        source=SOURCE, config=RechargeConfig(shop_domain=SHOP, **config), clock=lambda: now
    )


def parse(
    body: dict[str, Any] | bytes,
    topic: str | None = "charge/paid",
    *,
    config: dict[str, Any] | None = None,
) -> ParseResult:
    """Verify and parse one delivery the way the intake will."""
    recharge = adapter(**(config or {}))
    headers, data = delivery(body, topic)
    recharge.verify(headers, data, [SECRET])
    return recharge.parse(headers, data, received_at=RECEIVED)
