"""Staybook's adapter keeps the kit's adapter contract, and a stay maps field by field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from kit.adapters import normalise_headers
from kit.domain import Consent, LineItem, OrderDelivered, OrderFacts
from kit.journal import IngestStatus, IntakeSource
from kit.policy import Enqueue, PolicyConfig, Trigger
from kit.testing import (
    MemoryIntake,
    SignedDelivery,
    header_signer,
    hmac_sha256_hex,
    signed_delivery,
)
from kit.testing.adapter_contract import AdapterContract, AdapterSamples

from stay_adapter import StayConfig, plugin

SECRET = "staybook-test-secret"
PROPERTY = "prop-4711"
CHANNEL = "chl-00000000-0000-4000-8000-000000000001"
SIGNER = header_signer("X-Staybook-Signature", hmac_sha256_hex(SECRET), prefix="sha256=")


def stay(delivery: str, *, event: str = "stay.completed", **booking: Any) -> SignedDelivery:
    """A signed Staybook delivery of booking ``bk_0042``; ``booking`` overrides its fields."""
    body = {
        "checked_out_at": "2025-05-12T10:04:00+02:00",
        "booking": {
            "id": "bk_0042",
            "confirmation_code": "HB-4711-0042",
            "status": "checked_out",
            "created_at": "2025-04-02T18:21:00+02:00",
            "check_in": "2025-05-08",
            "check_out": "2025-05-12",
            "channel": "direct",
            "test": False,
            "guest": {
                "id": "g_981",
                "email": "erika.muster@example.org",
                "first_name": "Erika",
                "last_name": "Muster",
                "language": "de-DE",
                "country": "de",
                "marketing": "opted_in",
            },
            "rooms": [
                {"id": "r1", "room_type_id": "rt-sea", "code": "DBL-SEA",
                 "name": "Double room, sea view"},
            ],
            "total": {"amount": "612.00", "currency": "EUR"},
            **booking,
        },
    }  # fmt: skip
    headers = {
        "Content-Type": "application/json",
        "X-Staybook-Event": event,
        "X-Staybook-Property": PROPERTY,
        "X-Staybook-Delivery": delivery,
        "X-Staybook-Event-Id": f"evt-{delivery}",
    }
    return signed_delivery(body, signer=SIGNER, headers=headers)


class TestStaybookContract(AdapterContract):
    """The kit's contract: bad signatures refused, replays folded, skips with reasons,
    deterministic parsing, events of this source."""

    @pytest.fixture
    def adapter_samples(self) -> AdapterSamples:
        return AdapterSamples(
            plugin=plugin,
            config=StayConfig(property_id=PROPERTY),
            secrets=[SECRET],
            accepted=[stay("d-1"), stay("d-2", channel="booking_com")],
            skipped=[stay("d-3", event="booking.created"), stay("d-4", status="no_show")],
        )


def test_a_completed_stay_is_the_booking_delivered() -> None:
    """Check-out is the delivery of the booking, every fact taken from the body."""
    delivery = stay("d-1")
    adapter = plugin.create(source="harbour-hotel", config=StayConfig(property_id=PROPERTY))
    received = datetime(2025, 5, 12, 9, 0, tzinfo=UTC)
    headers = normalise_headers(delivery.headers)

    events = adapter.parse(headers, delivery.raw_body, received_at=received)

    assert events == [
        OrderDelivered(
            source="harbour-hotel",
            platform="staybook",
            account=PROPERTY,
            stream="bk_0042",
            occurred_at=datetime(2025, 5, 12, 8, 4, tzinfo=UTC),
            delivery_id="d-1",
            event_id="evt-d-1",
            topic="stay.completed",
            order=OrderFacts(
                reference="HB-4711-0042",
                placed_at=datetime(2025, 4, 2, 16, 21, tzinfo=UTC),
                email="erika.muster@example.org",
                first_name="Erika",
                last_name="Muster",
                customer_id="g_981",
                locale="de_DE",
                lines=(
                    LineItem(
                        line_id="r1",
                        name="Double room, sea view",
                        product_id="rt-sea",
                        sku="DBL-SEA",
                    ),
                ),
                total=Decimal("612.00"),
                currency="EUR",
                shipping_country="DE",
                sales_channel="direct",
                consent=Consent.OPTED_IN,
            ),
        )
    ]


async def test_a_stay_becomes_one_invite_a_day_after_check_out(
    etrusted_memory_intake: MemoryIntake,
) -> None:
    """Through the kit's real intake: one invite, keyed by the booking, due a day after
    check-out with check-out as its delivery date; Staybook's retry changes nothing."""
    source = IntakeSource(
        name="harbour-hotel",
        adapter=plugin.create(source="harbour-hotel", config=StayConfig(property_id=PROPERTY)),
        policy=PolicyConfig(
            channel_id=CHANNEL,
            triggers=(Trigger(on="order_delivered", event_type="stay_completed", delay="1d"),),
        ),
        secrets=(SECRET,),
    )
    intake = etrusted_memory_intake.intake
    delivery = stay("d-1")

    first = await intake.ingest_raw(source, delivery.headers, delivery.raw_body)
    retry = await intake.ingest_raw(source, delivery.headers, delivery.raw_body)

    key = f"staybook:{PROPERTY}:bk_0042:stay_completed"
    assert first.enqueued == (key,)
    (decided,) = first.decisions
    assert isinstance(decided.decision, Enqueue)
    assert decided.decision.send_after == datetime(2025, 5, 13, 8, 4, tzinfo=UTC)
    assert decided.decision.facts.estimated_delivery_date == date(2025, 5, 12)
    assert retry.status is IngestStatus.DUPLICATE
    assert [e.key for e in await etrusted_memory_intake.outbox.entries()] == [key]
