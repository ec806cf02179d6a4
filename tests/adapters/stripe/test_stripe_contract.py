"""The built-in Stripe adapter keeps the adapter contract that every adapter author runs.

Stripe signs a timestamp, which :meth:`StripeAdapter.parse` checks against the moment the
intake took the delivery in: the samples are signed at :data:`SIGNED_AT`, and both the
contract's ``received_at`` and the intake's clock stand at that moment.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.stripe import StripeConfig, plugin, samples
from kit.testing import SignedDelivery
from kit.testing.adapter_contract import AdapterContract, AdapterSamples

SECRET = "whsec_kit_contract_secret_do_not_use"
SIGNED_AT = 1741600000  # the sample event's ``created``


def stripe(event: dict[str, Any]) -> SignedDelivery:
    """One event signed at :data:`SIGNED_AT`; each sample has its own ``evt_`` id."""
    return SignedDelivery(*samples.signed_delivery(event, secret=SECRET, timestamp=SIGNED_AT))


class TestStripeAdapterContract(AdapterContract):
    @pytest.fixture
    def adapter_samples(self) -> AdapterSamples:
        paid = samples.invoice_paid
        return AdapterSamples(
            plugin=plugin,
            config=StripeConfig(),
            secrets=[SECRET],
            accepted=[
                stripe(paid("basil", event_id="evt_contract_1")),
                stripe(paid("legacy", event_id="evt_contract_2", invoice_id="in_contract_2")),
                stripe(
                    paid("basil", event_id="evt_contract_3", billing_reason="subscription_create")
                ),
                stripe(
                    samples.charge_refunded(
                        "in_1KitDemo00000000000000A1", event_id="evt_contract_4", created=SIGNED_AT
                    )
                ),
            ],
            skipped=[
                stripe(paid("basil", event_id="evt_contract_5", billing_reason="manual")),
                stripe(paid("basil", event_id="evt_contract_6", amount_paid=0)),
                stripe({"id": "evt_contract_7", "object": "event", "type": "customer.created"}),
            ],
            received_at=datetime.fromtimestamp(SIGNED_AT, UTC),
            clock=lambda: float(SIGNED_AT),
        )
