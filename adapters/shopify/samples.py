"""Signed sample Shopify deliveries: what the demo and the bench send, and what tests build on.

The sending side of Shopify's signature rule lives here once (:func:`sign`); the receiving side
is :meth:`ShopifyAdapter.verify`. The payloads are synthetic (platforms.md §3.9) and ship with
the package, so ``etrusted-kit demo`` and ``etrusted-kit bench`` need nothing beside it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from typing import Any

API_VERSION = "2025-07"
"""The ``X-Shopify-API-Version`` the samples claim (the version their payloads follow)."""

SAMPLE_NAMES = (
    "customers_data_request",
    "customers_redact",
    "fulfillment_create",
    "fulfillment_update_delivered",
    "order_fulfilled",
    "refund_create",
    "shop_redact",
)


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of one sample payload (one of :data:`SAMPLE_NAMES`), free to change."""
    if name not in SAMPLE_NAMES:
        raise KeyError(f"no Shopify sample {name!r}; there are {', '.join(SAMPLE_NAMES)}")
    text = (files(__package__) / "sample_payloads" / f"{name}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def sign(raw: bytes, secret: str) -> str:
    """``X-Shopify-Hmac-Sha256``: the base64 HMAC-SHA256 of the raw body under ``secret``."""
    digest = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_delivery(
    body: Mapping[str, Any] | bytes,
    topic: str,
    *,
    secret: str,
    shop_domain: str,
    webhook_id: str | None,
    event_id: str | None = None,
    triggered_at: str | None = None,
    api_version: str | None = API_VERSION,
) -> tuple[dict[str, str], bytes]:
    """The headers (as Shopify sends them) and raw body of one signed delivery.

    A header whose value is ``None`` is left out, as a delivery without it would arrive.
    """
    raw = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-API-Version": api_version,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": triggered_at,
        "X-Shopify-Hmac-Sha256": sign(raw, secret),
    }
    return {name: value for name, value in headers.items() if value is not None}, raw


def shopify_time(at: datetime) -> str:
    """A time as Shopify writes it in payloads (ISO 8601 with offset, whole seconds)."""
    return at.astimezone(UTC).isoformat(timespec="seconds")


def fulfilled_order(
    order_id: int,
    *,
    shipped_at: datetime,
    email: str | None = "erika.muster@example.org",
    test: bool = False,
) -> dict[str, Any]:
    """The ``order_fulfilled`` sample as order ``order_id`` (name ``#<order_id>``), placed two
    days before ``shipped_at`` and shipped then; ``email=None`` gives an order without one."""
    order = sample("order_fulfilled")
    order["id"] = order_id
    order["admin_graphql_api_id"] = f"gid://shopify/Order/{order_id}"
    order["name"] = f"#{order_id}"
    order["order_number"] = order_id
    order["email"] = order["contact_email"] = order["customer"]["email"] = email
    order["test"] = test
    placed = shopify_time(shipped_at - timedelta(days=2))
    order["created_at"] = order["processed_at"] = placed
    order["updated_at"] = shopify_time(shipped_at)
    for fulfilment in order["fulfillments"]:
        fulfilment["order_id"] = order_id
        fulfilment["created_at"] = shopify_time(shipped_at)
    return order


def cancelled(
    order: Mapping[str, Any], *, at: datetime, reason: str = "customer"
) -> dict[str, Any]:
    """The same order as ``orders/cancelled`` reports it, cancelled at ``at``."""
    out = json.loads(json.dumps(order))  # a deep copy of plain JSON
    out["cancelled_at"] = out["updated_at"] = shopify_time(at)
    out["cancel_reason"] = reason
    out["financial_status"] = "voided"
    result: dict[str, Any] = out
    return result


__all__ = [
    "API_VERSION",
    "SAMPLE_NAMES",
    "cancelled",
    "fulfilled_order",
    "sample",
    "shopify_time",
    "sign",
    "signed_delivery",
]
