"""The renewal policy: which charges of a subscription may become invites.

One place for every subscription adapter (Stripe, Recharge, Shopify subscriptions). Each charge
is its own stream (a refund of it lands there and withdraws its invite through the ordinary
refund rule); what a charge cannot know alone, the journal supplies as :class:`Charge` values
of the subscription's *other* streams: how many renewals came before it, and since when the
subscription runs.

* ``renewals = "first"`` fires on renewal 1, ``"every_nth"`` on renewals N, 2N, ..., ``"all"``
  on every renewal; the charge that started the subscription (renewal 0) is a first purchase
  and fires only ``on = "subscription_created"`` triggers.
* A renewal's number is the platform's count when it gives one, else 1 + the renewals of
  the same subscription the journal holds that happened before it (Stripe, Recharge and
  Shopify's billing attempts all leave it to the journal; each marks only the first purchase). A
  renewal that overtakes an earlier one in transit is numbered low; the per-customer throttle
  (90 days by default) keeps that from turning into a second invite.
* A renewal that carries neither a count nor a subscription (a Shopify order recognised by its
  tag, with no billing attempt beside it) has no number: ``"first"`` and ``"every_nth"`` skip
  it rather than take it for renewal 1; the source that names the subscription decides it.
* A subscription's age is counted from the earliest start anyone reported: the platform's
  ``started_at``, the first purchase, or else the earliest charge the journal saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs

from kit.domain import Skip, SkipReason, SubscriptionRenewed
from kit.policy.config import Renewals, Trigger, TriggerOn


@attrs.frozen(kw_only=True)
class Charge:
    """One charge of a subscription, as another stream of the journal holds it."""

    stream: str
    occurred_at: datetime
    renewal: int | None = None
    started_at: datetime | None = None

    @classmethod
    def of(cls, event: SubscriptionRenewed) -> Charge:
        return cls(
            stream=event.stream,
            occurred_at=event.occurred_at,
            renewal=event.renewal,
            started_at=event.started_at,
        )


def renewal_number(event: SubscriptionRenewed, others: Iterable[Charge]) -> int:
    """The platform's count, else 1 + the renewals (not first purchases) that came before."""
    if event.renewal is not None:
        return event.renewal
    earlier = {
        c.stream
        for c in others
        if c.stream != event.stream and c.renewal != 0 and c.occurred_at < event.occurred_at
    }
    return 1 + len(earlier)


def subscription_age(event: SubscriptionRenewed, others: Iterable[Charge]) -> timedelta:
    """How long the subscription ran when ``event`` charged (never negative)."""
    starts = [event.occurred_at]
    for charge in (Charge.of(event), *others):
        starts.append(charge.started_at or charge.occurred_at)
    return max(event.occurred_at - min(starts), timedelta(0))


def fires_on(trigger: Trigger, event: SubscriptionRenewed) -> bool:
    """Whether the kind of charge is one the trigger reads (a first purchase or a renewal)."""
    first_purchase = event.renewal == 0
    if trigger.on is TriggerOn.SUBSCRIPTION_CREATED:
        return first_purchase
    return trigger.on is TriggerOn.SUBSCRIPTION_RENEWED and not first_purchase


def selection(
    trigger: Trigger, event: SubscriptionRenewed, others: Iterable[Charge]
) -> Skip | None:
    """Why the renewal policy leaves ``event`` out, or ``None`` when the trigger may fire."""
    if trigger.on is not TriggerOn.SUBSCRIPTION_RENEWED:
        return None
    charges = tuple(others)
    rule = trigger.renewal_rule
    if rule is not Renewals.ALL and event.renewal is None and not event.subscription:
        return Skip(
            SkipReason.RENEWAL_NUMBER_UNKNOWN,
            f"no renewal count and no subscription; renewals = {rule.value!r}",
        )
    number = renewal_number(event, charges)
    if rule is Renewals.FIRST and number != 1:
        return Skip(SkipReason.RENEWAL_NOT_SELECTED, f"renewal {number}; renewals = 'first'")
    if rule is Renewals.EVERY_NTH:
        assert trigger.nth is not None  # the trigger's own check
        if number % trigger.nth != 0:
            return Skip(
                SkipReason.RENEWAL_NOT_SELECTED,
                f"renewal {number}; renewals = 'every_nth', nth = {trigger.nth}",
            )
    minimum = trigger.min_subscription_age
    if minimum is not None and subscription_age(event, charges) < minimum:
        return Skip(SkipReason.SUBSCRIPTION_TOO_YOUNG, f"younger than {_days(minimum)}")
    return None


def _days(value: timedelta) -> str:
    if value % timedelta(days=1) == timedelta(0):
        return f"{value.days}d"
    return f"{int(value.total_seconds())}s"


__all__ = ["Charge", "fires_on", "renewal_number", "selection", "subscription_age"]
