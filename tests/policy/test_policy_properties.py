"""Webhooks arrive late, twice and in any order: the invites that result do not depend on it."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from policy_journal import (
    Journal,
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

from kit.domain import DomainEvent
from kit.policy import Enqueue, Exclusions, PolicyConfig, Trigger

TRIGGERS = (
    Trigger(on="order_fulfilled", event_type="order_shipped", delay="3d"),
    Trigger(on="order_delivered", event_type="delivery", delay="2d", delivered_fallback="10d"),
    Trigger(on="order_paid", event_type="order_paid"),
)
POLICY = config(triggers=TRIGGERS, exclusions=Exclusions(order_tags=["no-review"]))

# One order's possible deliveries; statuses only ever move forward in a shop.
STATUS_EVENTS: tuple[DomainEvent, ...] = (
    placed(0),
    paid(0.2),
    fulfilled(3),
    fulfilled(4, shipment="s2", facts=None),
    delivered(5),
    delivered(6, shipment="s2"),
    refunded(4.5, (("2", 1),)),
    refunded(5.5, (("1", 2),), refund="r2"),
    refunded(7, full=True, refund="r3"),
    cancelled(8),
    updated(2),
    updated(9),
)
# Snapshots whose facts flip an exclusion back and forth.
FLIPPING_EVENTS: tuple[DomainEvent, ...] = (
    *STATUS_EVENTS,
    updated(1, facts=order(tags=("no-review",))),
    updated(3.5, facts=order(email=None)),
    updated(6.5, facts=order(tags=("no-review",), test=True)),
)


def run(policy: PolicyConfig, events: list[DomainEvent]) -> Journal:
    journal = Journal(policy)
    for event in events:
        decisions = journal.feed(event)
        assert decisions, "every event is journaled with at least one decision"
    return journal


def live(journal: Journal, key: str) -> object:
    entry = journal.entry(key)
    return entry if entry is not None and entry[0] else None


def enqueues_per_key(journal: Journal) -> dict[str, int]:
    counts: dict[str, int] = {}
    for decision in journal.decisions:
        if isinstance(decision, Enqueue):
            counts[decision.key] = counts.get(decision.key, 0) + 1
    return counts


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FLIPPING_EVENTS), min_size=1, max_size=14))
def test_any_order_and_duplication_enqueues_each_key_at_most_once(
    events: list[DomainEvent],
) -> None:
    journal = run(POLICY, events)
    assert all(count == 1 for count in enqueues_per_key(journal).values())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(STATUS_EVENTS), min_size=1, max_size=14), st.randoms())
def test_any_order_and_duplication_ends_in_the_same_entries(
    events: list[DomainEvent], random: object
) -> None:
    """While every entry still waits, the outbox ends the same however the deliveries came: an
    invite with the same products and send_after, or none (never enqueued, or withdrawn)."""
    shuffled = list(events)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    in_time_order = sorted(set(events), key=lambda e: (e.occurred_at, e.delivery_id))
    expected = run(POLICY, in_time_order)
    actual = run(POLICY, shuffled)
    for trigger in TRIGGERS:
        key = f"shopify:kit-demo.myshopify.com:5560001000001:{trigger.event_type}"
        assert live(actual, key) == live(expected, key), key


def test_the_property_covers_cancels_amends_and_skips() -> None:
    """The event pool is rich enough that every kind of decision occurs (in time order or
    backwards), so the properties above are not vacuous."""
    kinds = {type(d).__name__ for d in run(POLICY, list(STATUS_EVENTS)).decisions}
    kinds |= {type(d).__name__ for d in run(POLICY, list(reversed(STATUS_EVENTS))).decisions}
    kinds |= {
        type(d).__name__
        for d in run(POLICY, sorted(FLIPPING_EVENTS, key=lambda e: e.occurred_at)).decisions
    }
    assert {"Enqueue", "Amend", "Cancel", "Recorded", "Stale", "Skipped"} <= kinds


def test_redelivering_every_event_changes_nothing() -> None:
    journal = run(POLICY, list(STATUS_EVENTS))
    before = {key: journal.entry(key) for key in enqueues_per_key(journal)}
    for event in STATUS_EVENTS:
        journal.feed(attrs.evolve(event))
    assert {key: journal.entry(key) for key in enqueues_per_key(journal)} == before
    assert all(count == 1 for count in enqueues_per_key(journal).values())
