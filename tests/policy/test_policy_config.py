"""A policy that cannot work is refused when it is built, with the offending key named."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from policy_journal import CHANNEL, HAT, KEY, ORDER, SHOP, STREAM, at

from kit.domain import SkipReason
from kit.errors import ConfigError, ValidationError
from kit.mapping import BodyFacts
from kit.policy import (
    DECISION_TYPES,
    Amend,
    Cancel,
    ConsentMode,
    Decision,
    Enqueue,
    Exclusions,
    Note,
    PolicyConfig,
    Recorded,
    Skipped,
    Stale,
    Throttled,
    Trigger,
    TriggerOn,
    dump_decision,
    duration,
    load_decision,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3d", timedelta(days=3)),
        ("12h", timedelta(hours=12)),
        (" 30m ", timedelta(minutes=30)),
        ("45s", timedelta(seconds=45)),
        (90, timedelta(seconds=90)),
        ("0d", timedelta(0)),
    ],
)
def test_durations_read_as_text(text: str | int, expected: timedelta) -> None:
    assert duration(text) == expected


@pytest.mark.parametrize("text", ["3", "3 days", "-1d", "d", "", True, 1.5, timedelta(days=-1)])
def test_a_bad_duration_is_a_config_error(text: Any) -> None:
    with pytest.raises(ConfigError, match="duration"):
        duration(text)


def test_the_default_policy_is_order_shipped_on_the_first_fulfilment() -> None:
    policy = PolicyConfig(channel_id=CHANNEL)
    assert policy.triggers == (Trigger(on=TriggerOn.ORDER_FULFILLED, event_type="order_shipped"),)
    assert policy.consent is ConsentMode.ALL
    assert policy.exclusions.test_orders


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: PolicyConfig(), "channel_id or channels_by_locale"),
        (lambda: PolicyConfig(channel_id=CHANNEL, triggers=[]), "at least one trigger"),
        (
            lambda: PolicyConfig(
                channel_id=CHANNEL,
                triggers=[
                    Trigger(on="order_paid", event_type="order_shipped"),
                    Trigger(on="order_fulfilled", event_type="order_shipped"),
                ],
            ),
            "two triggers send event_type 'order_shipped'",
        ),
        (lambda: Trigger(on="order_shipped", event_type="x-type"), "'order_shipped' is not one of"),
        (lambda: Trigger(on="order_fulfilled", event_type="checkout"), "reserved"),
        (
            lambda: Trigger(on="order_fulfilled", event_type="Order Shipped"),
            "event_type 'Order Shipped'",
        ),
        (
            lambda: Trigger(
                on="order_fulfilled", event_type="order_shipped", delivered_fallback="7d"
            ),
            "delivered_fallback needs on = 'order_delivered'",
        ),
        (
            lambda: Trigger(on="order_fulfilled", event_type="order_shipped", delay="soon"),
            "duration",
        ),
        (lambda: PolicyConfig(channel_id=CHANNEL, consent="maybe"), "'maybe' is not one of"),
        (lambda: Exclusions(order_tags="wholesale"), "list of names"),
        (lambda: Exclusions(minimum_total="-1"), "minimum_total"),
        (lambda: Exclusions(minimum_total="lots"), "minimum_total"),
    ],
)
def test_an_unworkable_policy_is_a_config_error(build: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_names_are_normalised_once_at_build_time() -> None:
    rules = Exclusions(
        order_tags=[" Wholesale ", ""], countries=["at"], email_blocklist=["*@X.org"]
    )
    assert rules.order_tags == frozenset({"wholesale"})
    assert rules.countries == frozenset({"AT"})
    assert rules.email_blocklist == ("*@x.org",)
    assert Exclusions(minimum_total="10.5").minimum_total == Decimal("10.5")


FACTS = BodyFacts(platform="shopify", account=SHOP, stream=STREAM, order=ORDER, products=(HAT,))
EVERY_DECISION: list[Decision] = [
    Enqueue(key=KEY, event_type="order_shipped", channel_id=CHANNEL, facts=FACTS, send_after=at(3)),
    Skipped(key=KEY, reason=SkipReason.BLOCKED_EMAIL, detail="pattern '*@x.org'"),
    Cancel(key=KEY, reason=SkipReason.CANCELLED),
    Amend(key=KEY, products=(HAT,), send_after=at(4)),
    Throttled(key=KEY, last_invite_at=at(-3)),
    Stale(newest_at=at(5)),
    Recorded(note=Note.ALREADY_SENT, key=KEY, detail="cancelled"),
]


@pytest.mark.parametrize("decision", EVERY_DECISION, ids=lambda d: type(d).__name__)
def test_decisions_round_trip_through_the_journal_format(decision: Decision) -> None:
    text = json.dumps(dump_decision(decision))
    assert load_decision(json.loads(text)) == decision


def test_every_decision_type_is_covered_above() -> None:
    assert {type(d) for d in EVERY_DECISION} == set(DECISION_TYPES)


def test_a_corrupt_decision_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="policy decision"):
        load_decision({"kind": "cancel", "key": KEY, "reason": "bored"})
