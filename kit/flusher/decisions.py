"""What the flusher does with each result: pure functions, no event loop, no I/O.

Each function turns one result (a POST's answer or exception, a reconciliation's finding) into
one :class:`Decision`: the outcome to store, the attempt-log label, the counters to add and any
pause it calls for. The flusher applies decisions in one place; these functions are where the
exactly-once rules about *what* to do live, and they can be tested without a server.
"""

from __future__ import annotations

import enum
import random

import attrs

from kit.errors import (
    ETrustedError,
    FailureKind,
    RateLimitedError,
    TurnedAwayError,
)
from kit.flusher.config import Count, FlusherConfig, InDoubtPolicy
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Claimed,
    Completion,
    Dead,
    Delivered,
    InDoubt,
    Outcome,
    Release,
    Resend,
    Retry,
)


class Label(enum.StrEnum):
    """The ``outcome`` of an attempt-log line. Stored: the values never change."""

    DELIVERED = "delivered"  # 202 with an EventRef
    ADOPTED = "adopted"  # reconciliation found the event in eTrusted
    RETRY = "retry"  # failed, nothing created; counted against max_sends
    DEFERRED = "deferred"  # turned away before anything could be created; not counted
    UNAUTHORIZED = "unauthorized"  # credentials refused; not counted
    IN_DOUBT = "in_doubt"  # may have been created: reconcile before any resend
    DEAD = "dead"  # rejected by eTrusted, or the attempt budget is spent
    NOT_FOUND_YET = "not_found_yet"  # reconciliation looked, nothing yet; looks again
    RECONCILE_FAILED = "reconcile_failed"  # the lookup itself failed
    RESEND = "resend"  # nothing found for a whole window: sent again (counted)
    PARKED = "parked"  # in doubt and not resent: for an operator

    @property
    def deferred(self) -> bool:
        """Logged as a ``deferred`` attempt: it did not use up the attempt budget."""
        return self in _DEFERRED_LABELS


_DEFERRED_LABELS = frozenset({Label.DEFERRED, Label.UNAUTHORIZED})
# Module constants for what every delivered result reads: on Python 3.11 reading an enum member
# (or its value) through its class is a call of Python code, and these run once per result.
_DELIVERED, _DELIVERED_COUNTS, _DEFERRED_KIND = (
    Label.DELIVERED,
    (Count.DELIVERED,),
    AttemptKind.DEFERRED,
)
_LABEL_TEXT: dict[Label, str] = {label: label.value for label in Label}


LEASE_BUDGET_SPENT = "POST outlived its lease budget"


@attrs.frozen(kw_only=True)
class Decision:
    """One result's consequences. ``label`` None: no attempt-log line (a claim given back)."""

    outcome: Outcome
    label: Label | None = None
    counts: tuple[Count, ...] = ()
    error: str | None = None
    status: int | None = None
    pace: float | None = None  # pause the whole fleet this long (the account's rate limit)
    credentials_refused: bool = False  # pause this flusher: its own credentials are refused
    asked_wait: float | None = None  # a Retry-After longer than retry_after_max, as asked


def released() -> Decision:
    """Give a claim back untouched: it is due again at once, for any flusher."""
    return Decision(outcome=Release(), counts=(Count.RELEASED,))


def refused_before_sending(reason: str) -> Decision:
    """Parked without a POST (purged payload, unknown event type): no attempt-log line."""
    return Decision(outcome=Dead(reason), counts=(Count.DEAD,))


def abandoned(*, posted: bool, now: float, why: str) -> Decision:
    """A claim given up (stop, bug): in doubt if its POST had left, else released."""
    if posted:
        return Decision(outcome=InDoubt(due_at=now, error=why), counts=(Count.IN_DOUBT,))
    return released()


def turned_away(exc: ETrustedError) -> bool:
    """Refused before anything could be created (429, no connection, token endpoint down).

    Not the entry's fault: such a send does not use up the attempt budget, so an outage of any
    length never parks good events.
    """
    return isinstance(exc, TurnedAwayError)


