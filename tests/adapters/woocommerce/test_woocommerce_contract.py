"""The built-in WooCommerce adapter keeps the adapter contract that every adapter author runs,
its unsigned creation ping included."""

from __future__ import annotations

from typing import Any

import pytest
from woocommerce_deliveries import SECRET, completed, config, delivery, order, ping

from adapters.woocommerce import plugin
from kit.testing import SignedDelivery
from kit.testing.adapter_contract import AdapterContract, AdapterSamples


def woo(body: dict[str, Any], topic: str, n: int) -> SignedDelivery:
    """A signed delivery with its own delivery id: each sample is a new delivery."""
    return SignedDelivery(*delivery(body, topic, delivery_id=f"contract-delivery-{n}"))


class TestWooCommerceAdapterContract(AdapterContract):
    @pytest.fixture
    def adapter_samples(self) -> AdapterSamples:
        return AdapterSamples(
            plugin=plugin,
            config=config(),
            secrets=[SECRET],
            accepted=[
                woo(order(), "order.created", 1),
                woo(completed(), "order.updated", 2),
            ],
            skipped=[woo(order(), "product.updated", 3)],
            unsigned=[SignedDelivery(*ping("14"))],
        )
