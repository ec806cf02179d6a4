"""The built-in Shopify adapter keeps the adapter contract that every adapter author runs."""

from __future__ import annotations

from typing import Any

import pytest
from shopify_deliveries import SECRET, SHOP

from adapters.shopify import ShopifyConfig, plugin, samples
from kit.testing import SignedDelivery
from kit.testing.adapter_contract import AdapterContract, AdapterSamples


def shopify(body: dict[str, Any], topic: str, n: int) -> SignedDelivery:
    """A signed delivery with its own webhook and event id: each sample is a new delivery."""
    headers, raw = samples.signed_delivery(
        body,
        topic,
        secret=SECRET,
        shop_domain=SHOP,
        webhook_id=f"contract-webhook-{n}",
        event_id=f"contract-event-{n}",
        triggered_at="2025-03-04T10:15:02Z",
    )
    return SignedDelivery(headers, raw)


class TestShopifyAdapterContract(AdapterContract):
    @pytest.fixture
    def adapter_samples(self) -> AdapterSamples:
        return AdapterSamples(
            plugin=plugin,
            config=ShopifyConfig(shop_domain=SHOP),
            secrets=[SECRET],
            accepted=[
                shopify(samples.sample("order_fulfilled"), "orders/fulfilled", 1),
                shopify(samples.sample("fulfillment_create"), "fulfillments/create", 2),
                shopify(samples.sample("fulfillment_update_delivered"), "fulfillments/update", 3),
                shopify(samples.sample("refund_create"), "refunds/create", 4),
                shopify(samples.sample("customers_redact"), "customers/redact", 5),
            ],
            skipped=[
                shopify(samples.sample("customers_data_request"), "customers/data_request", 6),
                shopify({"id": 1}, "products/update", 7),
            ],
        )
