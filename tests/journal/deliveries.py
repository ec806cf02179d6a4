"""Signed Shopify deliveries for the journal tests, from the adapter's synthetic samples."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.shopify import samples

SECRET = "shpss_kit_test_secret_do_not_use"
SHOP = "kit-demo.myshopify.com"
ORDER_ID = "5560001000001"
KEY = f"shopify:{SHOP}:{ORDER_ID}:order_shipped"
EMAIL = "erika.muster@example.org"
CHANNEL = "chl-00000000-0000-4000-8000-000000000001"
# The intake's clock: a day after the fixture's fulfilment, inside a 3-day hold-back.
NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC).timestamp()


def payload(name: str) -> dict[str, Any]:
    return samples.sample(name)


def signed(
    body: dict[str, Any], topic: str, *, webhook_id: str, event_id: str | None = None
) -> tuple[dict[str, str], bytes]:
    """Headers and raw body of one delivery; ids default to unique per webhook."""
    return samples.signed_delivery(
        body,
        topic,
        secret=SECRET,
        shop_domain=SHOP,
        webhook_id=webhook_id,
        event_id=event_id or f"event-{webhook_id}",
        api_version=None,
    )


def fulfilled_order(order_id: str = ORDER_ID, *, email: str = EMAIL) -> dict[str, Any]:
    """The fixture order, fulfilled, with a second product so a partial refund leaves one."""
    order = payload("order_fulfilled")
    order["id"] = int(order_id)
    order["email"] = order["contact_email"] = order["customer"]["email"] = email
    order["line_items"].append(
        {
            "id": 1300003,
            "title": "Merino Mütze",
            "name": "Merino Mütze - Grau",
            "sku": "HAT-MER-GR",
            "variant_id": 4400003,
            "product_id": 8800003,
            "vendor": "Woolfolk",
            "quantity": 1,
            "price": "30.00",
            "requires_shipping": True,
            "gift_card": False,
            "product_exists": True,
            "fulfillment_status": "fulfilled",
        }
    )
    for fulfilment in order["fulfillments"]:
        fulfilment["order_id"] = int(order_id)
    return order


def cancelled_order(order_id: str = ORDER_ID) -> dict[str, Any]:
    order = fulfilled_order(order_id)
    order["cancelled_at"] = "2025-03-05T09:00:00+01:00"
    order["updated_at"] = "2025-03-05T09:00:00+01:00"
    order["cancel_reason"] = "customer"
    return order
