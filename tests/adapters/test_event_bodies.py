"""What each adapter's domain events become on the wire is what eTrusted's documented
``EventRequest`` schema accepts: a Shopify order, a Stripe and a Recharge renewal, an import row.

The bodies are built as the intake builds them (:func:`kit.mapping.event_body`) from deliveries
each adapter parses for real, and checked against the OpenAPI file with a JSON-Schema validator,
independently of the kit's own validation (which must accept them too).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from etrusted_openapi import request_validator

from adapters.importer import ImportAdapter, Transaction, encode
from adapters.importer.columns import Product
from adapters.recharge import RechargeAdapter, RechargeConfig
from adapters.recharge import samples as recharge_samples
from adapters.shopify import ShopifyAdapter, ShopifyConfig
from adapters.shopify import samples as shopify_samples
from adapters.stripe import StripeAdapter, StripeConfig
from adapters.stripe import samples as stripe_samples
from kit.adapters import normalise_headers
from kit.domain import Consent, DomainEvent
from kit.mapping import BodyFacts, event_body, reviewable_lines
from kit.validation import event_errors

EVENT_REQUEST = request_validator("events", "/events", "POST")
SECRET = "kit_test_secret_do_not_use"
SHOP = "kit-demo.myshopify.com"
RECEIVED = datetime(2025, 3, 10, 9, 47, tzinfo=UTC)


def shopify_order() -> list[DomainEvent]:
    config = ShopifyConfig(
        shop_domain=SHOP,
        product_url="https://kit-demo.example/products/{product_id}",
        transit_days=2,
    )
    headers, raw = shopify_samples.signed_delivery(
        shopify_samples.sample("order_fulfilled"),
        "orders/fulfilled",
        secret=SECRET,
        shop_domain=SHOP,
        webhook_id="5f1b2c3d-0000-4000-8000-00000000a001",
    )
    shop = ShopifyAdapter(source="my-shop", config=config)
    return list(shop.parse(normalise_headers(headers), raw, received_at=RECEIVED))


def stripe_renewal() -> list[DomainEvent]:
    event = stripe_samples.invoice_paid()
    headers, raw = stripe_samples.signed_delivery(event, secret=SECRET, timestamp=event["created"])
    config = StripeConfig(product_url="https://kit-demo.example/plans/{product_id}")
    stripe = StripeAdapter(source="billing", config=config)
    return list(stripe.parse(normalise_headers(headers), raw, received_at=RECEIVED))


def recharge_renewal(version: str) -> list[DomainEvent]:
    signed_at = int(RECEIVED.timestamp())
    headers, raw = recharge_samples.signed_delivery(
        recharge_samples.charge(version), secret=SECRET, signed_at=signed_at
    )
    config = RechargeConfig(
        shop_domain=SHOP, product_url="https://kit-demo.example/products/{product_id}"
    )
    recharge = RechargeAdapter(source="my-recharge", config=config)
    return list(recharge.parse(normalise_headers(headers), raw, received_at=RECEIVED))


def import_row() -> list[DomainEvent]:
    transaction = Transaction(
        reference="1042",
        placed_at=datetime(2025, 3, 1, 8, 12, 44, tzinfo=UTC),
        email="erika@example.org",
        consent=Consent.OPTED_IN,
        first_name="Erika",
        last_name="Muster",
        locale="de_DE",
        estimated_delivery=date(2025, 3, 6),
        products=(
            Product(
                sku="A-1",
                name="Socks",
                url="https://shop.example/a1",
                image_url="https://shop.example/a1.jpg",
                gtin="4006381333931",
                mpn="SOCK-1",
                brand="Woolfolk",
            ),
        ),
    )
    return list(ImportAdapter(source="legacy").parse({}, encode(transaction), received_at=RECEIVED))


SOURCES = {
    "shopify order": shopify_order,
    "stripe renewal": stripe_renewal,
    "recharge renewal 2021-11": lambda: recharge_renewal("2021-11"),
    "recharge renewal 2021-01": lambda: recharge_renewal("2021-01"),
    "import row": import_row,
}


def bodies(events: list[DomainEvent]) -> list[dict[str, Any]]:
    out = []
    for event in events:
        order = getattr(event, "order", None)
        if order is None:
            continue
        shipment = getattr(event, "shipment", None)
        facts = BodyFacts(
            platform=event.platform,
            account=event.account,
            stream=event.stream,
            order=order,
            products=reviewable_lines(order),
            estimated_delivery_date=shipment.estimated_delivery if shipment else None,
        )
        out.append(
            event_body(
                facts,
                event_type="order_shipped",
                channel_id="chl-00000000-0000-4000-8000-000000000001",
                system="etrusted-kit",
                system_version="0.1.0",
            )
        )
    return out


@pytest.mark.parametrize("source", SOURCES)
def test_every_adapter_body_is_accepted_by_the_documented_schema(source: str) -> None:
    [body] = bodies(SOURCES[source]())
    assert body["products"], "a body without products would leave their schema unchecked"
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in EVENT_REQUEST.iter_errors(body)]
    assert errors == [], json.dumps(body, ensure_ascii=False)
    assert event_errors(body) == []
