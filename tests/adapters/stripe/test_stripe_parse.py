"""What each Stripe event becomes, field by field, against hand-written expectations, for both
invoice shapes (before and after API 2025-03-31.basil)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from adapters.stripe import StripeAdapter, StripeConfig, samples
from adapters.stripe.signature import sign
from kit.adapters import ParseResult, normalise_headers
from kit.domain import (
    LineItem,
    OrderFacts,
    OrderRefunded,
    Refund,
    RefundedLine,
    Skip,
    SkipReason,
    SubscriptionRenewed,
)
from kit.errors import PayloadError

SECRET = "whsec_kit_test_secret_do_not_use"
PAID_AT = datetime(2025, 3, 10, 9, 46, 30, tzinfo=UTC)  # 1741599990
CREATED = datetime(2025, 3, 10, 9, 46, 40, tzinfo=UTC)  # the event, 10 s later
SHAPES = ["basil", "legacy"]


def parse(event: dict[str, Any], **config: Any) -> Any:
    """The adapter's answer (typed loosely: tests unpack events and compare skips alike)."""
    return _parse(event, **config)


def _parse(event: dict[str, Any], **config: Any) -> ParseResult:
    raw = json.dumps(event).encode()
    at = int(event.get("created", 1741600000))
    headers = normalise_headers({"Stripe-Signature": sign(raw, SECRET, at)})
    stripe = StripeAdapter(source="billing", config=StripeConfig(**config))
    stripe.verify(headers, raw, [SECRET])
    return stripe.parse(headers, raw, received_at=datetime.fromtimestamp(at, UTC))


def expected_order(**changes: Any) -> OrderFacts:
    values: dict[str, Any] = {
        "reference": "KITDEMO-0007",
        "placed_at": PAID_AT,
        "updated_at": CREATED,
        "email": "max.beispiel@example.org",
        "first_name": "Max",
        "last_name": "Beispiel",
        "customer_id": "cus_KitDemo0000001",
        "locale": None,
        "lines": (
            LineItem(
                line_id="il_KitDemo01",
                name="1 × Kaffee-Abo (at €19.90 / month)",  # noqa: RUF001 - Stripe's text
                quantity=1,
                product_id="prod_KitDemoCoffee",
                variant_id="price_KitDemoMonthly",
                sku="prod_KitDemoCoffee",
                url=None,
            ),
        ),
        "refunds": (),
        "total": Decimal("19.90"),
        "currency": "EUR",
        "shipping_country": "DE",
        "test": False,
    }
    values.update(changes)
    return OrderFacts(**values)


def envelope(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "source": "billing",
        "platform": "stripe",
        "account": "billing",
        "stream": "in_1KitDemo00000000000000A1",
        "occurred_at": PAID_AT,
        "delivery_id": "evt_1KitDemo000000000000001",
        "event_id": None,
        "topic": "invoice.paid",
    }
    values.update(changes)
    return values


@pytest.mark.parametrize("shape", SHAPES)
def test_a_subscription_cycle_invoice_is_a_renewal(shape: samples.Shape) -> None:
    assert parse(samples.invoice_paid(shape)) == [
        SubscriptionRenewed(
            **envelope(),
            order=expected_order(),
            renewal=None,  # Stripe does not count: the journal does
            order_stream=None,
            subscription="sub_KitDemo0000001",
            started_at=None,
        )
    ]


@pytest.mark.parametrize("shape", SHAPES)
def test_a_subscription_create_invoice_is_the_first_purchase(shape: samples.Shape) -> None:
    event = samples.invoice_paid(shape, billing_reason="subscription_create", number="KD-0001")
    assert parse(event) == [
        SubscriptionRenewed(
            **envelope(),
            order=expected_order(reference="KD-0001"),
            renewal=0,
            subscription="sub_KitDemo0000001",
        )
    ]


@pytest.mark.parametrize("shape", SHAPES)
def test_the_configured_account_and_product_url_reach_the_event(shape: samples.Shape) -> None:
    (event,) = parse(
        samples.invoice_paid(shape),
        account="acct_1KitDemo",
        product_url="https://shop.example/abo/{product_id}?price={price_id}",
    )
    assert isinstance(event, SubscriptionRenewed)
    assert event.account == "acct_1KitDemo"
    (line,) = event.order.lines
    assert line.url == "https://shop.example/abo/prod_KitDemoCoffee?price=price_KitDemoMonthly"


@pytest.mark.parametrize("shape", SHAPES)
def test_a_test_mode_invoice_is_marked_as_a_test_order(shape: samples.Shape) -> None:
    (event,) = parse(samples.invoice_paid(shape, livemode=False))
    assert isinstance(event, SubscriptionRenewed)
    assert event.order.test is True


