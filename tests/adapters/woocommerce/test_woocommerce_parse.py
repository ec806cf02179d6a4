"""Each WooCommerce order snapshot becomes the domain events its status and dates report,
with the facts the policy and the mapping read."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from woocommerce_deliveries import (
    DELIVERY_ID,
    RECEIVED,
    SECRET,
    STORE,
    WEBHOOK_ID,
    adapter,
    completed,
    delivery,
    order,
    parse,
    ping,
)

from kit.domain import (
    Consent,
    DomainEvent,
    LineItem,
    OrderCancelled,
    OrderFacts,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderUpdated,
    Refund,
    Skip,
    SkipReason,
    order_of,
)
from kit.errors import PayloadError
from kit.mapping import reviewable_lines


def events(body: dict[str, Any] | bytes, topic: str = "order.updated", /, **kw: Any) -> list[Any]:
    result = parse(body, topic, **kw)
    assert not isinstance(result, Skip), result
    return list(result)


def kinds(result: list[DomainEvent]) -> list[str]:
    return [event.kind for event in result]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- identify ----------------------------------------------------------------------------------


def test_a_redelivery_of_the_same_bytes_has_the_same_identity() -> None:
    headers, raw = delivery(order())
    first = adapter().identify(headers, raw)
    assert first == adapter().identify(*delivery(order()))
    assert first.delivery_id.startswith(f"{WEBHOOK_ID}:{DELIVERY_ID}:")
    assert first.event_id is not None
    assert first.event_id.startswith("order.updated:sha256:")


def test_two_changes_within_one_second_are_two_deliveries() -> None:
    """WooCommerce's delivery id is a hash of the webhook id and the current second."""
    one = adapter().identify(*delivery(order()))
    two = adapter().identify(*delivery(order(date_modified_gmt="2025-03-01T08:13:11")))
    assert one.delivery_id != two.delivery_id
    assert one.event_id != two.event_id


def test_two_webhooks_on_one_topic_share_the_event_id() -> None:
    """A topic set up twice sends the same body twice: one platform event."""
    one = adapter().identify(*delivery(order(), id="14"))
    two = adapter().identify(*delivery(order(), id="15", delivery_id="ffff"))
    assert one.delivery_id != two.delivery_id
    assert one.event_id == two.event_id


def test_created_and_updated_of_one_snapshot_are_two_events() -> None:
    created = adapter().identify(*delivery(order(), "order.created"))
    updated = adapter().identify(*delivery(order(), "order.updated"))
    assert created.event_id != updated.event_id


def test_the_topic_falls_back_to_resource_and_event() -> None:
    result = events(order(), "order.created", topic=None)
    assert kinds(result) == ["order_placed", "order_paid"]
    assert result[0].topic == "order.created"


# -- the ping and other topics -----------------------------------------------------------------


def test_the_creation_ping_is_acknowledged_as_a_skip() -> None:
    headers, raw = ping("14")
    store = adapter()
    store.verify(headers, raw, [SECRET])
    assert store.identify(headers, raw).delivery_id == "ping:14"
    result = store.parse(headers, raw, received_at=RECEIVED)
    assert result == Skip(SkipReason.WEBHOOK_PING, "webhook 14 created")


@pytest.mark.parametrize(
    "topic",
    ["order.deleted", "order.restored", "product.updated", "action.woocommerce_order_refunded"],
)
def test_other_topics_are_skipped_with_their_name(topic: str) -> None:
    result = parse({"id": 727}, topic)
    assert result == Skip(SkipReason.UNSUPPORTED_TOPIC, f"topic {topic!r}")


