"""Bodies built from Shopify deliveries are what eTrusted accepts, field by field."""

from __future__ import annotations

from typing import Any

import pytest
from shopify_deliveries import parse, payload

from kit.domain import OrderFulfilled, OrderPlaced, Refund, RefundedLine
from kit.errors import ValidationError
from kit.mapping import BodyFacts, event_body, reviewable_lines
from kit.validation import validate_event_body

CHANNEL = "chl-00000000-0000-4000-8000-000000000001"
CONFIG = {"product_url": "https://kit-demo.example/products/{product_id}", "transit_days": 2}


def body_of(order_payload: dict[str, Any], refunds: tuple[Refund, ...] = ()) -> dict[str, Any]:
    """What the kit would send for the first fulfilment of ``order_payload``."""
    (event,) = parse(order_payload, "orders/fulfilled", config=CONFIG)
    assert isinstance(event, OrderFulfilled)
    assert event.order is not None
    assert event.shipment is not None
    facts = BodyFacts(
        platform=event.platform,
        account=event.account,
        stream=event.stream,
        order=event.order,
        products=reviewable_lines(event.order, refunds),
        estimated_delivery_date=event.shipment.estimated_delivery,
    )
    body = event_body(
        facts,
        event_type="order_shipped",
        channel_id=CHANNEL,
        system="etrusted-kit",
        system_version="0.1.0",
    )
    validate_event_body(body)
    return body


def test_the_fixture_order_maps_to_the_expected_event() -> None:
    """platforms.md §3.9's expected event, minus what only enrichment can add (image, GTIN)."""
    assert body_of(payload("order_fulfilled")) == {
        "type": "order_shipped",
        "defaultLocale": "de_DE",
        "channel": {"id": CHANNEL, "type": "etrusted"},
        "customer": {
            "email": "erika.muster@example.org",
            "firstName": "Erika",
            "lastName": "Muster",
            "reference": "7010000000042",
        },
        "transaction": {"reference": "#1042", "date": "2025-03-01T08:12:44.000Z"},
        "estimatedDeliveryDate": "2025-03-06",
        "products": [
            {
                "name": "Merino Socken",
                "sku": "SOCK-MER-3942-GR",
                "url": "https://kit-demo.example/products/8800001",
                "brand": "Woolfolk",
            }
        ],
        "system": "etrusted-kit",
        "systemVersion": "0.1.0",
        "metadata": {
            "platform": "shopify",
            "account": "kit-demo.myshopify.com",
            "stream": "5560001000001",
            "currency": "EUR",
        },
    }


def test_a_guest_has_no_customer_reference() -> None:
    body = body_of({**payload("order_fulfilled"), "customer": None})
    assert body["customer"] == {
        "email": "erika.muster@example.org",
        "firstName": "Erika",
        "lastName": "Muster",
    }


def test_an_unplaceable_locale_is_left_out() -> None:
    body = body_of({**payload("order_fulfilled"), "customer_locale": "zh-CN"})
    assert "defaultLocale" not in body


def test_a_partially_refunded_line_stays_and_a_fully_refunded_one_goes() -> None:
    partly = (Refund(refund_id="r1", lines=(RefundedLine(line_id="1300001", quantity=1),)),)
    assert len(body_of(payload("order_fulfilled"), partly)["products"]) == 1
    fully = (*partly, Refund(refund_id="r2", lines=(RefundedLine(line_id="1300001", quantity=1),)))
    assert "products" not in body_of(payload("order_fulfilled"), fully)


def test_a_refund_listed_in_the_order_and_as_its_own_event_counts_once() -> None:
    order = payload("order_fulfilled")
    order["refunds"] = [
        {"id": 9100001, "refund_line_items": [{"line_item_id": 1300001, "quantity": 1}]}
    ]
    again = (Refund(refund_id="9100001", lines=(RefundedLine(line_id="1300001", quantity=1),)),)
    assert len(body_of(order, again)["products"]) == 1


def test_gift_cards_removed_deleted_and_unsendable_lines_are_no_products() -> None:
    order = payload("order_fulfilled")
    socks, _gift_card = order["line_items"]
    order["line_items"] = [
        {**socks, "id": 1, "product_id": 1, "current_quantity": 0},  # removed by an edit
        {**socks, "id": 2, "product_id": 2, "product_exists": False},  # deleted product
        {**socks, "id": 3, "product_id": 3, "sku": ""},  # no SKU: eTrusted requires one
        {**socks, "id": 4, "product_id": 4, "variant_id": 41},
        {**socks, "id": 5, "product_id": 4, "variant_id": 42},  # a second variant of 4
        _gift_card,
    ]
    order["fulfillments"][0]["line_items"] = []
    products = body_of(order)["products"]
    assert [p["url"] for p in products] == ["https://kit-demo.example/products/4"]


def test_a_gift_card_only_order_has_no_products_but_is_a_valid_body() -> None:
    order = payload("order_fulfilled")
    order["line_items"] = order["line_items"][1:]
    assert "products" not in body_of(order)


def test_without_a_product_url_products_are_left_out() -> None:
    (event,) = parse(payload("order_fulfilled"), "orders/create")
    assert isinstance(event, OrderPlaced)
    facts = BodyFacts(
        platform="shopify",
        account="kit-demo.myshopify.com",
        stream="1",
        order=event.order,
        products=reviewable_lines(event.order),
    )
    body = event_body(
        facts, event_type="order_shipped", channel_id=CHANNEL, system="s", system_version="1"
    )
    validate_event_body(body)
    assert "products" not in body


def test_an_order_without_email_cannot_become_a_body() -> None:
    order = {**payload("order_fulfilled"), "email": None, "contact_email": None, "customer": None}
    with pytest.raises(ValidationError, match=r"customer\.email: is required"):
        body_of(order)
