"""Each Shopify topic becomes the domain events the policy needs, with the facts it reads."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from shopify_deliveries import EVENT_ID, RECEIVED, SHOP, WEBHOOK_ID, parse, payload

from kit.domain import (
    Consent,
    CustomerErasureRequested,
    DomainEvent,
    ErasureScope,
    LineItem,
    OrderCancelled,
    OrderDelivered,
    OrderFacts,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderUpdated,
    Refund,
    RefundedLine,
    Shipment,
    Skip,
    SkipReason,
)

ORDER_ID = "5560001000001"

ERIKA = OrderFacts(
    reference="#1042",
    placed_at=datetime(2025, 3, 1, 8, 12, 44, tzinfo=UTC),
    updated_at=datetime(2025, 3, 4, 10, 15, 1, tzinfo=UTC),
    email="erika.muster@example.org",
    first_name="Erika",
    last_name="Muster",
    customer_id="7010000000042",
    locale="de_DE",
    lines=(
        LineItem(
            line_id="1300001",
            name="Merino Socken",
            quantity=2,
            product_id="8800001",
            variant_id="4400001",
            sku="SOCK-MER-3942-GR",
            brand="Woolfolk",
        ),
        LineItem(
            line_id="1300002",
            name="Geschenkgutschein",
            quantity=1,
            product_id="8800099",
            variant_id="4400099",
            brand="Kit Demo",
            gift_card=True,
        ),
    ),
    total=Decimal("59.80"),
    currency="EUR",
    shipping_country="DE",
    sales_channel="web",
)
SHIPMENT = Shipment(shipment_id="6200001", line_ids=("1300001",), carrier="DHL")


def envelope(topic: str, occurred_at: datetime, stream: str = ORDER_ID) -> dict[str, Any]:
    return {
        "source": "my-shop",
        "platform": "shopify",
        "account": SHOP,
        "stream": stream,
        "occurred_at": occurred_at,
        "delivery_id": WEBHOOK_ID,
        "event_id": EVENT_ID,
        "topic": topic,
    }


def events(body: dict[str, Any], topic: str, **kwargs: Any) -> list[DomainEvent]:
    result = parse(body, topic, **kwargs)
    assert not isinstance(result, Skip), result
    return list(result)


def only_order(body: dict[str, Any], topic: str = "orders/create", **kwargs: Any) -> OrderFacts:
    (event,) = events(body, topic, **kwargs)
    assert isinstance(event, OrderPlaced)
    return event.order


def test_orders_fulfilled_maps_every_fact() -> None:
    """The registered-customer fixture, field by field (hand-written expectation)."""
    assert events(payload("order_fulfilled"), "orders/fulfilled") == [
        OrderFulfilled(
            **envelope("orders/fulfilled", datetime(2025, 3, 4, 10, 14, 58, tzinfo=UTC)),
            order=ERIKA,
            shipment=SHIPMENT,
        )
    ]


def test_orders_create_happens_when_the_order_was_created() -> None:
    assert events(payload("order_fulfilled"), "orders/create") == [
        OrderPlaced(**envelope("orders/create", ERIKA.placed_at), order=ERIKA)
    ]


def test_orders_paid_happens_when_shopify_triggered_it() -> None:
    triggered = datetime(2025, 3, 4, 10, 15, 2, 123456, tzinfo=UTC)
    assert events(payload("order_fulfilled"), "orders/paid") == [
        OrderPaid(**envelope("orders/paid", triggered), order=ERIKA)
    ]


def test_orders_paid_without_a_trigger_time_falls_back_to_the_order_update() -> None:
    (event,) = events(payload("order_fulfilled"), "orders/paid", triggered_at=None)
    assert event.occurred_at == ERIKA.updated_at


def test_orders_updated_is_a_new_snapshot() -> None:
    assert events(payload("order_fulfilled"), "orders/updated") == [
        OrderUpdated(**envelope("orders/updated", ERIKA.updated_at), order=ERIKA)  # type: ignore[arg-type]
    ]


def test_orders_cancelled_happens_at_the_cancellation() -> None:
    body = {**payload("order_fulfilled"), "cancelled_at": "2025-03-05T09:00:00+01:00"}
    body.update(cancel_reason="customer", financial_status="voided")
    assert events(body, "orders/cancelled") == [
        OrderCancelled(
            **envelope("orders/cancelled", datetime(2025, 3, 5, 8, 0, tzinfo=UTC)),
            order=ERIKA,
            reason="customer",
        )
    ]


def test_orders_partially_fulfilled_gives_one_event_per_shipped_parcel() -> None:
    body = payload("order_fulfilled")
    second = {
        **body["fulfillments"][0],
        "id": 6200002,
        "created_at": "2025-03-05T08:00:00Z",
        "line_items": [{"id": 1300002, "quantity": 1}],
    }
    cancelled = {**second, "id": 6200003, "status": "cancelled"}
    body.update(
        fulfillment_status="partial", fulfillments=[body["fulfillments"][0], second, cancelled]
    )
    fulfilled = events(body, "orders/partially_fulfilled")
    assert [(e.occurred_at, e.shipment) for e in fulfilled] == [  # type: ignore[union-attr]
        (datetime(2025, 3, 4, 10, 14, 58, tzinfo=UTC), SHIPMENT),
        (
            datetime(2025, 3, 5, 8, 0, tzinfo=UTC),
            Shipment(shipment_id="6200002", line_ids=("1300002",), carrier="DHL"),
        ),
    ]


def test_orders_fulfilled_without_fulfilment_detail_is_still_a_fulfilment() -> None:
    body = {**payload("order_fulfilled"), "fulfillments": []}
    assert events(body, "orders/fulfilled") == [
        OrderFulfilled(**envelope("orders/fulfilled", ERIKA.updated_at), order=ERIKA)  # type: ignore[arg-type]
    ]


def test_fulfillments_create_is_a_shipment_without_the_order() -> None:
    assert events(payload("fulfillment_create"), "fulfillments/create") == [
        OrderFulfilled(
            **envelope("fulfillments/create", datetime(2025, 3, 4, 10, 14, 58, tzinfo=UTC)),
            shipment=SHIPMENT,
        )
    ]


def test_fulfillments_update_delivered_is_a_delivery() -> None:
    assert events(payload("fulfillment_update_delivered"), "fulfillments/update") == [
        OrderDelivered(
            **envelope("fulfillments/update", datetime(2025, 3, 6, 13, 2, 10, tzinfo=UTC)),
            shipment=SHIPMENT,
        )
    ]


def test_fulfillments_update_in_transit_is_the_shipment_again() -> None:
    body = {**payload("fulfillment_update_delivered"), "shipment_status": "in_transit"}
    (event,) = events(body, "fulfillments/update")
    assert isinstance(event, OrderFulfilled)
    assert event.occurred_at == datetime(2025, 3, 4, 10, 14, 58, tzinfo=UTC)


@pytest.mark.parametrize("status", ["pending", "open", "cancelled", "failure", "error", None])
def test_a_fulfilment_that_did_not_ship_is_skipped(status: str | None) -> None:
    body = {**payload("fulfillment_create"), "status": status}
    result = parse(body, "fulfillments/create")
    assert isinstance(result, Skip)
    assert result.reason is SkipReason.NOT_SHIPPED


def test_refunds_create_names_the_refunded_lines() -> None:
    assert events(payload("refund_create"), "refunds/create") == [
        OrderRefunded(
            **envelope("refunds/create", datetime(2025, 3, 5, 15, 20, tzinfo=UTC)),
            refund=Refund(
                refund_id="9100001", lines=(RefundedLine(line_id="1300001", quantity=1),)
            ),
        )
    ]


def test_an_orders_refunds_stay_in_its_facts() -> None:
    body = payload("order_fulfilled")
    body["refunds"] = [payload("refund_create")]
    assert only_order(body).refunds == (
        Refund(refund_id="9100001", lines=(RefundedLine(line_id="1300001", quantity=1),)),
    )


def test_customers_redact_asks_to_erase_the_customer_and_their_orders() -> None:
    triggered = datetime(2025, 3, 4, 10, 15, 2, 123456, tzinfo=UTC)
    assert events(payload("customers_redact"), "customers/redact") == [
        CustomerErasureRequested(
            **envelope("customers/redact", triggered, stream="7010000000042"),
            customer_id="7010000000042",
            email="erika.muster@example.org",
            order_streams=(ORDER_ID, "5560001000002"),
        )
    ]


def test_shop_redact_asks_to_erase_the_whole_shop() -> None:
    (event,) = events(payload("shop_redact"), "shop/redact", triggered_at=None)
    assert event == CustomerErasureRequested(
        **envelope("shop/redact", RECEIVED, stream=SHOP), scope=ErasureScope.ACCOUNT
    )


def test_customers_data_request_is_acknowledged_with_a_skip() -> None:
    assert parse(payload("customers_data_request"), "customers/data_request") == Skip(
        SkipReason.DATA_REQUEST, "customer data request acknowledged"
    )


def test_an_unknown_topic_is_skipped_not_refused() -> None:
    """Shopify stops retrying on a 2xx; a topic no rule reads must not be retried for hours."""
    result = parse(payload("order_fulfilled"), "products/update")
    assert result == Skip(SkipReason.UNSUPPORTED_TOPIC, "topic 'products/update'")


def test_a_guest_checkout_takes_names_from_the_billing_address() -> None:
    body = {**payload("order_fulfilled"), "customer": None}
    body["billing_address"] = {**body["billing_address"], "first_name": "Gast", "last_name": "Kauf"}
    order = only_order(body)
    assert (order.email, order.first_name, order.last_name) == (
        "erika.muster@example.org",
        "Gast",
        "Kauf",
    )
    assert order.customer_id is None
    assert order.customer_tags == ()


def test_names_fall_back_to_the_shipping_address() -> None:
    body = {**payload("order_fulfilled"), "customer": None, "billing_address": None}
    body["shipping_address"] = {**body["shipping_address"], "first_name": "Liefer"}
    order = only_order(body)
    assert (order.first_name, order.last_name) == ("Liefer", "Muster")


@pytest.mark.parametrize(
    ("order_email", "contact_email", "customer_email", "expected"),
    [
        ("order@example.org", "contact@example.org", "customer@example.org", "order@example.org"),
        (None, "contact@example.org", "customer@example.org", "contact@example.org"),
        ("  ", None, "customer@example.org", "customer@example.org"),
        (None, None, None, None),
    ],
)
def test_the_email_comes_from_the_order_then_contact_then_customer(
    order_email: str | None,
    contact_email: str | None,
    customer_email: str | None,
    expected: str | None,
) -> None:
    body = {**payload("order_fulfilled"), "email": order_email, "contact_email": contact_email}
    body["customer"] = {**body["customer"], "email": customer_email}
    assert only_order(body).email == expected


def test_an_order_without_any_email_still_parses() -> None:
    """The policy skips it with ``no_email``; the journal still records what happened."""
    body = {**payload("order_fulfilled"), "email": None, "contact_email": None, "customer": None}
    assert only_order(body).email is None


def test_the_test_flag_is_kept() -> None:
    assert only_order({**payload("order_fulfilled"), "test": True}).test is True
    assert only_order(payload("order_fulfilled")).test is False


def test_a_gift_card_only_order_keeps_its_gift_card_lines() -> None:
    body = payload("order_fulfilled")
    body["line_items"] = body["line_items"][1:]
    lines = only_order(body).lines
    assert [(line.name, line.gift_card) for line in lines] == [("Geschenkgutschein", True)]


@pytest.mark.parametrize(
    ("customer_locale", "expected"),
    [
        ("de", "de_DE"),
        ("fr-FR", "fr_FR"),
        ("fr-Fr", "fr_FR"),
        ("pt-BR", "pt_PT"),
        ("en", "en_GB"),
        ("zh-CN", None),
        ("", None),
        (None, None),
    ],
)
def test_the_locale_maps_through_the_kit_table(
    customer_locale: str | None, expected: str | None
) -> None:
    body = {**payload("order_fulfilled"), "customer_locale": customer_locale}
    assert only_order(body).locale == expected


@pytest.mark.parametrize(
    ("reference", "expected"), [("name", "#1042"), ("order_number", "1042"), ("id", ORDER_ID)]
)
def test_the_transaction_reference_field_is_configurable(reference: str, expected: str) -> None:
    order = only_order(payload("order_fulfilled"), config={"reference": reference})
    assert order.reference == expected


def test_a_point_of_sale_order_is_marked() -> None:
    order = only_order({**payload("order_fulfilled"), "source_name": "pos"})
    assert (order.sales_channel, order.point_of_sale) == ("pos", True)


def test_tags_split_on_commas() -> None:
    body = {**payload("order_fulfilled"), "tags": "wholesale, VIP ,, b2b"}
    body["customer"] = {**body["customer"], "tags": "staff"}
    order = only_order(body)
    assert (order.tags, order.customer_tags) == (("wholesale", "VIP", "b2b"), ("staff",))


@pytest.mark.parametrize(
    ("state", "accepts", "expected"),
    [
        ("subscribed", False, Consent.OPTED_IN),
        ("unsubscribed", True, Consent.OPTED_OUT),
        ("not_subscribed", False, Consent.UNKNOWN),
        ("pending", False, Consent.UNKNOWN),
        (None, True, Consent.OPTED_IN),
        (None, False, Consent.UNKNOWN),
    ],
)
def test_marketing_consent_reads_the_customer_state_first(
    state: str | None, accepts: bool, expected: Consent
) -> None:
    body = {**payload("order_fulfilled"), "buyer_accepts_marketing": accepts}
    if state is not None:
        body["customer"] = {**body["customer"], "email_marketing_consent": {"state": state}}
    assert only_order(body).consent is expected


def test_removed_and_deleted_lines_are_kept_with_what_is_left() -> None:
    body = payload("order_fulfilled")
    body["line_items"][0] = {**body["line_items"][0], "current_quantity": 0}
    body["line_items"][1] = {**body["line_items"][1], "product_exists": False}
    first, second = only_order(body).lines
    assert first.quantity == 0
    assert second.product_id is None


def test_a_product_url_template_gives_each_line_its_url() -> None:
    config = {"product_url": "https://kit-demo.example/p/{product_id}?v={variant_id}&s={sku}"}
    first, _ = only_order(payload("order_fulfilled"), config=config).lines
    assert first.url == "https://kit-demo.example/p/8800001?v=4400001&s=SOCK-MER-3942-GR"


def test_the_estimated_delivery_comes_from_the_fulfilment_then_transit_days() -> None:
    body = payload("fulfillment_create")
    (event,) = events(body, "fulfillments/create", config={"transit_days": 2})
    assert isinstance(event, OrderFulfilled)
    assert event.shipment is not None
    assert event.shipment.estimated_delivery == date(2025, 3, 6)
    body["estimated_delivery_at"] = "2025-03-08T18:00:00-05:00"
    (event,) = events(body, "fulfillments/create", config={"transit_days": 2})
    assert isinstance(event, OrderFulfilled)
    assert event.shipment is not None
    assert event.shipment.estimated_delivery == date(2025, 3, 8)


def test_the_estimated_delivery_is_the_shops_own_calendar_date() -> None:
    """Shopify writes its times in the shop's offset, and a date is the shop's: a German shop's
    parcel expected on 8 March (midnight, +01:00) is due on the 8th, not on the 7th that UTC
    would make of it; one shipped at half past midnight counts its transit days from that day."""
    body = payload("fulfillment_create")
    body["estimated_delivery_at"] = "2025-03-08T00:00:00+01:00"
    (event,) = events(body, "fulfillments/create")
    assert isinstance(event, OrderFulfilled)
    assert event.shipment is not None
    assert event.shipment.estimated_delivery == date(2025, 3, 8)
    body["estimated_delivery_at"] = None
    body["created_at"] = "2025-03-04T00:30:00+01:00"
    (event,) = events(body, "fulfillments/create", config={"transit_days": 2})
    assert isinstance(event, OrderFulfilled)
    assert event.shipment is not None
    assert event.shipment.estimated_delivery == date(2025, 3, 6)
