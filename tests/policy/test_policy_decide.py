"""The trigger policy decides per event, from the stream's history: each option and each rule."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from policy_journal import (
    CHANNEL,
    GIFT_CARD,
    HAT,
    KEY,
    ORDER,
    SHOP,
    SOCKS,
    STREAM,
    Journal,
    at,
    cancelled,
    config,
    delivered,
    fulfilled,
    order,
    paid,
    placed,
    refunded,
    updated,
)

from kit.domain import Consent, CustomerErasureRequested, SkipReason
from kit.mapping import BodyFacts
from kit.policy import (
    Amend,
    Cancel,
    Enqueue,
    Exclusions,
    Note,
    Recorded,
    Skipped,
    Stale,
    Throttled,
    Trigger,
    TriggerOn,
)

SHIPPED = Trigger(on="order_fulfilled", event_type="order_shipped", delay="3d")


def test_by_default_the_first_fulfilment_enqueues_order_shipped() -> None:
    journal = Journal(config())
    assert journal.feed(placed()) == [Recorded(note=Note.NOTHING_TO_DO)]
    assert journal.feed(paid()) == [Recorded(note=Note.NOTHING_TO_DO)]
    assert journal.feed(fulfilled(3, estimated=date(2025, 3, 6))) == [
        Enqueue(
            key=f"shopify:{SHOP}:{STREAM}:order_shipped",
            event_type="order_shipped",
            channel_id=CHANNEL,
            facts=BodyFacts(
                platform="shopify",
                account=SHOP,
                stream=STREAM,
                order=ORDER,
                products=(SOCKS, HAT),
                estimated_delivery_date=date(2025, 3, 6),
            ),
            send_after=at(3),
        )
    ]


def test_the_hold_back_delay_becomes_send_after() -> None:
    journal = Journal(config(triggers=[SHIPPED]))
    (enqueue,) = journal.feed_all(placed(), fulfilled(3))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.send_after == at(6)


@pytest.mark.parametrize(
    ("changes", "days"),
    [
        ({}, 3),  # domestic: the default delay
        ({"shipping_country": "AT"}, 10),  # abroad
        ({"shipping_country": "at"}, 10),
        ({"shipping_country": None}, 3),  # unknown destination: not treated as abroad
        ({"point_of_sale": True, "shipping_country": None}, 1),
        ({"point_of_sale": True, "shipping_country": "AT"}, 1),  # POS wins over abroad
    ],
)
def test_delays_by_segment(changes: dict[str, Any], days: int) -> None:
    trigger = Trigger(
        on="order_fulfilled",
        event_type="order_shipped",
        delay="3d",
        delay_international="10d",
        delay_pos="1d",
    )
    journal = Journal(config(triggers=[trigger], home_countries=["DE"]))
    (enqueue,) = journal.feed(fulfilled(0, facts=order(**changes)))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.send_after == at(days)


def test_without_home_countries_no_order_is_international() -> None:
    trigger = Trigger(on="order_fulfilled", event_type="order_shipped", delay_international="9d")
    (enqueue,) = Journal(config(triggers=[trigger])).feed(
        fulfilled(0, facts=order(shipping_country="US"))
    )
    assert isinstance(enqueue, Enqueue)
    assert enqueue.send_after == at(0)


DELIVERED = Trigger(
    on="order_delivered", event_type="delivery", delay="2d", delivered_fallback="10d"
)


def test_on_delivery_the_invite_waits_for_the_delivery() -> None:
    journal = Journal(config(triggers=[DELIVERED]))
    (enqueue,) = journal.feed_all(placed(), delivered(5))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.send_after == at(7)
    assert enqueue.facts.estimated_delivery_date == at(5).date()


def test_on_delivery_the_fallback_sends_after_the_fulfilment_when_no_delivery_comes() -> None:
    journal = Journal(config(triggers=[DELIVERED]))
    (enqueue,) = journal.feed_all(placed(), fulfilled(3))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.send_after == at(13)


def test_a_delivery_after_the_fallback_was_planned_moves_the_waiting_invite() -> None:
    journal = Journal(config(triggers=[DELIVERED]))
    journal.feed_all(placed(), fulfilled(3))
    assert journal.feed(delivered(5)) == [
        Amend(
            key=f"shopify:{SHOP}:{STREAM}:delivery",
            products=(SOCKS, HAT),
            send_after=at(7),
            estimated_delivery_date=at(5).date(),
        )
    ]


def test_on_delivery_without_a_fallback_a_fulfilment_alone_sends_nothing() -> None:
    trigger = Trigger(on="order_delivered", event_type="delivery")
    assert Journal(config(triggers=[trigger])).feed_all(placed(), fulfilled(3)) == [
        Recorded(note=Note.NOTHING_TO_DO)
    ]


@pytest.mark.parametrize(
    ("exclusions", "changes", "reason"),
    [
        ({}, {"test": True}, SkipReason.TEST_ORDER),
        ({}, {"email": None}, SkipReason.NO_EMAIL),
        ({}, {"email": "not-an-address"}, SkipReason.INVALID_EMAIL),
        ({"email_blocklist": ["*@Example.ORG"]}, {}, SkipReason.BLOCKED_EMAIL),
        ({"email_blocklist": ["erika.*@*"]}, {}, SkipReason.BLOCKED_EMAIL),
        ({}, {"lines": (GIFT_CARD,)}, SkipReason.GIFT_CARD_ONLY),
        ({"order_tags": ["Wholesale"]}, {"tags": ("wholesale",)}, SkipReason.EXCLUDED_ORDER_TAG),
        (
            {"customer_tags": ["staff"]},
            {"customer_tags": ("Staff",)},
            SkipReason.EXCLUDED_CUSTOMER_TAG,
        ),
        ({"skus": ["sock", "hat"]}, {}, SkipReason.EXCLUDED_PRODUCT),
        ({"product_ids": ["p1", "p2"]}, {}, SkipReason.EXCLUDED_PRODUCT),
        ({"countries": ["de"]}, {}, SkipReason.EXCLUDED_COUNTRY),
        ({"minimum_total": "60"}, {}, SkipReason.BELOW_MINIMUM_TOTAL),
        ({"sales_channels": ["Web"]}, {}, SkipReason.EXCLUDED_SALES_CHANNEL),
        ({"point_of_sale": True}, {"point_of_sale": True}, SkipReason.POINT_OF_SALE),
    ],
)
def test_each_exclusion_skips_with_its_own_reason(
    exclusions: dict[str, Any], changes: dict[str, Any], reason: SkipReason
) -> None:
    journal = Journal(config(exclusions=Exclusions(**exclusions)))
    (skipped,) = journal.feed(fulfilled(3, facts=order(**changes)))
    assert isinstance(skipped, Skipped)
    assert (skipped.key, skipped.reason) == (KEY, reason)
    if skipped.detail is not None:
        assert "erika.muster@example.org" not in skipped.detail  # the rule, not the customer


@pytest.mark.parametrize(
    ("exclusions", "changes"),
    [
        ({"test_orders": False}, {"test": True}),
        ({"gift_card_only": False}, {"lines": (GIFT_CARD,)}),
        ({}, {"lines": (GIFT_CARD, SOCKS)}),
        ({"skus": ["sock"]}, {}),  # one product excluded, one left
        ({"minimum_total": "59.80"}, {}),
        ({"minimum_total": "100"}, {"total": None}),  # unknown total: not below anything
        ({"order_tags": ["wholesale"]}, {"tags": ("retail",)}),
        ({"email_blocklist": ["*@example.com"]}, {}),
    ],
)
def test_an_exclusion_that_does_not_match_lets_the_invite_through(
    exclusions: dict[str, Any], changes: dict[str, Any]
) -> None:
    (decision,) = Journal(config(exclusions=Exclusions(**exclusions))).feed(
        fulfilled(3, facts=order(**changes))
    )
    assert isinstance(decision, Enqueue)


def test_an_excluded_product_is_left_out_of_the_invite() -> None:
    (enqueue,) = Journal(config(exclusions=Exclusions(skus=["SOCK"]))).feed(fulfilled(3))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.facts.products == (HAT,)


@pytest.mark.parametrize(
    ("mode", "consent", "reason"),
    [
        ("all", Consent.OPTED_OUT, None),
        ("all", Consent.UNKNOWN, None),
        ("unless_opted_out", Consent.OPTED_OUT, SkipReason.OPTED_OUT),
        ("unless_opted_out", Consent.UNKNOWN, None),
        ("unless_opted_out", Consent.OPTED_IN, None),
        ("opted_in_only", Consent.UNKNOWN, SkipReason.NO_CONSENT),
        ("opted_in_only", Consent.OPTED_OUT, SkipReason.NO_CONSENT),
        ("opted_in_only", Consent.OPTED_IN, None),
    ],
)
def test_the_three_consent_modes(mode: str, consent: Consent, reason: SkipReason | None) -> None:
    (decision,) = Journal(config(consent=mode)).feed(fulfilled(3, facts=order(consent=consent)))
    if reason is None:
        assert isinstance(decision, Enqueue)
    else:
        assert isinstance(decision, Skipped)
        assert decision.reason is reason


def test_a_skip_is_journaled_once_and_lifted_when_its_reason_goes() -> None:
    journal = Journal(config())
    no_email = order(email=None, updated_at=at(1))
    assert journal.feed(fulfilled(3, facts=no_email)) == [
        Skipped(key=KEY, reason=SkipReason.NO_EMAIL)
    ]
    assert journal.feed(fulfilled(3.5, shipment="s2", facts=no_email)) == [
        Recorded(note=Note.NOTHING_TO_DO)
    ]
    (enqueue,) = journal.feed(updated(4))
    assert isinstance(enqueue, Enqueue)


def test_a_cancellation_inside_the_hold_back_withdraws_the_invite() -> None:
    journal = Journal(config(triggers=[SHIPPED]))
    journal.feed_all(placed(), fulfilled(3))
    assert journal.feed(cancelled(4)) == [Cancel(key=KEY, reason=SkipReason.CANCELLED)]
    assert journal.entry() == (False, (SOCKS, HAT), at(6))


def test_a_cancellation_after_the_invite_left_is_recorded_once_and_undoes_nothing() -> None:
    journal = Journal(config())
    journal.feed_all(placed(), fulfilled(3))
    journal.sent.add(KEY)
    assert journal.feed(cancelled(8)) == [
        Recorded(note=Note.ALREADY_SENT, key=KEY, detail="cancelled")
    ]
    assert journal.feed(refunded(9, full=True)) == [Recorded(note=Note.NOTHING_TO_DO)]
    assert journal.entry() == (True, (SOCKS, HAT), at(3))


def test_an_order_cancelled_before_its_fulfilment_is_skipped() -> None:
    journal = Journal(config())
    journal.feed_all(placed(), cancelled(1))
    assert journal.feed(fulfilled(3)) == [Skipped(key=KEY, reason=SkipReason.CANCELLED)]


@pytest.mark.parametrize(
    "refund",
    [
        refunded(4, full=True),
        refunded(4, (("1", 2), ("2", 1))),  # every line, without the platform saying "full"
    ],
)
def test_a_full_refund_inside_the_hold_back_withdraws_the_invite(refund: Any) -> None:
    journal = Journal(config(triggers=[SHIPPED]))
    journal.feed_all(placed(), fulfilled(3))
    assert journal.feed(refund) == [Cancel(key=KEY, reason=SkipReason.REFUNDED)]


def test_every_product_refunded_but_a_gift_card_withdraws_the_invite_as_refunded() -> None:
    """What is left is a gift card because the buyer returned everything else: the journal
    says refunded, the reason the merchant will look for, not gift-card-only."""
    journal = Journal(config(triggers=[SHIPPED]))
    facts = order(lines=(SOCKS, GIFT_CARD))
    journal.feed_all(placed(facts=facts), fulfilled(3, facts=facts))
    (cancel,) = journal.feed(refunded(4, (("1", 2),)))
    assert isinstance(cancel, Cancel)
    assert (cancel.key, cancel.reason) == (KEY, SkipReason.REFUNDED)


def test_an_order_of_gift_cards_alone_is_still_skipped_as_gift_card_only() -> None:
    """Goods removed by an order edit (quantity 0) were never bought: gift-card-only."""
    removed = attrs.evolve(SOCKS, quantity=0)
    journal = Journal(config())
    (skipped,) = journal.feed(fulfilled(3, facts=order(lines=(removed, GIFT_CARD))))
    assert isinstance(skipped, Skipped)
    assert skipped.reason is SkipReason.GIFT_CARD_ONLY


def test_a_partial_refund_drops_the_refunded_products_from_the_waiting_invite() -> None:
    journal = Journal(config(triggers=[SHIPPED]))
    journal.feed_all(placed(), fulfilled(3))
    assert journal.feed(refunded(4, (("2", 1),))) == [
        Amend(key=KEY, products=(SOCKS,), send_after=at(6))
    ]
    assert journal.feed(refunded(4.5, (("1", 1),), refund="r2")) == [
        Recorded(note=Note.NOTHING_TO_DO)
    ]
    assert journal.entry() == (True, (SOCKS,), at(6))


def test_a_refund_before_the_trigger_shapes_the_first_invite() -> None:
    journal = Journal(config())
    journal.feed_all(placed(), refunded(1, (("1", 2),)))
    (enqueue,) = journal.feed(fulfilled(3))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.facts.products == (HAT,)


def test_a_status_entered_twice_makes_one_invite() -> None:
    journal = Journal(config())
    journal.feed_all(placed(), fulfilled(3))
    assert journal.feed(fulfilled(4, shipment="s2")) == [Recorded(note=Note.NOTHING_TO_DO)]
    assert journal.feed(fulfilled(3)) == [Stale(newest_at=at(4))]  # a late redelivery


def test_an_order_that_goes_back_through_a_status_never_gets_a_second_invite() -> None:
    """Cancelled while waiting, then fulfilled again (a re-opened order): still one invite."""
    journal = Journal(config(triggers=[SHIPPED]))
    journal.feed_all(placed(), fulfilled(3), cancelled(4))
    assert journal.feed(fulfilled(5, shipment="s2")) == [Recorded(note=Note.NOTHING_TO_DO)]
    assert sum(isinstance(d, Enqueue) for d in journal.decisions) == 1


def test_an_older_delivery_does_not_undo_newer_state() -> None:
    journal = Journal(config())
    newer = order(email="new@example.org")
    journal.feed(updated(2, facts=newer))
    assert journal.feed(updated(1)) == [Stale(newest_at=at(2))]
    (enqueue,) = journal.feed(fulfilled(3, facts=None))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.facts.order.email == "new@example.org"


def test_an_older_delivery_with_news_is_still_acted_on() -> None:
    """Late is not stale: a fulfilment that arrives after a newer snapshot still fires."""
    journal = Journal(config())
    journal.feed(updated(5))
    (enqueue,) = journal.feed(fulfilled(3))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.send_after == at(3)


def test_a_trigger_before_any_order_facts_waits_for_them() -> None:
    journal = Journal(config())
    (skipped,) = journal.feed(fulfilled(3, facts=None))
    assert isinstance(skipped, Skipped)
    assert skipped.reason is SkipReason.NO_ORDER_FACTS
    (enqueue,) = journal.feed(updated(3.1))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.send_after == at(3)


def test_an_exclusion_that_appears_while_the_invite_waits_withdraws_it() -> None:
    journal = Journal(config(triggers=[SHIPPED], exclusions=Exclusions(order_tags=["no-review"])))
    journal.feed_all(placed(), fulfilled(3))
    assert journal.feed(updated(4, facts=order(tags=("no-review",)))) == [
        Cancel(key=KEY, reason=SkipReason.EXCLUDED_ORDER_TAG)
    ]


PER_CUSTOMER = Trigger(on="order_fulfilled", event_type="order_shipped", per_customer="30d")


def test_the_per_customer_throttle_holds_back_a_second_invite_within_the_window() -> None:
    journal = Journal(config(triggers=[PER_CUSTOMER]), customer_invites=(at(-10),))
    assert journal.feed(fulfilled(3)) == [Throttled(key=KEY, last_invite_at=at(-10))]
    assert journal.feed(fulfilled(60, shipment="s2")) == [Recorded(note=Note.NOTHING_TO_DO)]


def test_the_per_customer_throttle_lets_an_invite_through_after_the_window() -> None:
    journal = Journal(config(triggers=[PER_CUSTOMER]), customer_invites=(at(-30),))
    (enqueue,) = journal.feed(fulfilled(3))
    assert isinstance(enqueue, Enqueue)


def test_without_per_customer_there_is_no_throttle() -> None:
    (enqueue,) = Journal(config(), customer_invites=(at(2),)).feed(fulfilled(3))
    assert isinstance(enqueue, Enqueue)


@pytest.mark.parametrize("invites", [(at(8), at(90)), (at(90), at(8)), (at(-40), at(8), at(90))])
def test_the_per_customer_throttle_sees_every_invite_not_only_the_newest(
    invites: tuple[datetime, ...],
) -> None:
    """An invite due far off (another order's longer hold-back) does not hide one within the
    window; the throttle names the nearest."""
    journal = Journal(config(triggers=[PER_CUSTOMER]), customer_invites=invites)
    assert journal.feed(fulfilled(3)) == [Throttled(key=KEY, last_invite_at=at(8))]


@pytest.mark.parametrize(
    ("locale", "channel"),
    [
        ("de_DE", "chl-de"),
        ("de_AT", "chl-de-lang"),
        ("fr_FR", "chl-fr"),
        ("it_IT", CHANNEL),
        (None, CHANNEL),
    ],
)
def test_the_channel_follows_the_locale(locale: str | None, channel: str) -> None:
    by_locale = {"de_DE": "chl-de", "de": "chl-de-lang", "fr": "chl-fr"}
    journal = Journal(config(channels_by_locale=by_locale))
    (enqueue,) = journal.feed(fulfilled(3, facts=order(locale=locale)))
    assert isinstance(enqueue, Enqueue)
    assert enqueue.channel_id == channel


def test_without_a_channel_for_the_locale_the_order_is_skipped() -> None:
    from kit.policy import PolicyConfig

    journal = Journal(PolicyConfig(channels_by_locale={"de": "chl-de"}))
    (skipped,) = journal.feed(fulfilled(3, facts=order(locale="fr_FR")))
    assert isinstance(skipped, Skipped)
    assert skipped.reason is SkipReason.NO_CHANNEL


def test_several_triggers_decide_each_under_its_own_key() -> None:
    triggers = [
        Trigger(on=TriggerOn.ORDER_PAID, event_type="order_paid"),
        Trigger(on=TriggerOn.ORDER_FULFILLED, event_type="order_shipped"),
    ]
    journal = Journal(config(triggers=triggers))
    (first,) = journal.feed(paid(0.1))
    (second,) = journal.feed(fulfilled(3))
    assert isinstance(first, Enqueue)
    assert isinstance(second, Enqueue)
    assert (first.key, second.key) == (KEY.replace("order_shipped", "order_paid"), KEY)


def test_an_erasure_request_is_recorded_for_the_journal_to_act_on() -> None:
    erasure = CustomerErasureRequested(
        source="my-shop",
        platform="shopify",
        account=SHOP,
        stream="7010000000042",
        occurred_at=at(9),
        delivery_id="d-erase",
    )
    assert Journal(config()).feed(erasure) == [Recorded(note=Note.ERASURE)]


def test_every_skip_reason_is_a_distinct_word() -> None:
    values = [member.value for member in SkipReason.__members__.values()]
    assert len(values) == len(set(values))
    assert all(value.isidentifier() and value.islower() for value in values)


def test_money_compares_as_decimal() -> None:
    """A minimum of 59.80 lets a 59.80 order through: no float rounding at the boundary."""
    journal = Journal(config(exclusions=Exclusions(minimum_total=Decimal("59.8"))))
    (enqueue,) = journal.feed(fulfilled(3))
    assert isinstance(enqueue, Enqueue)
    assert timedelta(0) == enqueue.send_after - at(3)
