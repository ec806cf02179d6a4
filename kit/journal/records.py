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
    kinds: tuple[str, ...] = ()  # the journaled domain events' kinds, in order (for metrics)

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
    """A journaled domain event; ``event`` is None once its customer data was erased.

    ``delivery`` is the ``seq`` of the :class:`DeliveryRow` that carried it; ``reference`` the
    order's transaction reference, which an erasure keeps (as the outbox keeps an entry's).
    """

    seq: int
    source: str
    stream: str
    kind: str
    occurred_at: float
    recorded_at: float
    event: DomainEvent | None
    delivery: int
    reference: str | None = None


@attrs.frozen(kw_only=True)
class DeliveryRow:
    """A journaled delivery: transport ids and topic only, never customer data."""

    seq: int
    source: str
    delivery_id: str
    event_id: str | None
    topic: str | None
    received_at: float
    skip_reason: str | None = None
    skip_detail: str | None = None


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


@attrs.frozen(kw_only=True)
class LatestDecision:
    """A recent decision of any stream, newest first, for the operator page. ``row.decision``
    is None once erased, and for an enqueue stored without its order (its stream's events
    hold the order, and only a stream's own read folds them back)."""

    source: str
    stream: str
    row: DecisionRow


@attrs.frozen(kw_only=True)
class StreamTimeline:
    """One stream's whole journal, for ``explain``: the deliveries that carried its events,
    the events and the decisions, each in journal order (its ``seq``)."""

    source: str
    stream: str
    deliveries: tuple[DeliveryRow, ...] = ()
    events: tuple[EventRow, ...] = ()
    decisions: tuple[DecisionRow, ...] = ()

    @property
    def references(self) -> tuple[str, ...]:
        """The transaction references its events carried, first seen first."""
        return tuple(dict.fromkeys(e.reference for e in self.events if e.reference))


__all__ = [
    "DecisionRow",
    "Delivery",
    "DeliveryRow",
    "EventRow",
    "IngestResult",
    "IngestStatus",
    "JournaledDecision",
    "Outcome",
    "StreamHistory",
    "StreamTimeline",
]
