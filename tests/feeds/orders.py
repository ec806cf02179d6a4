"""The Shopify feed tests' orders: the webhook fixture order as the GraphQL API describes it,
and the source, policy and clock the tests share."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from journal.deliveries import CHANNEL, SECRET, SHOP

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.configfile import Secret
from kit.journal import IntakeSource
from kit.journal.dump import Table, rows_of
from kit.outbox.protocol import Storage
from kit.policy import PolicyConfig, Trigger

TOKEN = "shpat_kit_test_token_do_not_use"
SOURCE = "my-shop"
# The clock of these tests: a day after the fixture order's fulfilment.
NOW = datetime(2025, 3, 5, 12, 0, tzinfo=UTC).timestamp()

# tests/adapters/shopify/fixtures/order_fulfilled.json, written as the GraphQL Admin API's
# Order node (GIDs, money bags, enums in capitals, lists of objects) for the feed's query.
FIXTURE_NODE: dict[str, Any] = {
    "id": "gid://shopify/Order/5560001000001",
    "name": "#1042",
    "email": "erika.muster@example.org",
    "createdAt": "2025-03-01T08:12:44Z",
    "processedAt": "2025-03-01T08:12:44Z",
    "updatedAt": "2025-03-04T10:15:01Z",
    "cancelledAt": None,
    "cancelReason": None,
    "test": False,
    "sourceName": "web",
    "tags": [],
    "customerLocale": "de",
    "displayFinancialStatus": "PAID",
    "displayFulfillmentStatus": "FULFILLED",
    "currencyCode": "EUR",
    "totalPriceSet": {"shopMoney": {"amount": "59.8", "currencyCode": "EUR"}},
    "customer": {
        "id": "gid://shopify/Customer/7010000000042",
        "firstName": "Erika",
        "lastName": "Muster",
        "tags": [],
        "defaultEmailAddress": {
            "emailAddress": "erika.muster@example.org",
            "marketingState": "NOT_SUBSCRIBED",
        },
    },
    "billingAddress": {"firstName": "Erika", "lastName": "Muster", "countryCodeV2": "DE"},
    "shippingAddress": {"firstName": "Erika", "lastName": "Muster", "countryCodeV2": "DE"},
    "lineItems": {
        "nodes": [
            {
                "id": "gid://shopify/LineItem/1300001",
                "title": "Merino Socken",
                "name": "Merino Socken - 39-42 / Grau",
                "sku": "SOCK-MER-3942-GR",
                "vendor": "Woolfolk",
                "quantity": 2,
                "currentQuantity": 2,
                "isGiftCard": False,
                "variant": {"id": "gid://shopify/ProductVariant/4400001"},
                "product": {"id": "gid://shopify/Product/8800001"},
            },
            {
                "id": "gid://shopify/LineItem/1300002",
                "title": "Geschenkgutschein",
                "name": "Geschenkgutschein - 30 €",
                "sku": "",
                "vendor": "Kit Demo",
                "quantity": 1,
                "currentQuantity": 1,
                "isGiftCard": True,
                "variant": {"id": "gid://shopify/ProductVariant/4400099"},
                "product": {"id": "gid://shopify/Product/8800099"},
            },
        ]
    },
    "fulfillments": [
        {
            "id": "gid://shopify/Fulfillment/6200001",
            "name": "#1042.1",
            "status": "SUCCESS",
            "displayStatus": "IN_TRANSIT",
            "createdAt": "2025-03-04T10:14:58Z",
            "updatedAt": "2025-03-04T10:14:58Z",
            "deliveredAt": None,
            "estimatedDeliveryAt": None,
            "trackingInfo": [{"company": "DHL"}],
            "fulfillmentLineItems": {
                "nodes": [{"lineItem": {"id": "gid://shopify/LineItem/1300001"}}]
            },
        }
    ],
    "refunds": [],
}


def fixture_node(**changes: Any) -> dict[str, Any]:
    node = copy.deepcopy(FIXTURE_NODE)
    node.update(changes)
    return node


def shopify_config(base_url: str = "http://127.0.0.1:9", **keys: Any) -> ShopifyConfig:
    values: dict[str, Any] = {
        "shop_domain": SHOP,
        "admin_access_token": Secret(TOKEN, env="SHOPIFY_TOKEN"),
        "api_base_url": base_url,
    }
    values.update(keys)
    return ShopifyConfig(**values)


def intake_source(config: ShopifyConfig) -> IntakeSource:
    trigger = Trigger(on="order_fulfilled", event_type="order_shipped", delay="3d")
    return IntakeSource(
        name=SOURCE,
        adapter=ShopifyAdapter(source=SOURCE, config=config),
        policy=PolicyConfig(channel_id=CHANNEL, triggers=(trigger,)),
        secrets=(SECRET,),
    )


async def skipped_deliveries(storage: Storage) -> dict[str, tuple[str, str]]:
    """The journal's skipped deliveries beside ``storage``: delivery id -> (reason, detail)."""
    rows = rows_of(storage)
    assert rows is not None
    found = await rows.page(Table.DELIVERIES, after=0, upto=None, limit=100_000)
    # id, source, delivery_id, event_id, topic, received_at, skip_reason, skip_detail
    return {row[2]: (row[6], row[7]) for row in found if row[6] is not None}
