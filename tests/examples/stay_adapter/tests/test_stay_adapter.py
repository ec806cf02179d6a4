"""Staybook's adapter keeps the kit's adapter contract, and a stay maps field by field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from kit.adapters import normalise_headers
from kit.domain import Consent, LineItem, OrderDelivered, OrderFacts
from kit.errors import VerificationError
from kit.journal import IngestStatus, IntakeSource
from kit.policy import Enqueue, PolicyConfig, Trigger
from kit.testing import MemoryIntake
from kit.testing.adapter_contract import AdapterContract, AdapterSamples

from stay_adapter import StayConfig, plugin
from stay_adapter.samples import SAMPLE_PROPERTY, SAMPLE_SECRET, stay_completed

CHANNEL = "chl-00000000-0000-4000-8000-000000000001"


class TestStaybookContract(AdapterContract):
    """The kit's contract: bad signatures refused, replays folded, skips with reasons,
    deterministic parsing, events of this source."""

    @pytest.fixture
    def adapter_samples(self) -> AdapterSamples:
        return AdapterSamples(
            plugin=plugin,
            config=StayConfig(property_id=SAMPLE_PROPERTY),
            secrets=[SAMPLE_SECRET],
            accepted=[stay_completed("d-1"), stay_completed("d-2", channel="booking_com")],
            skipped=[
                stay_completed("d-3", event="booking.created"),
                stay_completed("d-4", status="no_show"),
            ],
        )


def test_a_delivery_for_another_property_is_refused() -> None:
    """A signature is not enough: the property must be this source's."""
    adapter = plugin.create(source="harbour-hotel", config=StayConfig(property_id="prop-1"))
    delivery = stay_completed("d-1")
    with pytest.raises(VerificationError, match="wrong_property"):
        adapter.verify(normalise_headers(delivery.headers), delivery.raw_body, [SAMPLE_SECRET])


def test_a_completed_stay_is_the_booking_delivered() -> None:
    """Check-out is the delivery of the booking, every fact taken from the body."""
    delivery = stay_completed("d-1")
    adapter = plugin.create(source="harbour-hotel", config=StayConfig(property_id=SAMPLE_PROPERTY))
    received = datetime(2025, 5, 12, 9, 0, tzinfo=UTC)
    headers = normalise_headers(delivery.headers)

    events = adapter.parse(headers, delivery.raw_body, received_at=received)

    assert events == [
        OrderDelivered(
            source="harbour-hotel",
            platform="staybook",
            account=SAMPLE_PROPERTY,
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
        adapter=plugin.create(
            source="harbour-hotel", config=StayConfig(property_id=SAMPLE_PROPERTY)
        ),
        policy=PolicyConfig(
            channel_id=CHANNEL,
            triggers=(Trigger(on="order_delivered", event_type="stay_completed", delay="1d"),),
        ),
        secrets=(SAMPLE_SECRET,),
    )
    intake = etrusted_memory_intake.intake
    delivery = stay_completed("d-1")

    first = await intake.ingest_raw(source, delivery.headers, delivery.raw_body)
    retry = await intake.ingest_raw(source, delivery.headers, delivery.raw_body)

    key = f"staybook:{SAMPLE_PROPERTY}:bk_0042:stay_completed"
    assert first.enqueued == (key,)
    (decided,) = first.decisions
    assert isinstance(decided.decision, Enqueue)
    assert decided.decision.send_after == datetime(2025, 5, 13, 8, 4, tzinfo=UTC)
    assert decided.decision.facts.estimated_delivery_date == date(2025, 5, 12)
    assert retry.status is IngestStatus.DUPLICATE
    assert [e.key for e in await etrusted_memory_intake.outbox.entries()] == [key]
