"""A paid recurring charge becomes one renewal, named by the Shopify order it created and
mapped field by field the same from both payload versions; anything else is skipped with a
reason."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
import pytest
from recharge_deliveries import (
    CHARGE_ID,
    EMAIL,
    ORDER_ID,
    SHOP,
    SOURCE,
    adapter,
    charge,
    delivery,
    parse,
)

from kit.domain import (
    LineItem,
    OrderFacts,
    OrderRefunded,
    Refund,
    Skip,
    SkipReason,
    SubscriptionRenewed,
)
from kit.errors import PayloadError
from kit.policy import dedupe_key

PROCESSED = datetime(2025, 3, 10, 8, 0, 5, tzinfo=UTC)
UPDATED = datetime(2025, 3, 10, 8, 0, 6, tzinfo=UTC)
SOCKS = "https://cdn.example/merino"


def expected(version: str) -> SubscriptionRenewed:
    """The renewal written out by hand from the payload (not from the adapter's rules)."""
    headers, data = delivery(charge(version))
    identity = adapter().identify(headers, data)
    v11 = version == "2021-11"
    order = OrderFacts(
        reference=ORDER_ID,
        placed_at=PROCESSED,
        updated_at=UPDATED,
        email=EMAIL,
        first_name="Erika",
        last_name="Muster",
        customer_id="7010000000042" if v11 else "61000042",
        locale=None,
        lines=(
            LineItem(
                line_id="43000001",
                name="Merino Socken",
                quantity=2,
                product_id="8800001",
                variant_id="4400001",
                sku="SOCK-MER-3942-GR",
                image_url=f"{SOCKS}.jpg" if v11 else f"{SOCKS}_small.jpg",
            ),
        ),
        total=Decimal("29.80"),
        currency="EUR" if v11 else None,
        shipping_country="DE" if v11 else None,
        tags=("Subscription", "Subscription Recurring Order"),
    )
    return SubscriptionRenewed(
        source=SOURCE,
        platform="shopify",
        account=SHOP,
        stream=ORDER_ID,
        occurred_at=PROCESSED,
        delivery_id=identity.delivery_id,
        event_id=f"charge/paid:{CHARGE_ID}",
        topic="charge/paid",
        order=order,
        renewal=None,
        order_stream=ORDER_ID,
        subscription="43000001",
    )


@pytest.mark.parametrize("version", ["2021-11", "2021-01"])
def test_a_paid_recurring_charge_maps_field_by_field(version: str) -> None:
    assert parse(charge(version)) == [expected(version)]


def test_both_versions_name_the_same_invite_as_the_shopify_order() -> None:
    """The policy's key of either version is the key of Shopify order #1077's own webhooks."""
    keys = set()
    for version in ("2021-11", "2021-01"):
        [event] = parse(charge(version))  # type: ignore[misc]
        keys.add(dedupe_key(event.platform, event.account, event.stream, "renewal"))
    assert keys == {f"shopify:{SHOP}:{ORDER_ID}:renewal"}


@pytest.mark.parametrize("version", ["2021-11", "2021-01"])
def test_the_first_charge_is_the_first_purchase_not_a_renewal(version: str) -> None:
    """Renewal 0: only an ``on = "subscription_created"`` trigger fires on it."""
    body = charge(version)
    body["charge"]["type"] = "checkout" if version == "2021-11" else "CHECKOUT"
    [event] = parse(body)  # type: ignore[misc]
    assert event == attrs.evolve(
        expected(version), renewal=0, delivery_id=adapter().identify(*delivery(body)).delivery_id
    )


def test_a_charge_of_another_type_is_skipped() -> None:
    body = charge()
    body["charge"]["type"] = "manual"
    assert parse(body) == Skip(SkipReason.NOT_RENEWAL, "charge type 'manual'")
    del body["charge"]["type"]
    assert parse(body) == Skip(SkipReason.NOT_RENEWAL, "charge type None")


def test_the_subscription_is_the_oldest_subscription_line_of_the_charge() -> None:
    """Charges of one subscription share it, so the journal can count the renewals."""
    body = charge()
    lines = body["charge"]["line_items"]
    lines.append({**lines[0], "purchase_item_id": 9000001})
    lines.append({**lines[0], "purchase_item_id": 1, "purchase_item_type": "onetime"})
    [event] = parse(body)  # type: ignore[misc]
    assert event.subscription == "9000001"
    legacy = charge("2021-01")
    legacy["charge"]["line_items"].insert(0, {**legacy["charge"]["line_items"][0]})
    legacy["charge"]["line_items"][0]["subscription_id"] = 43000002
    [event] = parse(legacy)  # type: ignore[misc]
    assert event.subscription == "43000001"


@pytest.mark.parametrize(
    "topic", ["charge/created", "charge/failed", "charge/upcoming", "subscription/created"]
)
def test_other_topics_are_skipped_with_their_name(topic: str) -> None:
    assert parse(charge(), topic) == Skip(SkipReason.UNSUPPORTED_TOPIC, f"topic {topic!r}")


def test_the_older_topic_name_charge_success_is_charge_paid() -> None:
    [event] = parse(charge(), "charge/success")  # type: ignore[misc]
    assert isinstance(event, SubscriptionRenewed)
    assert event.topic == "charge/paid"


def test_without_a_topic_header_the_configured_topic_then_the_body_decides() -> None:
    body = charge()
    assert parse(body, None, config={"topic": "charge/created"}) == Skip(
        SkipReason.UNSUPPORTED_TOPIC, "topic 'charge/created'"
    )
    [event] = parse(body, None)  # type: ignore[misc]
    assert event.topic == "charge/paid"  # a charge whose status is success
    body["charge"]["status"] = "queued"
    assert parse(body, None) == Skip(
        SkipReason.UNSUPPORTED_TOPIC, "no X-Recharge-Topic and no topic configured"
    )


def test_a_charge_without_a_shopify_order_is_its_own_stream() -> None:
    body = charge()
    del body["charge"]["external_order_id"]
    [event] = parse(body)  # type: ignore[misc]
    assert (event.platform, event.stream, event.order_stream) == (
        "recharge",
        f"charge:{CHARGE_ID}",
        None,
    )
    assert event.order.reference == CHARGE_ID


def test_offsetless_timestamps_are_read_in_the_configured_zone() -> None:
    [event] = parse(charge("2021-01"), config={"timezone": "Europe/Berlin"})  # type: ignore[misc]
    assert event.occurred_at == datetime(2025, 3, 10, 7, 0, 5, tzinfo=UTC)


def test_product_urls_come_from_the_template() -> None:
    config = {"product_url": "https://kit-demo.example/products/{handle}?variant={variant_id}"}
    [event] = parse(charge(), config=config)  # type: ignore[misc]
    [line] = event.order.lines
    assert line.url == "https://kit-demo.example/products/merino-socken?variant=4400001"


def test_tags_may_be_a_list() -> None:
    body = charge()
    body["charge"]["tags"] = ["Subscription", " Subscription Recurring Order "]
    [event] = parse(body)  # type: ignore[misc]
    assert event.order.tags == ("Subscription", "Subscription Recurring Order")


def test_a_redelivery_is_the_same_delivery_and_the_charge_the_same_event() -> None:
    """Recharge sends no delivery id: the hash of topic and body stands in, so a retry (a new
    signature time, the same bytes) is recognised; another topic of the same body is not."""
    recharge = adapter()
    first = recharge.identify(*delivery(charge(), signed_at=1))
    retry = recharge.identify(*delivery(charge(), signed_at=2))
    other = recharge.identify(*delivery(charge(), "charge/created"))
    assert first == retry
    assert first.delivery_id != other.delivery_id
    assert (first.event_id, other.event_id) == ("charge/paid:88000001", None)


def test_parsing_is_deterministic() -> None:
    assert parse(charge()) == parse(charge())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "the body is not JSON"),
        (b"[]", "must be a JSON object"),
        ({"order": {}}, "must have a charge object"),
        ({"charge": {"id": 1, "type": "recurring"}}, "neither processed_at nor created_at"),
        (
            {"charge": {"id": 1, "type": "recurring", "processed_at": "yesterday"}},
            "charge.processed_at is not an ISO 8601 date-time",
        ),
        ({"charge": {"type": "recurring", "customer": "x"}}, "charge.customer must be"),
    ],
)
def test_a_verified_body_of_the_wrong_shape_is_a_payload_error(
    body: dict[str, Any] | bytes, message: str
) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(body)


@pytest.mark.parametrize("version", ["2021-11", "2021-01"])
@pytest.mark.parametrize(("status", "full"), [("refunded", True), ("partially_refunded", False)])
def test_a_refunded_charge_is_a_refund_on_the_renewals_stream(
    status: str, full: bool, version: str
) -> None:
    """Full only when Recharge says the whole charge went back; a partial refund names no
    lines, so it leaves the invite alone, as a partial order refund does."""
    body = charge(version)
    body["charge"].update(
        status=status if version == "2021-11" else status.upper(),
        total_refunds="29.80",
        updated_at="2025-03-11T09:30:00+00:00",
    )
    headers, data = delivery(body, "charge/refunded")
    identity = adapter().identify(headers, data)
    assert parse(body, "charge/refunded") == [
        OrderRefunded(
            source=SOURCE,
            platform="shopify",
            account=SHOP,
            stream=ORDER_ID,
            occurred_at=datetime(2025, 3, 11, 9, 30, tzinfo=UTC),
            delivery_id=identity.delivery_id,
            event_id=None,
            topic="charge/refunded",
            refund=Refund(refund_id=f"charge:{CHARGE_ID}:29.80"),
            full=full,
        )
    ]
