"""What the flusher decides for each result: pure functions, tested without an event loop."""

from __future__ import annotations

import random

import attrs
import pytest

from kit.errors import (
    AuthenticationError,
    ConnectError,
    InDoubtError,
    PermanentAPIError,
    RateLimitedError,
    RetryableAPIError,
    RetryableError,
    TokenUnavailableError,
    UnauthorizedError,
)
from kit.flusher import FlusherConfig, InDoubtPolicy, Label
from kit.flusher.config import Count, FlusherStats
from kit.flusher.decisions import (
    LEASE_BUDGET_SPENT,
    abandoned,
    after_window,
    backoff_step,
    cap_retry_after,
    classify_post,
    classify_reconcile,
    pace_for,
    turned_away,
)
from kit.outbox.types import Claimed, ClaimMode, Dead, Delivered, InDoubt, Release, Resend, Retry
from kit.retry import Backoff

NOW = 1_000_000.0
CONFIG = FlusherConfig(max_sends=3, backoff=Backoff(base=1.0, cap=8.0), retry_after_max=60.0)


def claimed(*, sends: int = 0, attempt: int = 1, in_doubt_since: float | None = None) -> Claimed:
    return Claimed(
        key="k",
        attempt=attempt,
        entry_id=1,
        mode=ClaimMode.SEND,
        payload="{}",
        event_type="order_shipped",
        channel_id="chl-1",
        transaction_reference="t-1",
        sends=sends,
        first_sent_at=None,
        in_doubt_since=in_doubt_since,
        lease_expires_at=NOW + 60,
        created_at=NOW - 5,
    )


def test_a_202_is_delivered_and_counted() -> None:
    d = classify_post(claimed(), "evt-1", now=NOW, config=CONFIG, rng=random.Random())
    assert (d.outcome, d.label, d.counts, d.status) == (
        Delivered("evt-1"),
        Label.DELIVERED,
        (Count.DELIVERED,),
        202,
    )


@pytest.mark.parametrize(
    "exc",
    [TimeoutError(), RuntimeError("bug"), InDoubtError("timeout")],
)
def test_anything_that_may_have_arrived_goes_in_doubt_never_retried(exc: BaseException) -> None:
    d = classify_post(claimed(), exc, now=NOW, config=CONFIG, rng=random.Random())
    assert isinstance(d.outcome, InDoubt)
    assert d.outcome.due_at == NOW + CONFIG.reconcile_delay
    assert (d.label, d.counts) == (Label.IN_DOUBT, (Count.IN_DOUBT,))
    if isinstance(exc, TimeoutError):
        assert d.error == LEASE_BUDGET_SPENT


def test_a_4xx_parks_at_once() -> None:
    d = classify_post(
        claimed(), PermanentAPIError("bad", status=400), now=NOW, config=CONFIG, rng=random.Random()
    )
    assert isinstance(d.outcome, Dead)
    assert (d.label, d.counts, d.status) == (Label.DEAD, (Count.DEAD,), 400)


@pytest.mark.parametrize(
    "exc", [UnauthorizedError("401", status=401), AuthenticationError("invalid_client")]
)
def test_refused_credentials_pause_this_flusher_and_leave_the_entry_due(exc: Exception) -> None:
    d = classify_post(claimed(), exc, now=NOW, config=CONFIG, rng=random.Random())
    assert d.credentials_refused
    assert d.pace is None
    assert d.outcome == Retry(due_at=NOW, error=str(exc))  # due at once, for another flusher
    assert (d.label, d.counts) == (Label.UNAUTHORIZED, (Count.AUTH_PAUSES,))
    assert d.label.deferred


def test_a_5xx_is_retried_with_backoff_and_counted_against_the_budget() -> None:
    d = classify_post(
        claimed(sends=1),
        RetryableAPIError("down", status=503),
        now=NOW,
        config=CONFIG,
        rng=random.Random(3),
    )
    assert isinstance(d.outcome, Retry)
    assert NOW <= d.outcome.due_at <= NOW + CONFIG.backoff.ceiling(2)
    assert (d.label, d.counts) == (Label.RETRY, (Count.RETRIED,))
    assert not d.label.deferred


def test_the_last_counted_send_parks() -> None:
    d = classify_post(
        claimed(sends=2),
        RetryableAPIError("down", status=500),
        now=NOW,
        config=CONFIG,
        rng=random.Random(),
    )
    assert isinstance(d.outcome, Dead)
    assert "gave up after 3 sends" in d.outcome.reason
    assert d.counts == (Count.DEAD,)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectError("refused"),
        TokenUnavailableError("token endpoint down"),
        RateLimitedError("slow down", status=429),
    ],
)
def test_turned_away_sends_never_use_up_the_budget(exc: RetryableError) -> None:
    assert turned_away(exc)
    d = classify_post(claimed(sends=2, attempt=9), exc, now=NOW, config=CONFIG, rng=random.Random())
    assert isinstance(d.outcome, Retry)
    assert d.label is Label.DEFERRED


def test_a_5xx_and_refused_credentials_are_not_turned_away() -> None:
    assert not turned_away(RetryableAPIError("down", status=503))
    assert not turned_away(AuthenticationError("invalid_client"))


