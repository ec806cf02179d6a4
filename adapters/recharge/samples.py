"""Synthetic Recharge deliveries, for tests, demos and adapter authors.

One renewal charge in both payload versions (platforms.md §6.4): charge 88000001 of a
subscription in the Shopify shop, which created Shopify order 5560002000042 (``#1077``). The
sending side of both signature schemes is :mod:`adapters.recharge.signing`; this module only
puts its values into the headers Recharge sends. Every id, name and address is made up.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

from adapters.recharge.signing import legacy_signature, timestamped_signature

Scheme = Literal["timestamped", "legacy", "both"]

_V2021_11: dict[str, Any] = {
    "charge": {
        "id": 88000001,
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
            "email": "erika.muster@example.org",
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
        "external_order_id": {"ecommerce": "5560002000042"},
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
        "id": 88000001,
        "type": "RECURRING",
        "status": "SUCCESS",
        "created_at": "2025-03-03T08:00:00",
        "scheduled_at": "2025-03-10T00:00:00",
        "processed_at": "2025-03-10T08:00:05",
        "updated_at": "2025-03-10T08:00:06",
        "total_price": "29.80",
        "tags": "Subscription, Subscription Recurring Order",
        "email": "erika.muster@example.org",
        "first_name": "Erika",
        "last_name": "Muster",
        "customer_id": 61000042,
        "customer_hash": "f00dfeed0000000000000042",
        "shopify_order_id": 5560002000042,
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

VERSIONS: dict[str, dict[str, Any]] = {"2021-11": _V2021_11, "2021-01": _V2021_01}
"""The payload versions Recharge sends, by API version."""


def charge(version: str = "2021-11") -> dict[str, Any]:
    """A fresh copy of the renewal's ``charge/paid`` body in ``version``, free to change."""
    return copy.deepcopy(VERSIONS[version])


def signed_delivery(
    body: dict[str, Any] | bytes,
    topic: str | None = "charge/paid",
    *,
    secret: str,
    signed_at: int,
    scheme: Scheme = "timestamped",
) -> tuple[dict[str, str], bytes]:
    """Headers (as Recharge sends them) and raw body of one delivery, signed by ``scheme``
    (``"both"``: Recharge may send both headers); ``topic`` ``None`` sends no topic header."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if topic is not None:
        headers["X-Recharge-Topic"] = topic
    if scheme in ("timestamped", "both"):
        headers["X-Recharge-Webhook-Signature"] = timestamped_signature(raw, secret, signed_at)
        headers["X-Recharge-Webhook-Timestamp"] = str(signed_at)
    if scheme in ("legacy", "both"):
        headers["X-Recharge-Hmac-Sha256"] = legacy_signature(raw, secret)
    return headers, raw


__all__ = ["VERSIONS", "Scheme", "charge", "signed_delivery"]
