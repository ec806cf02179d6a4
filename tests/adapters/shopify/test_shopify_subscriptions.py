"""Shopify reports a subscription renewal two ways, a billing attempt and the order it created;
both become a renewal on that order's stream, so either one (or both) makes one invite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from shopify_deliveries import parse, payload
from test_shopify_parse import ERIKA, ORDER_ID, envelope, events

from kit.domain import (
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderUpdated,
    Skip,
    SkipReason,
    SubscriptionRenewed,
)

TRIGGERED = datetime(2025, 3, 4, 10, 15, 2, 123456, tzinfo=UTC)
BILLING = "subscription_billing_attempts/success"


def attempt(**changes: Any) -> dict[str, Any]:
    """A ``subscription_billing_attempts/success`` body (platforms.md §4: a thin payload)."""
    body: dict[str, Any] = {
        "id": 9100001,
        "admin_graphql_api_id": "gid://shopify/SubscriptionBillingAttempt/9100001",
        "idempotency_key": "renewal-2025-03-04-contract-7700001",
        "order_id": int(ORDER_ID),
        "admin_graphql_api_order_id": f"gid://shopify/Order/{ORDER_ID}",
        "subscription_contract_id": 7700001,
        "admin_graphql_api_subscription_contract_id": "gid://shopify/SubscriptionContract/7700001",
        "ready": True,
        "error_message": None,
        "error_code": None,
    }
    body.update(changes)
    return body


def test_a_successful_billing_attempt_is_a_renewal_of_the_order_it_created() -> None:
    assert events(attempt(), BILLING) == [
        SubscriptionRenewed(
            **envelope(BILLING, TRIGGERED),
            order=None,
            order_stream=ORDER_ID,
            subscription="7700001",
        )
    ]


def test_the_order_may_be_named_only_by_its_graphql_id() -> None:
    (event,) = events(attempt(order_id=None), BILLING)
    assert (event.stream, event.order_stream) == (ORDER_ID, ORDER_ID)  # type: ignore[union-attr]


def test_a_billing_attempt_without_an_order_is_skipped() -> None:
    body = attempt(order_id=None, admin_graphql_api_order_id=None)
    assert parse(body, BILLING) == Skip(
        SkipReason.NO_ORDER, "the billing attempt names no order yet"
    )


@pytest.mark.parametrize(
    "topic", ["subscription_billing_attempts/failure", "subscription_billing_attempts/challenged"]
)
def test_failed_and_challenged_attempts_are_not_read(topic: str) -> None:
    assert parse(attempt(), topic) == Skip(SkipReason.UNSUPPORTED_TOPIC, f"topic {topic!r}")


def renewal_order(**changes: Any) -> dict[str, Any]:
    body = payload("order_fulfilled")
    body.update(changes)
    return body


RECHARGE_TAGS = "Subscription, Subscription Recurring Order"


@pytest.mark.parametrize(
    ("changes", "tags"),
    [
        ({"tags": RECHARGE_TAGS}, ("Subscription", "Subscription Recurring Order")),
        ({"source_name": "subscription_contract"}, ()),
        ({"source_name": "subscription_contract_checkout_one"}, ()),
    ],
)
def test_a_renewal_order_is_reported_as_a_renewal_too(
    changes: dict[str, Any], tags: tuple[str, ...]
) -> None:
    """Recharge's tag or a contract's source name; the renewal happened when the order was
    placed, whichever topic carries it."""
    body = renewal_order(**changes)
    facts = attrs.evolve(ERIKA, tags=tags, sales_channel=changes.get("source_name", "web"))
    renewal = SubscriptionRenewed(
        **envelope("orders/create", ERIKA.placed_at), order=facts, order_stream=ORDER_ID
    )
    assert events(body, "orders/create") == [
        renewal,
        OrderPlaced(**envelope("orders/create", ERIKA.placed_at), order=facts),
    ]
    for topic, kind in (
        ("orders/paid", OrderPaid),
        ("orders/updated", OrderUpdated),
        ("orders/fulfilled", OrderFulfilled),
    ):
        found = events(body, topic)
        assert [type(e) for e in found] == [SubscriptionRenewed, kind]
        assert found[0] == SubscriptionRenewed(
            **envelope(topic, ERIKA.placed_at), order=facts, order_stream=ORDER_ID
        )


@pytest.mark.parametrize(
    "changes",
    [
        {},  # an ordinary order
        {"tags": "Subscription, Subscription First Order"},  # Recharge's first order
        {"tags": "Subscription Recurring Order, Prepaid"},  # a prepaid shipment: no charge
    ],
)
def test_other_orders_are_not_renewals(changes: dict[str, Any]) -> None:
    assert [type(e) for e in events(renewal_order(**changes), "orders/create")] == [OrderPlaced]


def test_the_renewal_markers_are_configurable() -> None:
    body = renewal_order(tags="abo-renewal", source_name="my_subscription_app")
    config = {"renewal_tags": ["ABO-Renewal"], "renewal_source_names": []}
    assert [type(e) for e in events(body, "orders/create", config=config)] == [
        SubscriptionRenewed,
        OrderPlaced,
    ]
    config = {"renewal_tags": [], "renewal_source_names": ["my_subscription_app"]}
    assert len(events(body, "orders/create", config=config)) == 2
    assert [
        type(e) for e in events(renewal_order(tags=RECHARGE_TAGS), "orders/create", config=config)
    ] == [OrderPlaced]