def test_a_429_paces_the_fleet_for_its_retry_after_capped() -> None:
    exc = RateLimitedError("slow down", status=429, retry_after=7200.0)
    d = classify_post(claimed(), exc, now=NOW, config=CONFIG, rng=random.Random())
    assert d.pace == CONFIG.retry_after_max
    assert d.asked_wait == 7200.0
    assert d.counts == (Count.RATE_LIMITED, Count.RETRIED)
    assert isinstance(d.outcome, Retry)
    assert d.outcome.due_at >= NOW + CONFIG.retry_after_max  # Retry-After is a floor


def test_a_429_without_retry_after_paces_by_a_doubling_default() -> None:
    exc = RateLimitedError("slow down", status=429)
    paces = [
        classify_post(
            claimed(), exc, now=NOW, config=CONFIG, rng=random.Random(), pace_streak=n
        ).pace
        for n in (1, 2, 3)
    ]
    assert paces == [1.0, 2.0, 4.0]
    assert pace_for(None, 1000, CONFIG) == CONFIG.pace_max
    assert pace_for(5.0, 3, CONFIG) == 5.0


def test_retry_after_cap_and_backoff_step() -> None:
    assert cap_retry_after(None, 60.0) is None
    assert cap_retry_after(10.0, 60.0) == 10.0
    assert cap_retry_after(61.0, 60.0) == 60.0
    assert backoff_step(claimed(sends=2), deferred=False) == 3
    assert backoff_step(claimed(sends=2, attempt=6), deferred=True) == 4
    assert backoff_step(claimed(sends=0, attempt=1), deferred=True) == 1


def test_reconciliation_adopts_what_it_found() -> None:
    d = classify_reconcile(claimed(in_doubt_since=NOW - 5), "evt-9", now=NOW, config=CONFIG)
    assert d.outcome == Delivered("evt-9", adopted=True)
    assert (d.label, d.counts) == (Label.ADOPTED, (Count.ADOPTED, Count.DELIVERED))


def test_reconciliation_keeps_looking_within_the_window() -> None:
    d = classify_reconcile(claimed(in_doubt_since=NOW - 5), None, now=NOW, config=CONFIG)
    assert d.outcome == InDoubt(due_at=NOW + CONFIG.reconcile_interval, error=d.error or "")
    assert (d.label, d.counts) == (Label.NOT_FOUND_YET, ())


@pytest.mark.parametrize("policy", list(InDoubtPolicy))
def test_after_the_window_resend_or_park(policy: InDoubtPolicy) -> None:
    config = attrs.evolve(CONFIG, in_doubt_policy=policy)
    d = after_window(claimed(sends=1), 400.0, now=NOW, config=config)
    if policy is InDoubtPolicy.RESEND:
        assert isinstance(d.outcome, Resend)
        assert (d.label, d.counts) == (Label.RESEND, (Count.BLIND_RESENDS,))
    else:
        assert isinstance(d.outcome, Dead)
        assert (d.label, d.counts) == (Label.PARKED, (Count.DEAD,))


def test_after_the_window_a_spent_budget_parks_even_with_resend() -> None:
    d = after_window(claimed(sends=3), 400.0, now=NOW, config=CONFIG)
    assert isinstance(d.outcome, Dead)
    assert d.label is Label.PARKED


def test_a_lookup_refused_for_a_whole_window_parks_and_one_refused_early_waits() -> None:
    exc = PermanentAPIError("forbidden", status=403)
    late = classify_reconcile(claimed(in_doubt_since=NOW - 400), exc, now=NOW, config=CONFIG)
    assert isinstance(late.outcome, Dead)
    assert late.label is Label.PARKED
    early = classify_reconcile(claimed(in_doubt_since=NOW - 4), exc, now=NOW, config=CONFIG)
    assert isinstance(early.outcome, InDoubt)
    assert early.label is Label.RECONCILE_FAILED
    refused = classify_reconcile(
        claimed(in_doubt_since=NOW - 4), UnauthorizedError("401"), now=NOW, config=CONFIG
    )
    assert refused.credentials_refused


def test_abandoned_claims_go_in_doubt_only_once_their_post_left() -> None:
    assert isinstance(abandoned(posted=True, now=NOW, why="stop").outcome, InDoubt)
    released = abandoned(posted=False, now=NOW, why="stop")
    assert (released.outcome, released.counts) == (Release(), (Count.RELEASED,))


def test_stats_add_up_what_decisions_count() -> None:
    stats = FlusherStats()
    stats.count((Count.ADOPTED, Count.DELIVERED))
    stats.count((Count.DELIVERED,))
    assert (stats.adopted, stats.delivered) == (1, 2)
    assert {c.value for c in Count} <= set(stats.as_dict())


def test_labels_keep_their_stored_spelling() -> None:
    """Stored in every attempt log: a renamed value would make old logs unreadable."""
    assert {label.value for label in Label} == {
        "delivered", "adopted", "retry", "deferred", "unauthorized", "in_doubt", "dead",
        "not_found_yet", "reconcile_failed", "resend", "parked",
    }  # fmt: skip