def cap_retry_after(value: float | None, limit: float) -> float | None:
    """A server's Retry-After, at most ``limit``."""
    return None if value is None else min(value, limit)


def backoff_step(item: Claimed, *, deferred: bool) -> int:
    """Which failure this is, for the backoff: counted sends, or (deferred) claims so far."""
    if deferred:
        return max(1, item.attempt - item.sends)
    return max(1, item.sends + 1)


def pace_for(retry_after: float | None, streak: int, config: FlusherConfig) -> float:
    """The fleet's pause after a 429: what eTrusted asked for, else doubling per burst."""
    if retry_after is not None:
        return retry_after
    exponent = min(max(0, streak - 1), 64)
    return min(config.pace_max, config.pace_default * 2.0**exponent)


def classify_post(
    item: Claimed,
    result: str | BaseException,
    *,
    now: float,
    config: FlusherConfig,
    rng: random.Random,
    pace_streak: int = 1,
) -> Decision:
    """A POST's result (the EventRef, or what it raised) -> what to store and do.

    ``pace_streak`` is this 429's place in a run of 429s (for the default pace).
    """
    if isinstance(result, str):
        return Decision(
            outcome=Delivered(result), label=_DELIVERED, counts=_DELIVERED_COUNTS, status=202
        )
    if isinstance(result, TimeoutError):  # cut off at its lease budget: it may have arrived
        return _in_doubt(now + config.reconcile_delay, LEASE_BUDGET_SPENT)
    if not isinstance(result, ETrustedError):  # a bug or an untranslated error: assume the worst
        return _in_doubt(now + config.reconcile_delay, repr(result))
    exc, error = result, str(result)
    if exc.kind is FailureKind.PERMANENT:
        return Decision(
            outcome=Dead(f"rejected by eTrusted: {exc}"),
            label=Label.DEAD,
            counts=(Count.DEAD,),
            error=error,
            status=exc.status,
        )
    if exc.kind is FailureKind.IN_DOUBT:
        return attrs.evolve(_in_doubt(now + config.reconcile_delay, error), status=exc.status)
    if exc.kind is FailureKind.UNAUTHORIZED:
        # Nothing was created, and it is not the entry's fault: due again at once for a flusher
        # whose credentials work; this one pauses.
        return Decision(
            outcome=Retry(due_at=now, error=error),
            label=Label.UNAUTHORIZED,
            counts=(Count.AUTH_PAUSES,),
            error=error,
            status=exc.status,
            credentials_refused=True,
        )
    deferred = turned_away(exc)
    sends = item.sends + (0 if deferred else 1)
    retry_after = cap_retry_after(exc.retry_after, config.retry_after_max)
    asked = exc.retry_after if exc.retry_after != retry_after else None
    counts: tuple[Count, ...] = ()
    pace = None
    if isinstance(exc, RateLimitedError):
        counts = (Count.RATE_LIMITED,)
        pace = pace_for(retry_after, pace_streak, config)
    if not deferred and sends >= config.max_sends:
        return Decision(
            outcome=Dead(f"gave up after {sends} sends; last error: {exc}"),
            label=Label.DEAD,
            counts=(*counts, Count.DEAD),
            error=error,
            status=exc.status,
            pace=pace,
            asked_wait=asked,
        )
    step = backoff_step(item, deferred=deferred)
    delay = config.backoff.delay(step, retry_after=retry_after, rng=rng)
    return Decision(
        outcome=Retry(due_at=now + delay, error=error),
        label=Label.DEFERRED if deferred else Label.RETRY,
        counts=(*counts, Count.RETRIED),
        error=error,
        status=exc.status,
        pace=pace,
        asked_wait=asked,
    )


