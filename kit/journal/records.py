"""The journal's values: what it stores about deliveries, events and decisions, and what an
ingest reports back to the intake.

Times are UTC epoch seconds (``float``), as in :mod:`kit.outbox.types`. A row whose customer
data was erased (purge, forget, a redact request) keeps its skeleton: ``event`` or
``decision`` is then ``None``.
"""

from __future__ import annotations

import enum

import attrs

from kit.adapters import DeliveryIdentity
from kit.domain import DomainEvent, Skip
from kit.policy import Decision


class Outcome(enum.StrEnum):
    """What carrying out one decision did; stored beside the decision."""

    ENQUEUED = "enqueued"  # a new outbox entry
    DUPLICATE = "duplicate"  # the key was already in the outbox ledger: nothing written
    CANCELLED = "cancelled"  # the waiting entry was withdrawn
    AMENDED = "amended"  # the waiting entry's payload and hold-back were replaced
    ALREADY_SENT = "already_sent"  # the entry had been claimed: nothing undone, recorded
    INVALID = "invalid"  # the body failed the eTrusted rules: skipped, recorded
    ERASED = "erased"  # an erasure request was carried out
    RECORDED = "recorded"  # nothing to carry out (skipped, throttled, stale, a note)


@attrs.frozen(kw_only=True)
class Delivery:
    """One delivery as the intake took it in, before any event was parsed from it."""

    source: str
    identity: DeliveryIdentity
    received_at: float
    topic: str | None = None


class IngestStatus(enum.StrEnum):
    ACCEPTED = "accepted"  # journaled now, decisions carried out
    DUPLICATE = "duplicate"  # this delivery (or its platform event) was journaled before
    SKIPPED = "skipped"  # the adapter skipped it on purpose; journaled with the reason


@attrs.frozen(kw_only=True)
class JournaledDecision:
    """A decision as journaled, with what carrying it out did."""

    decision: Decision
    outcome: Outcome


@attrs.frozen(kw_only=True)
class IngestResult:
    """What the intake answers with: every status is a 2xx (the delivery is safely stored or
    was stored before), so the platform does not send it again."""

    status: IngestStatus
    delivery_id: str
    skip: Skip | None = None
    decisions: tuple[JournaledDecision, ...] = ()

    @property
    def enqueued(self) -> tuple[str, ...]:
        """Keys of the outbox entries this delivery created."""
        return tuple(
            str(getattr(d.decision, "key", ""))
            for d in self.decisions
            if d.outcome is Outcome.ENQUEUED
        )


@attrs.frozen(kw_only=True)
class EventRow:
    """A journaled domain event; ``event`` is None once its customer data was erased."""

    seq: int
    source: str
    stream: str
    kind: str
    occurred_at: float
    recorded_at: float
    event: DomainEvent | None


@attrs.frozen(kw_only=True)
class DecisionRow:
    """A journaled decision; ``decision`` is None once its customer data was erased."""

    seq: int
    event_seq: int
    kind: str
    key: str | None
    outcome: Outcome
    decided_at: float
    decision: Decision | None


@attrs.frozen(kw_only=True)
class StreamHistory:
    """One stream's journal in order, and which of its keys still wait in the outbox."""

    events: tuple[EventRow, ...] = ()
    decisions: tuple[DecisionRow, ...] = ()
    waiting: frozenset[str] = frozenset()


__all__ = [
    "DecisionRow",
    "Delivery",
    "EventRow",
    "IngestResult",
    "IngestStatus",
    "JournaledDecision",
    "Outcome",
    "StreamHistory",
]