@pytest.mark.parametrize("shape", SHAPES)
def test_proration_lines_are_left_out(shape: samples.Shape) -> None:
    event = samples.invoice_paid(shape)
    lines = event["data"]["object"]["lines"]["data"]
    proration = copy.deepcopy(lines[0])
    proration["id"] = "il_Proration"
    if shape == "basil":
        proration["parent"]["subscription_item_details"]["proration"] = True
    else:
        proration["proration"] = True
    lines.append(proration)
    (parsed,) = parse(event)
    assert isinstance(parsed, SubscriptionRenewed)
    assert [line.line_id for line in parsed.order.lines] == ["il_KitDemo01"]


@pytest.mark.parametrize(
    "reason",
    ["subscription_update", "subscription_threshold", "manual", "upcoming", "quote_accept", None],
)
def test_every_other_billing_reason_is_skipped_with_it(reason: str | None) -> None:
    event = samples.invoice_paid()
    event["data"]["object"]["billing_reason"] = reason
    assert parse(event) == Skip(SkipReason.NOT_A_SUBSCRIPTION_CHARGE, f"billing_reason {reason!r}")


def test_an_invoice_without_a_subscription_or_without_payment_is_skipped() -> None:
    event = samples.invoice_paid()
    del event["data"]["object"]["parent"]
    assert parse(event) == Skip(
        SkipReason.NOT_A_SUBSCRIPTION_CHARGE, "the invoice names no subscription"
    )
    assert parse(samples.invoice_paid(amount_paid=0)) == Skip(
        SkipReason.NOTHING_PAID, "subscription_cycle: amount_paid 0"
    )


def test_a_zero_decimal_currency_is_counted_in_whole_units() -> None:
    event = samples.invoice_paid(amount_paid=2500)
    event["data"]["object"]["currency"] = "jpy"
    (parsed,) = parse(event)
    assert isinstance(parsed, SubscriptionRenewed)
    assert (parsed.order.total, parsed.order.currency) == (Decimal(2500), "JPY")


@pytest.mark.parametrize("currency", ["bhd", "jod", "kwd", "omr", "tnd"])
def test_a_three_decimal_currency_is_counted_in_thousandths(currency: str) -> None:
    """Stripe counts the dinars and the rial in 1/1000 (5.120 KWD is 5120), so a source's
    minimum_total compares with what the customer paid, not ten times that."""
    event = samples.invoice_paid(amount_paid=5120)
    event["data"]["object"]["currency"] = currency
    (parsed,) = parse(event)
    assert isinstance(parsed, SubscriptionRenewed)
    assert (parsed.order.total, parsed.order.currency) == (Decimal("5.120"), currency.upper())


def test_a_refunded_charge_refunds_its_invoice() -> None:
    at = 1741700000
    event = samples.charge_refunded("in_A", event_id="evt_refund", created=at)
    assert parse(event) == [
        OrderRefunded(
            **envelope(
                stream="in_A",
                occurred_at=datetime.fromtimestamp(at, UTC),
                delivery_id="evt_refund",
                topic="charge.refunded",
            ),
            refund=Refund(refund_id="ch_for_in_A"),
            full=True,
        )
    ]
    partial = samples.charge_refunded("in_A", event_id="evt_part", created=at, full=False)
    (parsed,) = parse(partial)
    assert isinstance(parsed, OrderRefunded)
    assert (parsed.full, parsed.refund) == (False, Refund(refund_id="ch_for_in_A:500"))


@pytest.mark.parametrize("shape", ["legacy", "basil"])
def test_a_paid_invoice_records_the_ids_of_its_payment_as_aliases(shape: str) -> None:
    """A refund or dispute names the charge or payment intent, not the invoice: the invoice's
    stream records those ids, in either API shape, so such an event can find it."""
    event = samples.invoice_paid(shape, invoice_id="in_A", payment_intent="pi_A")  # type: ignore[arg-type]
    (renewed,) = parse(event)
    expected = ("ch_for_in_A", "pi_A") if shape == "legacy" else ("pi_A",)
    assert renewed.aliases == expected
    (plain,) = parse(samples.invoice_paid(shape))  # type: ignore[arg-type]
    assert plain.aliases == ()


