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


# The fixture order's moments, in UTC: its fulfilment, and the carrier's delivery report.
SHIPPED_AT = datetime(2025, 3, 4, 10, 14, 58, tzinfo=UTC)
DELIVERED_AT = datetime(2025, 3, 6, 13, 2, 10, tzinfo=UTC)
SOCKS_LINE, HAT_LINE, GIFT_CARD_LINE = 1300001, 1300003, 1300002


def shipped_at(order: dict[str, Any], when: datetime) -> dict[str, Any]:
    """``order`` fulfilled (and last updated) at ``when`` instead of the fixture's moment."""
    order["updated_at"] = when.isoformat()
    for fulfilment in order["fulfillments"]:
        fulfilment["created_at"] = fulfilment["updated_at"] = when.isoformat()
    return order


def updated(order: dict[str, Any], when: datetime) -> dict[str, Any]:
    """``order`` as an ``orders/updated`` snapshot taken at ``when`` (newer wins)."""
    order["updated_at"] = when.isoformat()
    return order


def delivered_fulfilment(order_id: str = ORDER_ID) -> dict[str, Any]:
    """``fulfillments/update`` of the fixture's parcel: the carrier reports it delivered."""
    fulfilment = payload("fulfillment_update_delivered")
    fulfilment["order_id"] = int(order_id)
    return fulfilment


def refund(lines: dict[int, int], *, refund_id: int = 9100001) -> dict[str, Any]:
    """``refunds/create`` of the fixture order giving back ``{line id: quantity}``."""
    body = payload("refund_create")
    body["id"] = refund_id
    body["refund_line_items"] = [
        {"id": 9200000 + n, "line_item_id": line, "quantity": quantity, "restock_type": "return"}
        for n, (line, quantity) in enumerate(lines.items(), start=1)
    ]
    return body