def _in_doubt(due_at: float, error: str) -> Decision:
    return Decision(
        outcome=InDoubt(due_at=due_at, error=error),
        label=Label.IN_DOUBT,
        counts=(Count.IN_DOUBT,),
        error=error,
    )


def classify_reconcile(
    item: Claimed, result: str | ETrustedError | None, *, now: float, config: FlusherConfig
) -> Decision:
    """A reconciliation's result (the adopted ref, None for nothing found, or the lookup's
    error) -> what to store and do."""
    since = item.in_doubt_since if item.in_doubt_since is not None else now
    waited = now - since
    if isinstance(result, ETrustedError):
        exc, error = result, str(result)
        if exc.kind is FailureKind.PERMANENT and waited >= config.reconcile_window:
            # eTrusted refuses the lookup itself (e.g. no access to this channel's invites):
            # waiting longer cannot help, and not having looked is no licence to resend.
            error = (
                f"in doubt: eTrusted refused the lookup for {waited:.0f} s ({exc}); an "
                "operator must check eTrusted and then retry or drop it"
            )
            return Decision(
                outcome=Dead(error),
                label=Label.PARKED,
                counts=(Count.DEAD,),
                error=error,
                status=exc.status,
            )
        return Decision(
            outcome=InDoubt(due_at=now + config.reconcile_interval, error=error),
            label=Label.RECONCILE_FAILED,
            error=error,
            status=exc.status,
            credentials_refused=exc.kind is FailureKind.UNAUTHORIZED,
        )
    if result is not None:
        return Decision(
            outcome=Delivered(result, adopted=True),
            label=Label.ADOPTED,
            counts=(Count.ADOPTED, Count.DELIVERED),
        )
    if waited < config.reconcile_window:
        error = "not found in eTrusted yet"
        return Decision(
            outcome=InDoubt(due_at=now + config.reconcile_interval, error=error),
            label=Label.NOT_FOUND_YET,
            error=error,
        )
    return after_window(item, waited, now=now, config=config)


def after_window(item: Claimed, waited: float, *, now: float, config: FlusherConfig) -> Decision:
    """Looked for a whole window and found nothing: resend (counted) or park.

    Resends stop at the attempt budget like any retry: an answer that keeps going in doubt
    (say a 409 that always comes back) ends parked, not resent forever.
    """
    why = "not found in eTrusted"
    if item.sends >= config.max_sends:
        error = f"in doubt after {item.sends} sends: {why} after {waited:.0f} s"
        return Decision(outcome=Dead(error), label=Label.PARKED, counts=(Count.DEAD,), error=error)
    if config.in_doubt_policy is InDoubtPolicy.RESEND:
        error = f"{why} after {waited:.0f} s; sending again"
        return Decision(
            outcome=Resend(due_at=now, reason=error),
            label=Label.RESEND,
            counts=(Count.BLIND_RESENDS,),
            error=error,
        )
    error = (
        f"in doubt: {why} after {waited:.0f} s; an operator must check eTrusted and then "
        "retry or drop it"
    )
    return Decision(outcome=Dead(error), label=Label.PARKED, counts=(Count.DEAD,), error=error)


def completion(
    item: Claimed,
    decision: Decision,
    *,
    kind: AttemptKind | None = None,
    started_at: float = 0.0,
    duration_ms: float = 0.0,
) -> Completion:
    """The result to write; with an attempt-log line when the decision has a label and the
    attempt a kind (a POST or a lookup)."""
    if decision.label is None or kind is None:
        return Completion(item.key, item.attempt, decision.outcome, None, item.entry_id)
    record = AttemptRecord(
        attempt=item.attempt,
        kind=_DEFERRED_KIND if decision.label in _DEFERRED_LABELS else kind,  # label.deferred
        started_at=started_at,
        duration_ms=round(duration_ms, 3),
        outcome=_LABEL_TEXT[decision.label],
        http_status=decision.status,
        error=decision.error,
    )
    return Completion(item.key, item.attempt, decision.outcome, record, item.entry_id)