def test_a_charge_or_dispute_that_names_no_invoice_is_linked_by_its_payment_ids() -> None:
    """Without the invoice, the event waits on the charge's own stream and asks the journal
    to move it to the invoice that recorded its charge or payment intent."""
    refund = samples.charge_refunded(
        "in_A", event_id="evt_refund", created=1741700000, shape="basil", payment_intent="pi_A"
    )
    (refunded,) = parse(refund)
    assert (refunded.stream, refunded.link, refunded.disputed) == (
        "ch_for_in_A",
        ("ch_for_in_A", "pi_A"),
        False,
    )
    dispute = samples.dispute_created(event_id="evt_dp", created=1741700000, payment_intent="pi_A")
    (disputed,) = parse(dispute)
    assert (disputed.stream, disputed.link) == ("ch_disputed", ("ch_disputed", "pi_A"))
    assert (disputed.full, disputed.disputed) == (True, True)
    del dispute["data"]["object"]["charge"]
    assert parse(dispute) == Skip(SkipReason.UNLINKED, "the dispute names no charge")


def test_a_dispute_that_names_its_invoice_refunds_it_in_full() -> None:
    at = 1741700000
    event = samples.dispute_created(event_id="evt_dp", created=at, invoice_id="in_A")
    assert parse(event) == [
        OrderRefunded(
            **envelope(
                stream="in_A",
                occurred_at=datetime.fromtimestamp(at, UTC),
                delivery_id="evt_dp",
                topic="charge.dispute.created",
            ),
            refund=Refund(refund_id="dp_KitDemo01"),
            full=True,
            disputed=True,
        )
    ]


def test_a_credit_note_refunds_the_invoice_lines_it_credits() -> None:
    at = 1741700000
    event = samples.credit_note_created("in_A", ["il_KitDemo01"], event_id="evt_cn", created=at)
    assert parse(event) == [
        OrderRefunded(
            **envelope(
                stream="in_A",
                occurred_at=datetime.fromtimestamp(at, UTC),
                delivery_id="evt_cn",
                topic="credit_note.created",
            ),
            refund=Refund(
                refund_id="cn_for_in_A", lines=(RefundedLine(line_id="il_KitDemo01", quantity=1),)
            ),
            full=False,
        )
    ]


def test_a_credit_note_line_without_a_quantity_refunds_no_whole_unit() -> None:
    """A line credited by amount alone has no quantity: how much of the invoice line it gave
    back is unknown, so it is not taken as a refund of the line's units (which could withdraw
    the invite for a small goodwill credit). A line with a quantity refunds those units."""
    at = 1741700000
    event = samples.credit_note_created(
        "in_A", ["il_KitDemo01", "il_KitDemo02"], event_id="evt_cn", created=at
    )
    by_amount = event["data"]["object"]["lines"]["data"][1]
    by_amount.update(quantity=None, amount=500)
    (refunded,) = parse(event)
    assert isinstance(refunded, OrderRefunded)
    assert refunded.refund == Refund(
        refund_id="cn_for_in_A", lines=(RefundedLine(line_id="il_KitDemo01", quantity=1),)
    )
    assert not refunded.full
    del by_amount["quantity"]
    assert parse(event) == [refunded]


def test_another_event_type_is_skipped_and_a_malformed_event_is_a_bad_payload() -> None:
    event = samples.invoice_paid()
    event["type"] = "customer.subscription.updated"
    assert parse(event) == Skip(
        SkipReason.UNSUPPORTED_TOPIC, "event type 'customer.subscription.updated'"
    )
    thin = {"id": "evt_x", "object": "v2.core.event", "type": "invoice.paid", "created": 1741600000}
    with pytest.raises(PayloadError, match="object must be 'event'"):
        parse(thin)
    broken = samples.invoice_paid()
    broken["data"]["object"]["amount_paid"] = "19.90"
    with pytest.raises(PayloadError, match=r"amount_paid must be a whole number"):
        parse(broken)


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (
            lambda o: o["lines"]["data"].insert(0, "il_x"),
            r"data\.object\.lines\.data\[0\] must be an object",
        ),
        (
            lambda o: o.update(lines={"object": "list", "data": "x"}),
            r"data\.object\.lines\.data must be a list",
        ),
        (
            lambda o: o.update(customer_email=7),
            r"data\.object\.customer_email must be a string, got int",
        ),
        (
            lambda o: o["status_transitions"].update(paid_at=10**20),
            r"data\.object\.status_transitions\.paid_at is not a unix time",
        ),
    ],
)
def test_a_malformed_field_is_named_by_its_whole_path(break_it: Any, message: str) -> None:
    """A payload error names the field as it sits in Stripe's event, nested lists included, so
    the log says which part of which event broke."""
    event = samples.invoice_paid()
    break_it(event["data"]["object"])
    with pytest.raises(PayloadError, match=message):
        parse(event)
