"""The renewal policy: which charges of a subscription fire, decided from the charge's stream and
the subscription's other charges; and its TOML keys, each mistake at its key path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from kit.configfile import config_from_mapping
from kit.domain import OrderFacts, OrderRefunded, Refund, SkipReason, SubscriptionRenewed
from kit.errors import ConfigError, ConfigFileError
from kit.policy import (
    DEFAULT_RENEWAL_PER_CUSTOMER,
    Cancel,
    Charge,
    Enqueue,
    History,
    Note,
    PolicyConfig,
    Recorded,
    Renewals,
    Skipped,
    Throttled,
    Trigger,
    decide,
)
from kit.policy.renewals import renewal_number, subscription_age

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
CHANNEL = "chl-00000000-0000-4000-8000-000000000001"
SUB = "sub_1"


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def charge(
    stream: str, days: float, *, renewal: int | None = None, started: datetime | None = None
) -> SubscriptionRenewed:
    return SubscriptionRenewed(
        source="billing",
        platform="stripe",
        account="acct_1",
        stream=stream,
        occurred_at=at(days),
        delivery_id=f"evt_{stream}",
        order=OrderFacts(
            reference=f"INV-{stream}",
            placed_at=at(days),
            email="max.beispiel@example.org",
        ),
        renewal=renewal,
        subscription=SUB,
        started_at=started,
    )


def renewed(**keys: Any) -> PolicyConfig:
    trigger = Trigger(on="subscription_renewed", event_type="subscription_renewed", **keys)
    return PolicyConfig(channel_id=CHANNEL, triggers=[trigger])


def history_of(*others: SubscriptionRenewed, **keys: Any) -> History:
    return History(charges=tuple(Charge.of(c) for c in others), **keys)


def test_the_default_is_the_first_renewal_and_one_invite_per_customer_per_90_days() -> None:
    trigger = Trigger(on="subscription_renewed", event_type="subscription_renewed")
    assert trigger.renewal_rule is Renewals.FIRST
    assert trigger.per_customer == DEFAULT_RENEWAL_PER_CUSTOMER == timedelta(days=90)
    assert Trigger(
        on="subscription_renewed", event_type="renewal", per_customer="0d"
    ).per_customer == (timedelta(0))
    # Order triggers keep their own default: no throttle unless asked.
    assert Trigger(on="order_fulfilled", event_type="order_shipped").per_customer is None


def test_first_fires_on_the_first_renewal_only() -> None:
    config = renewed(renewals="first")
    created = charge("in_0", 0, renewal=0)
    first = charge("in_1", 30)
    second = charge("in_2", 60)
    (enqueue,) = decide(config, history_of(created), first)
    assert isinstance(enqueue, Enqueue)
    assert enqueue.key == "stripe:acct_1:in_1:subscription_renewed"
    (skipped,) = decide(config, history_of(created, first), second)
    assert skipped == Skipped(
        key="stripe:acct_1:in_2:subscription_renewed",
        reason=SkipReason.RENEWAL_NOT_SELECTED,
        detail="renewal 2; renewals = 'first'",
    )


def test_all_fires_on_every_renewal_but_not_on_the_first_purchase() -> None:
    config = renewed(renewals="all", per_customer="0d")
    created = charge("in_0", 0, renewal=0)
    assert decide(config, History(), created) == [Recorded(note=Note.NOTHING_TO_DO)]
    for n in range(1, 4):
        others = [charge(f"in_{i}", 30 * i) for i in range(n)]
        (decision,) = decide(config, history_of(created, *others[1:]), charge(f"in_{n}", 30 * n))
        assert isinstance(decision, Enqueue), n


def test_every_nth_fires_on_renewals_n_2n_and_so_on() -> None:
    config = renewed(renewals="every_nth", nth=3, per_customer="0d")
    fired = []
    for n in range(1, 8):
        earlier = [charge(f"in_{i}", 30 * i) for i in range(1, n)]
        (decision,) = decide(config, history_of(*earlier), charge(f"in_{n}", 30 * n))
        if isinstance(decision, Enqueue):
            fired.append(n)
        else:
            assert isinstance(decision, Skipped)
            assert decision.reason is SkipReason.RENEWAL_NOT_SELECTED
    assert fired == [3, 6]


def test_the_platforms_own_count_wins_over_the_journals() -> None:
    """Recharge counts its charges: renewal 2 is not the first even when nothing came before."""
    assert renewal_number(charge("in_9", 10, renewal=2), []) == 2
    assert renewal_number(charge("in_9", 10), [Charge.of(charge("in_1", 5))]) == 2
    # A first purchase and later charges do not count as renewals before it.
    later = [Charge.of(charge("in_0", 0, renewal=0)), Charge.of(charge("in_5", 50))]
    assert renewal_number(charge("in_9", 10), later) == 1


@pytest.mark.parametrize("keys", [{}, {"renewals": "every_nth", "nth": 1}])
def test_a_renewal_without_count_or_subscription_is_not_taken_for_renewal_1(
    keys: dict[str, Any],
) -> None:
    """A renewal order recognised by its tag alone cannot be numbered: "first" and "every_nth"
    skip it with their own reason, "all" fires on it."""
    unnumbered = attrs.evolve(charge("o_1", 30), subscription=None)
    [skipped] = decide(renewed(**keys), History(), unnumbered)
    assert isinstance(skipped, Skipped)
    assert skipped.reason is SkipReason.RENEWAL_NUMBER_UNKNOWN
    [fired] = decide(renewed(renewals="all"), History(), unnumbered)
    assert isinstance(fired, Enqueue)
    # A count alone numbers it (the platform's own count).
    [counted] = decide(renewed(**keys), History(), attrs.evolve(unnumbered, renewal=1))
    assert isinstance(counted, Enqueue)


def test_min_subscription_age_counts_from_the_earliest_start_known() -> None:
    config = renewed(renewals="all", min_subscription_age="60d", per_customer="0d")
    young = charge("in_1", 30)
    (skipped,) = decide(config, history_of(charge("in_0", 0, renewal=0)), young)
    assert skipped == Skipped(
        key="stripe:acct_1:in_1:subscription_renewed",
        reason=SkipReason.SUBSCRIPTION_TOO_YOUNG,
        detail="younger than 60d",
    )
    old_enough = charge("in_1", 30, started=at(-40))
    (enqueue,) = decide(config, History(), old_enough)
    assert isinstance(enqueue, Enqueue)
    # Nothing known of the start: the charge itself is the start, so it is too young.
    assert subscription_age(charge("in_1", 30), []) == timedelta(0)


def test_per_customer_throttles_a_renewal_after_an_invite_for_another_subscription() -> None:
    config = renewed()
    last = at(20)
    (decision,) = decide(config, History(customer_invites=(last,)), charge("in_1", 30))
    assert decision == Throttled(key="stripe:acct_1:in_1:subscription_renewed", last_invite_at=last)
    (decision,) = decide(config, History(customer_invites=(at(-70),)), charge("in_1", 30))
    assert isinstance(decision, Enqueue)


def test_a_refund_inside_the_hold_back_cancels_the_waiting_renewal_invite() -> None:
    config = renewed(delay="5d")
    renewal = charge("in_1", 30)
    (enqueue,) = decide(config, History(), renewal)
    assert isinstance(enqueue, Enqueue)
    refund = OrderRefunded(
        source="billing",
        platform="stripe",
        account="acct_1",
        stream="in_1",
        occurred_at=at(31),
        delivery_id="evt_refund",
        refund=Refund(refund_id="re_1"),
        full=True,
    )
    history = History(events=(renewal,), decisions=(enqueue,), waiting=frozenset({enqueue.key}))
    assert decide(config, history, refund) == [Cancel(key=enqueue.key, reason=SkipReason.REFUNDED)]


def test_subscription_created_fires_on_the_first_purchase_only() -> None:
    trigger = Trigger(on="subscription_created", event_type="subscription_started")
    config = PolicyConfig(channel_id=CHANNEL, triggers=[trigger])
    (enqueue,) = decide(config, History(), charge("in_0", 0, renewal=0))
    assert isinstance(enqueue, Enqueue)
    assert decide(config, History(), charge("in_1", 30)) == [Recorded(note=Note.NOTHING_TO_DO)]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"on": "order_fulfilled", "renewals": "all"},
            "renewals needs on = 'subscription_renewed'",
        ),
        ({"renewals": "every_nth"}, "renewals = 'every_nth' needs nth = N"),
        ({"renewals": "first", "nth": 2}, "nth needs renewals = 'every_nth'"),
        ({"renewals": "every_nth", "nth": 0}, "nth must be a whole number >= 1"),
        ({"renewals": "sometimes"}, "'sometimes' is not one of 'all', 'first', 'every_nth'"),
    ],
)
def test_a_renewal_rule_that_cannot_work_is_refused(keys: dict[str, Any], message: str) -> None:
    values = {"on": "subscription_renewed", "event_type": "subscription_renewed"} | keys
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Trigger(**values)


def _file(trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "sources": [
            {
                "name": "billing",
                "adapter": "shopify",
                "shop_domain": "my-shop.myshopify.com",
                "webhook_secrets": ["whsec_x"],
                "channel_id": CHANNEL,
                "triggers": [trigger],
            }
        ]
    }


def test_the_issues_trigger_keys_load_from_toml() -> None:
    """The keys issue 12 names, verbatim, become the trigger."""
    loaded = config_from_mapping(
        _file(
            {
                "on": "subscription_renewed",
                "event_type": "subscription_renewed",
                "renewals": "all",
                "per_customer": "0d",
                "delay": "2d",
            }
        ),
        environ={},
    )
    (trigger,) = loaded.sources[0].policy.triggers
    assert trigger == Trigger(
        on="subscription_renewed",
        event_type="subscription_renewed",
        renewals="all",
        per_customer=timedelta(0),
        delay=timedelta(days=2),
    )


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"renewals": "sometimes"}, "sources[0].triggers[0].renewals: 'sometimes' is not one of"),
        ({"renewals": "every_nth", "nth": "2"}, "sources[0].triggers[0].nth: expected an integer"),
        ({"min_subscription_age": "2 months"}, "sources[0].triggers[0].min_subscription_age:"),
        ({"per_customer": "often"}, "sources[0].triggers[0].per_customer: not a duration"),
        ({"renewals": "every_nth"}, "sources[0].triggers[0]: renewals = 'every_nth' needs nth"),
    ],
)
def test_a_bad_renewal_key_is_reported_at_its_key_path(keys: dict[str, Any], expected: str) -> None:
    trigger = {"on": "subscription_renewed", "event_type": "subscription_renewed"} | keys
    with pytest.raises(ConfigFileError) as caught:
        config_from_mapping(_file(trigger), environ={})
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith(expected) for p in problems), problems