def test_a_delivery_without_any_topic_header_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="X-WC-Webhook-Topic"):
        parse(order(), topic=None, resource=None, event=None)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (
            b'{"id": 727, "date_created_gmt": "2025-03-01T08:12:44", "number": "1",'
            b' "line_items": {}}',
            "line_items must be an array",
        ),
        (b'{"id": 727, "number": "1"}', "has no date_created_gmt"),
        (b'{"id": 727, "date_created_gmt": "yesterday", "number": "1"}', "date_created_gmt is not"),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_payload_error(raw: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse(raw)


# -- statuses ----------------------------------------------------------------------------------


def test_a_new_order_is_placed_and_paid_at_its_own_times() -> None:
    result = events(order(), "order.created")
    assert kinds(result) == ["order_placed", "order_paid"]
    placed, paid = result
    assert isinstance(placed, OrderPlaced)
    assert isinstance(paid, OrderPaid)
    assert placed.occurred_at == at("2025-03-01T08:12:44")
    assert paid.occurred_at == at("2025-03-01T08:13:10")
    assert {e.stream for e in result} == {"727"}
    assert {(e.source, e.platform, e.account) for e in result} == {
        ("my-store", "woocommerce", STORE)
    }


def test_an_unpaid_pending_order_update_is_a_new_snapshot() -> None:
    result = events(order(status="pending", date_paid_gmt=None))
    assert kinds(result) == ["order_updated"]
    assert isinstance(result[0], OrderUpdated)
    assert result[0].occurred_at == at("2025-03-01T08:13:10")


def test_completed_is_fulfilled_when_it_was_completed() -> None:
    result = events(completed())
    assert kinds(result) == ["order_paid", "order_fulfilled"]
    fulfilled = result[1]
    assert isinstance(fulfilled, OrderFulfilled)
    assert fulfilled.occurred_at == at("2025-03-02T10:00:00")
    assert fulfilled.order is not None
    assert fulfilled.shipment is None


@pytest.mark.parametrize("status", ["shipped", "wc-shipped", "Delivered-To-Carrier"])
def test_a_configured_custom_status_is_fulfilled(status: str) -> None:
    settings = {"fulfilled_statuses": ["completed", "shipped", "delivered-to-carrier"]}
    body = order(status=status.removeprefix("wc-").lower(), date_modified_gmt="2025-03-02T11:00:00")
    result = events(body, settings=settings)
    assert kinds(result) == ["order_paid", "order_fulfilled"]
    # No completion date for a plugin's status: the change that set it is the time.
    assert result[1].occurred_at == at("2025-03-02T11:00:00")


def test_a_custom_status_that_is_not_configured_is_only_a_snapshot() -> None:
    result = events(order(status="shipped"))
    assert kinds(result) == ["order_paid"]


def test_completed_is_not_fulfilled_when_the_merchant_chose_other_statuses() -> None:
    result = events(completed(), settings={"fulfilled_statuses": ["shipped"]})
    assert kinds(result) == ["order_paid"]


def test_cancelled_cancels() -> None:
    body = order(status="cancelled", date_paid_gmt=None, date_modified_gmt="2025-03-03T07:00:00")
    result = events(body)
    assert kinds(result) == ["order_cancelled"]
    assert isinstance(result[0], OrderCancelled)
    assert result[0].occurred_at == at("2025-03-03T07:00:00")


def test_refunded_is_a_full_refund() -> None:
    body = completed(
        status="refunded",
        date_modified_gmt="2025-03-04T07:00:00",
        refunds=[{"id": 730, "reason": "", "total": "-75.70"}],
    )
    result = events(body)
    assert kinds(result) == ["order_paid", "order_refunded"]
    refunded = result[1]
    assert isinstance(refunded, OrderRefunded)
    assert refunded.full
    assert refunded.refund == Refund(refund_id="status-refunded")
    assert refunded.occurred_at == at("2025-03-04T07:00:00")


# -- mapping -----------------------------------------------------------------------------------


def facts(body: dict[str, Any], **kw: Any) -> OrderFacts:
    result = events(body, **kw)
    snapshot = order_of(result[0])
    assert snapshot is not None
    return snapshot


def test_the_order_facts() -> None:
    snapshot = facts(order())
    assert snapshot == OrderFacts(
        reference="WC-1042",
        placed_at=at("2025-03-01T08:12:44"),
        updated_at=at("2025-03-01T08:13:10"),
        email="erika.muster@example.org",
        first_name="Erika",
        last_name="Muster",
        customer_id="12",
        locale="de_DE",
        lines=(
            LineItem(
                line_id="315",
                name="Merino Socken",
                quantity=2,
                product_id="93",
                variant_id="95",
                sku="SOCK-MER-GR",
                image_url="https://kit-shop.example/wp-content/uploads/socks.jpg",
            ),
            LineItem(
                line_id="316",
                name="Merino Mütze",
                quantity=1,
                product_id="94",
                sku="HAT-MER",
            ),
            LineItem(line_id="317", name="Geschenkverpackung", quantity=1),
        ),
        total=Decimal("75.70"),
        currency="EUR",
        shipping_country="AT",
        sales_channel="checkout",
        consent=Consent.UNKNOWN,
        test=False,
    )


def test_the_reference_can_be_the_order_id() -> None:
    assert facts(order(), settings={"reference": "id"}).reference == "727"


def test_a_guest_has_no_customer_reference() -> None:
    assert facts(order(customer_id=0)).customer_id is None


def test_names_fall_back_to_the_shipping_address() -> None:
    body = order()
    body["billing"].update(first_name="", last_name="")
    snapshot = facts(body)
    assert (snapshot.first_name, snapshot.last_name) == ("Erika", "Muster")


def test_an_order_without_an_email_keeps_none() -> None:
    body = order()
    body["billing"]["email"] = ""
    assert facts(body).email is None


def test_without_a_language_plugin_there_is_no_locale() -> None:
    assert facts(order(meta_data=[])).locale is None


def test_refunds_listed_in_the_order_are_kept() -> None:
    body = order(refunds=[{"id": 726, "reason": "damaged", "total": "-10.00"}])
    assert facts(body).refunds == (Refund(refund_id="726"),)


def test_removed_and_productless_lines_are_not_reviewed() -> None:
    """A line edited down to nothing and a custom line without a product are no products."""
    body = order()
    body["line_items"][1]["quantity"] = 0
    lines = reviewable_lines(facts(body))
    assert [line.line_id for line in lines] == ["315"]


def test_a_store_without_a_shipping_address_has_no_shipping_country() -> None:
    assert facts(order(shipping=None)).shipping_country is None
