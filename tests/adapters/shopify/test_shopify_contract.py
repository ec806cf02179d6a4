"""The built-in Shopify adapter keeps the adapter contract that every adapter author runs."""

from __future__ import annotations

from typing import Any

import pytest
from shopify_deliveries import SECRET, SHOP, payload

from adapters.shopify import ShopifyConfig, plugin
from kit.testing import SignedDelivery, header_signer, hmac_sha256_base64, signed_delivery
from kit.testing.adapter_contract import AdapterContract, AdapterSamples

SIGNER = header_signer("X-Shopify-Hmac-Sha256", hmac_sha256_base64(SECRET))


def shopify(body: dict[str, Any], topic: str, n: int) -> SignedDelivery:
    """A delivery with its own webhook and event id, so each sample is a new delivery."""
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Webhook-Id": f"contract-webhook-{n}",
        "X-Shopify-Event-Id": f"contract-event-{n}",
        "X-Shopify-Triggered-At": "2025-03-04T10:15:02Z",
    }
    return signed_delivery(body, signer=SIGNER, headers=headers)


class TestShopifyAdapterContract(AdapterContract):
    @pytest.fixture
    def adapter_samples(self) -> AdapterSamples:
        return AdapterSamples(
            plugin=plugin,
            config=ShopifyConfig(shop_domain=SHOP),
            secrets=[SECRET],
            accepted=[
                shopify(payload("order_fulfilled"), "orders/fulfilled", 1),
                shopify(payload("fulfillment_create"), "fulfillments/create", 2),
                shopify(payload("fulfillment_update_delivered"), "fulfillments/update", 3),
                shopify(payload("refund_create"), "refunds/create", 4),
            ],
            skipped=[
                shopify(payload("customers_data_request"), "customers/data_request", 5),
                shopify({"id": 1}, "products/update", 6),
            ],
        )
