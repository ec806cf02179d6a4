"""The journal hands the renewal policy a subscription's charges from other streams, on every
backend: it counts the renewals before a charge by the subscription id each charge carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kit.adapters import DeliveryIdentity
from kit.domain import OrderFacts, SubscriptionRenewed
from kit.journal.ingest import IntakeSource
from kit.policy import PolicyConfig, Trigger

from .conftest import Kit, decided, source
from .deliveries import CHANNEL

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def renewal(stream: str, days: int, subscription: str, email: str) -> SubscriptionRenewed:
    return SubscriptionRenewed(
        source="my-shop",
        platform="stripe",
        account="acct_1",
        stream=stream,
        occurred_at=T0 + timedelta(days=days),
        delivery_id=f"evt_{stream}",
        order=OrderFacts(reference=stream.upper(), placed_at=T0, email=email),
        subscription=subscription,
    )


def billing() -> IntakeSource:
    trigger = Trigger(on="subscription_renewed", event_type="subscription_renewed")
    shopify = source()
    return IntakeSource(
        name="my-shop",
        adapter=shopify.adapter,
        policy=PolicyConfig(channel_id=CHANNEL, triggers=(trigger,)),
    )


async def test_the_second_renewal_of_a_subscription_is_counted_as_such(kit: Kit) -> None:
    """First renewal only: the journal finds the earlier charge of sub_a in its own stream, so
    the next one is renewal 2; another customer's subscription counts on its own."""
    events = [
        renewal("in_1", 30, "sub_a", "a@example.org"),
        renewal("in_2", 60, "sub_a", "a@example.org"),
        renewal("in_3", 60, "sub_b", "b@example.org"),
    ]
    results = []
    for event in events:
        identity = DeliveryIdentity(delivery_id=event.delivery_id)
        results.append(await kit.intake.ingest(billing(), identity, [event]))

    assert [decided(r) for r in results] == [
        [("enqueue", "enqueued")],
        [("skipped", "recorded")],
        [("enqueue", "enqueued")],
    ]
    skipped = results[1].decisions[0].decision
    assert getattr(skipped, "detail", None) == "renewal 2; renewals = 'first'"
