"""The built-in Recharge adapter keeps the adapter contract that every adapter author runs,
in both signature schemes and both payload versions.

A timestamped signature's age is judged in :meth:`RechargeAdapter.parse` against the moment the
intake took the delivery in: the samples are signed at :data:`SIGNED_AT`, and both the
contract's ``received_at`` and the intake's clock stand at that moment.
"""

from __future__ import annotations

from typing import Any

import pytest
from recharge_deliveries import RECEIVED, SECRET, SHOP, SIGNED_AT

from adapters.recharge import RechargeConfig, plugin, samples
from kit.testing import SignedDelivery
from kit.testing.adapter_contract import AdapterContract, AdapterSamples


def recharge(
    n: int,
    topic: str = "charge/paid",
    *,
    version: str = "2021-11",
    scheme: samples.Scheme = "timestamped",
    **changes: Any,
) -> SignedDelivery:
    """A signed delivery of its own charge ``n`` (Recharge sends no delivery id: a delivery is
    known by its topic and body, so each sample's body differs)."""
    body = samples.charge(version)
    body["charge"].update(id=88000100 + n, **changes)
    headers, raw = samples.signed_delivery(
        body, topic, secret=SECRET, signed_at=SIGNED_AT, scheme=scheme
    )
    return SignedDelivery(headers, raw)


class TestRechargeAdapterContract(AdapterContract):
    @pytest.fixture
    def adapter_samples(self) -> AdapterSamples:
        return AdapterSamples(
            plugin=plugin,
            config=RechargeConfig(shop_domain=SHOP),
            secrets=[SECRET],
            accepted=[
                recharge(1),
                recharge(2, version="2021-01", scheme="legacy"),
                recharge(3, scheme="both", type="checkout"),
                recharge(4, "charge/refunded", status="refunded", total_refunds="29.80"),
            ],
            skipped=[
                recharge(5, type="onetime"),
                recharge(6, "subscription/created"),
            ],
            received_at=RECEIVED,
            clock=lambda: RECEIVED.timestamp(),
        )
