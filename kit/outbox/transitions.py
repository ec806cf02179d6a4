"""What a completion does to an entry: one declarative table, read by every backend.

:data:`TRANSITIONS` maps (outcome kind, the state the claim found the entry in) to a
:class:`Transition`: the state it goes to and what happens to each field. The in-memory backend
applies it to an :class:`~kit.outbox.types.Entry`; the SQL backends turn each completion into the
named parameters of one generic ``UPDATE`` (:func:`effect_of`), so none of them spells the rules
out again. The contract suite walks every row against every backend.

Besides its row, every applied completion clears the lease (``lease_owner`` and
``lease_expires_at``), sets ``updated_at`` to now and, when its attempt record is a SEND, adds one
to ``sends``. Whether a completion applies at all (the attempt fence) is not in the table: see
:meth:`kit.outbox.protocol.Storage.finish`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple

import attrs

from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Dead,
    Delivered,
    InDoubt,
    Outcome,
    Release,
    Resend,
    Retry,
    State,
)


class OutcomeKind(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    IN_DOUBT = "in_doubt"
    DEAD = "dead"
    RESEND = "resend"
    RELEASE = "release"


class Due(enum.StrEnum):
    """What becomes of ``due_at``."""

    KEEP = "keep"
    OUTCOME = "outcome"  # the outcome's own ``due_at``
    NOW = "now"


class Since(enum.StrEnum):
    """What becomes of ``in_doubt_since``."""

    KEEP = "keep"
    SET_IF_UNSET = "set_if_unset"  # now, unless the entry has been in doubt since earlier
    CLEAR = "clear"


class ErrorText(enum.StrEnum):
    """What becomes of ``last_error``."""

    KEEP = "keep"
    SET = "set"  # the outcome's text; ``Delivered`` has none, so it clears the error


@attrs.frozen
class Transition:
    to: State
    due_at: Due = Due.KEEP
    in_doubt_since: Since = Since.KEEP
    last_error: ErrorText = ErrorText.SET
    #: ``event_ref`` and ``adopted`` from the outcome, ``delivered_at`` = now
    records_delivery: bool = False
    #: ``blind_resends`` + 1
    blind_resend: bool = False


FINISHABLE_STATES = (State.SENDING, State.IN_DOUBT)

_S, _D = State.SENDING, State.IN_DOUBT
_DELIVERED = Transition(State.DELIVERED, records_delivery=True)
_RETRY = Transition(State.PENDING, due_at=Due.OUTCOME)
_IN_DOUBT = Transition(State.IN_DOUBT, due_at=Due.OUTCOME, in_doubt_since=Since.SET_IF_UNSET)
_DEAD = Transition(State.DEAD)
_RESEND = Transition(
    State.PENDING, due_at=Due.OUTCOME, in_doubt_since=Since.CLEAR, blind_resend=True
)

#: (outcome kind, state of the claimed entry) -> what the completion does.
TRANSITIONS: Mapping[tuple[OutcomeKind, State], Transition] = {
    (OutcomeKind.DELIVERED, _S): _DELIVERED,
    (OutcomeKind.DELIVERED, _D): _DELIVERED,
    (OutcomeKind.RETRY, _S): _RETRY,
    (OutcomeKind.RETRY, _D): _RETRY,
    (OutcomeKind.IN_DOUBT, _S): _IN_DOUBT,
    (OutcomeKind.IN_DOUBT, _D): _IN_DOUBT,
    (OutcomeKind.DEAD, _S): _DEAD,
    (OutcomeKind.DEAD, _D): _DEAD,
    (OutcomeKind.RESEND, _S): _RESEND,
    (OutcomeKind.RESEND, _D): _RESEND,
    # A claim given back untouched: a SEND claim waits to be sent, a RECONCILE one stays in doubt.
    (OutcomeKind.RELEASE, _S): Transition(State.PENDING, due_at=Due.NOW, last_error=ErrorText.KEEP),
    (OutcomeKind.RELEASE, _D): Transition(
        State.IN_DOUBT, due_at=Due.NOW, last_error=ErrorText.KEEP
    ),
}

_KINDS: Mapping[type[Outcome], OutcomeKind] = {
    Delivered: OutcomeKind.DELIVERED,
    Retry: OutcomeKind.RETRY,
    InDoubt: OutcomeKind.IN_DOUBT,
    Dead: OutcomeKind.DEAD,
    Resend: OutcomeKind.RESEND,
    Release: OutcomeKind.RELEASE,
}


def kind_of(outcome: Outcome) -> OutcomeKind:
    return _KINDS[type(outcome)]


_WITH_DUE = (Retry, InDoubt, Resend)
_WITH_ERROR = (Retry, InDoubt)
_WITH_REASON = (Dead, Resend)


def outcome_due_at(outcome: Outcome) -> float | None:
    return outcome.due_at if isinstance(outcome, _WITH_DUE) else None


def outcome_error(outcome: Outcome) -> str | None:
    """The text an outcome leaves in ``last_error`` (where its row says SET)."""
    if isinstance(outcome, _WITH_ERROR):
        return outcome.error
    if isinstance(outcome, _WITH_REASON):
        return outcome.reason
    return None


class Effect(NamedTuple):
    """One completion's changes, resolved from its row(s) for a SQL ``UPDATE``.

    The target state is given per claimed state (the statement picks by the row's state). Only
    the state may depend on it: the other effects are the same for both rows of a kind (checked
    at import), so the statement takes them once. ``None`` in ``due_at``, ``event_ref``,
    ``delivered_at`` and ``adopted`` means "keep the stored value". Enumerations are plain text
    values, ready to bind: this runs once per result, on the hot path of delivery.
    """

    to_from_sending: str  # a State
    to_from_in_doubt: str  # a State
    due_at: float | None
    in_doubt_since: str  # a Since
    event_ref: str | None
    delivered_at: float | None
    adopted: bool | None
    blind_resends: int
    sends: int
    last_error: str  # an ErrorText
    error: str | None


class _Plan(NamedTuple):
    """The parts of an Effect fixed by the outcome's kind, worked out once from the table."""

    to_from_sending: str
    to_from_in_doubt: str
    due_at: Due
    in_doubt_since: str
    records_delivery: bool
    blind_resends: int
    last_error: str


def _plans() -> dict[type[Outcome], _Plan]:
    plans: dict[type[Outcome], _Plan] = {}
    for cls, kind in _KINDS.items():
        sending, in_doubt = TRANSITIONS[kind, _S], TRANSITIONS[kind, _D]
        if attrs.evolve(sending, to=in_doubt.to) != in_doubt:
            raise AssertionError(f"{kind}: only 'to' may depend on the claimed state")
        plans[cls] = _Plan(
            str(sending.to),
            str(in_doubt.to),
            sending.due_at,
            str(sending.in_doubt_since),
            sending.records_delivery,
            1 if sending.blind_resend else 0,
            str(sending.last_error),
        )
    return plans


_PLANS = _plans()
# Module constants: on Python 3.11 reading an enum member through its class costs more than
# the rest of effect_of, which runs once per result.
_KEEP, _NOW, _SEND = Due.KEEP, Due.NOW, AttemptKind.SEND
_new_effect = tuple.__new__


def effect_of(outcome: Outcome, record: AttemptRecord | None, now: float) -> Effect:
    plan = _PLANS[type(outcome)]
    due = plan.due_at
    delivered = outcome if plan.records_delivery and isinstance(outcome, Delivered) else None
    # tuple.__new__ rather than Effect(...): the generated __new__ is Python code, and costs
    # more than everything else here.
    return _new_effect(
        Effect,
        (
            plan.to_from_sending,
            plan.to_from_in_doubt,
            None if due is _KEEP else now if due is _NOW else outcome_due_at(outcome),
            plan.in_doubt_since,
            None if delivered is None else delivered.event_ref,
            None if delivered is None else now,
            None if delivered is None else delivered.adopted,
            plan.blind_resends,
            1 if record is not None and record.kind is _SEND else 0,
            plan.last_error,
            outcome_error(outcome),
        ),
    )


__all__ = [
    "FINISHABLE_STATES",
    "TRANSITIONS",
    "Due",
    "Effect",
    "ErrorText",
    "OutcomeKind",
    "Since",
    "Transition",
    "effect_of",
    "kind_of",
]
