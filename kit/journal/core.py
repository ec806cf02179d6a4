"""The ingest of one delivery as a sans-IO sequence of steps, written once for every backend.

:func:`ingest_steps` is a generator: it yields each database operation it needs as
``(name, args)`` and is sent back the answer. A backend runs it inside ONE transaction with
:func:`run_sync` (SQLite, on its worker thread; the in-memory journal) or :func:`run_async`
(PostgreSQL), against a transaction object offering the operations of
:class:`kit.journal.protocol.JournalTx` (or its async twin). So the order of the steps, and
what each decision does to the outbox, is stated here alone:

1. record the delivery, unique on its transport ids (a duplicate stops here), and lock its
   streams;
2. per domain event: append it, read its stream's history (and which keys still wait, in the
   same transaction), look up the customer's other invites for the throttle and the
   subscription's other charges for the renewal policy, ``decide``;
3. carry out each decision against the outbox (enqueue; cancel or amend only a pending entry)
   and journal it with what happened.

How the rows are encoded, so that every backend stores the same thing, is
:mod:`kit.journal.rows`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import attrs

from kit.domain import (
    CustomerErasureRequested,
    DomainEvent,
    ErasureScope,
    Skip,
    SkipReason,
    SubscriptionRenewed,
)
from kit.errors import ErasureInFlightError, ValidationError
from kit.journal.records import (
    DecisionRow,
    Delivery,
    IngestResult,
    IngestStatus,
    JournaledDecision,
    LatestDecision,
    Outcome,
    StreamHistory,
    StreamTimeline,
)
from kit.journal.rows import read_event, standalone_decision
from kit.mapping import BodyFacts
from kit.outbox import email_hash
from kit.outbox.types import ForgetResult, NewEntry
from kit.policy import (
    SUBSCRIPTION_TRIGGERS,
    Amend,
    Cancel,
    Charge,
    Decision,
    Enqueue,
    History,
    Note,
    PolicyConfig,
    Recorded,
    Skipped,
    decide,
    dedupe_key,
    fold,
    order_email,
)

Op = tuple[str, tuple[Any, ...]]
Steps = Generator[Op, Any, IngestResult]
Stream = tuple[str, str]  # (source, stream)


class PrepareEntry(Protocol):
    """Build the outbox entry for an invite; raises :class:`~kit.errors.ValidationError`."""

    def __call__(
        self, facts: BodyFacts, *, event_type: str, channel_id: str, key: str, send_after: float
    ) -> NewEntry: ...


@attrs.frozen(kw_only=True)
class Plan:
    """Everything one ingest needs, settled before its transaction begins."""

    delivery: Delivery
    parsed: Sequence[DomainEvent] | Skip
    policy: PolicyConfig
    prepare: PrepareEntry


def _op(name: str, *args: Any) -> Op:
    return name, args


# -- the steps -------------------------------------------------------------------------------


def ingest_steps(plan: Plan) -> Steps:
    """The whole ingest (see the module docstring); its return value is the result."""
    delivery = plan.delivery
    skip = plan.parsed if isinstance(plan.parsed, Skip) else None
    events = () if isinstance(plan.parsed, Skip) else plan.parsed
    events = yield from link_steps(events)
    # PostgreSQL: one stream's deliveries queue at this step, so each decides on the other's
    # result.
    row = yield _op(
        "record_delivery", delivery, skip, sorted({(e.source, e.stream) for e in events})
    )
    if row is None:
        return IngestResult(
            status=IngestStatus.DUPLICATE, delivery_id=delivery.identity.delivery_id
        )
    if skip is not None:
        return IngestResult(
            status=IngestStatus.SKIPPED, delivery_id=delivery.identity.delivery_id, skip=skip
        )
    out: list[JournaledDecision] = []
    for event in events:
        seq, history = yield _op("append_and_read", row, event)
        out.extend((yield from _event_steps(plan, event, seq, history)))
    return IngestResult(
        status=IngestStatus.ACCEPTED,
        delivery_id=delivery.identity.delivery_id,
        decisions=tuple(out),
        kinds=tuple(event.kind for event in events),
    )


def link_steps(events: Sequence[DomainEvent]) -> Generator[Op, Any, tuple[DomainEvent, ...]]:
    """Each event that names its stream only by ``link`` moved onto the stream whose events
    recorded one of those ids in ``aliases`` (the newest such stream of its source); left on
    its own ``stream`` when none did. Read before the streams are locked, so an alias that a
    concurrent delivery is still recording is not seen yet: the event then stays where it is.
    """
    linked: list[DomainEvent] = []
    for event in events:
        if event.link:
            found = yield _op("stream_by_alias", event.source, sorted(set(event.link)))
            if found is not None and found != event.stream:
                event = attrs.evolve(event, stream=found)
        linked.append(event)
    return tuple(linked)


def batch_steps(plans: Sequence[Plan]) -> Generator[Op, Any, list[IngestResult]]:
    """Several deliveries in one transaction, each exactly as :func:`ingest_steps` takes it.

    Every stream of the batch is locked first, in sorted order (PostgreSQL), so a batch and a
    webhook, or two batches, cannot deadlock on streams taken in file order; each delivery's
    own lock is then taken again, which costs nothing.
    """
    streams = {
        (e.source, e.stream)
        for plan in plans
        if not isinstance(plan.parsed, Skip)
        for e in plan.parsed
    }
    yield _op("lock_streams", sorted(streams))
    results: list[IngestResult] = []
    for plan in plans:
        results.append((yield from ingest_steps(plan)))
    return results


def _event_steps(
    plan: Plan, event: DomainEvent, seq: int, history: StreamHistory
) -> Generator[Op, Any, list[JournaledDecision]]:
    decisions = [r.decision for r in history.decisions if r.decision is not None]
    known = History(
        events=tuple(r.event for r in history.events if r.event is not None),
        decisions=tuple(decisions),
        waiting=history.waiting,
    )
    if any(t.per_customer is not None for t in plan.policy.triggers):
        email = order_email(known, event)
        if email:
            order = dedupe_key(event.platform, event.account, event.stream, "")
            invites = yield _op(
                "customer_invites", email_hash(email), event.source, event.stream, order
            )
            known = attrs.evolve(
                known, customer_invites=tuple(datetime.fromtimestamp(t, UTC) for t in invites)
            )
    if any(t.on in SUBSCRIPTION_TRIGGERS for t in plan.policy.triggers):
        charge = fold((*known.events, event)).charge
        if charge is not None and charge.subscription:
            bodies = yield _op(
                "subscription_charges", event.source, charge.subscription, event.stream
            )
            others = [read_event(body) for body in bodies]
            known = attrs.evolve(
                known,
                charges=tuple(Charge.of(e) for e in others if isinstance(e, SubscriptionRenewed)),
            )
    if isinstance(event, CustomerErasureRequested):
        yield from erase_steps(event, delivery_id=plan.delivery.identity.delivery_id)
    done: list[JournaledDecision] = []
    for decision in decide(plan.policy, known, event):
        journaled = yield from _carry_out(plan, event, decision, decisions)
        decisions.append(journaled.decision)
        yield _op(
            "record_decision",
            seq,
            event.source,
            event.stream,
            journaled.decision,
            journaled.outcome,
        )
        done.append(journaled)
    return done


def _carry_out(
    plan: Plan, event: DomainEvent, decision: Decision, earlier: Sequence[Decision]
) -> Generator[Op, Any, JournaledDecision]:
    if isinstance(event, CustomerErasureRequested):
        return JournaledDecision(decision=decision, outcome=Outcome.ERASED)
    if isinstance(decision, Enqueue):
        try:
            entry = plan.prepare(
                decision.facts,
                event_type=decision.event_type,
                channel_id=decision.channel_id,
                key=decision.key,
                send_after=decision.send_after.timestamp(),
            )
        except ValidationError as exc:
            return _invalid(decision.key, exc)
        inserted = yield _op("insert_entry", entry)
        return JournaledDecision(
            decision=decision, outcome=Outcome.ENQUEUED if inserted else Outcome.DUPLICATE
        )
    if isinstance(decision, Cancel):
        if (yield _op("cancel_entry", decision.key)):
            return JournaledDecision(decision=decision, outcome=Outcome.CANCELLED)
        return _already_sent(decision.key, decision.reason.value)
    if isinstance(decision, Amend):
        enqueued = [d for d in earlier if isinstance(d, Enqueue) and d.key == decision.key]
        if not enqueued:  # its enqueue was erased: nothing to build the new body from
            return _already_sent(decision.key, "products or timing changed")
        first = enqueued[-1]
        try:
            entry = plan.prepare(
                attrs.evolve(
                    first.facts,
                    products=decision.products,
                    estimated_delivery_date=decision.estimated_delivery_date,
                ),
                event_type=first.event_type,
                channel_id=first.channel_id,
                key=decision.key,
                send_after=decision.send_after.timestamp(),
            )
        except ValidationError as exc:
            return _invalid(decision.key, exc)
        if (yield _op("amend_entry", entry)):
            return JournaledDecision(decision=decision, outcome=Outcome.AMENDED)
        return _already_sent(decision.key, "products or timing changed")
    if isinstance(decision, Recorded) and decision.note is Note.ALREADY_SENT:
        return JournaledDecision(decision=decision, outcome=Outcome.ALREADY_SENT)
    return JournaledDecision(decision=decision, outcome=Outcome.RECORDED)


def _already_sent(key: str, detail: str) -> JournaledDecision:
    """The entry was claimed between the policy's view and now (PostgreSQL) or before: what
    may have reached eTrusted is left alone, and the journal says so."""
    note = Recorded(note=Note.ALREADY_SENT, key=key, detail=detail)
    return JournaledDecision(decision=note, outcome=Outcome.ALREADY_SENT)


def _invalid(key: str, exc: ValidationError) -> JournaledDecision:
    # Field paths only: the messages may quote customer data.
    paths = ", ".join(sorted({e.path for e in exc.errors})) or "(root)"
    skipped = Skipped(key=key, reason=SkipReason.INVALID_EVENT, detail=f"fields: {paths}")
    return JournaledDecision(decision=skipped, outcome=Outcome.INVALID)


def erase_steps(
    event: CustomerErasureRequested, *, delivery_id: str | None = None
) -> Generator[Op, Any, None]:
    """Erase a customer's (or the whole account's) data from the journal and the outbox.

    The streams are the orders the request names and every stream that journaled the
    customer's e-mail, whose outbox entries are forgotten by the e-mail hashes they carry (the
    customer's, in every source); or (account scope) every stream of the source, whose entries
    are forgotten by their keys, so that the same customers' invites in other sources stay.
    Both with the outbox's own forget rule.

    That rule leaves an entry being sent alone (its POST needs the payload). An erasure must
    leave nothing behind, so one that found such entries raises
    :class:`~kit.errors.ErasureInFlightError`: its transaction rolls back whole, and the
    request is carried out in full when asked again (a platform's retry) after the send.
    """
    if event.scope is ErasureScope.ACCOUNT:
        streams: list[Stream] = yield _op("source_streams", event.source)
        keys = yield _op("stream_keys", streams)
        found: list[ForgetResult] = [(yield _op("forget_keys", keys))]
        yield _op("erase_streams", streams)
    else:
        hashes: set[str] = set()
        streams = [(event.source, stream) for stream in event.order_streams]
        if event.email:
            hashes.add(email_hash(event.email))
            streams.extend((yield _op("customer_streams", email_hash(event.email))))
        _, hashes = yield from _erase(streams, hashes)
        found = []
        for each in sorted(hashes):
            found.append((yield _op("forget_entries", each)))
    in_flight = ForgetResult.total(found).skipped_in_flight
    if in_flight:
        raise ErasureInFlightError(event.source, delivery_id, in_flight)


def forget_steps(hashed: str) -> Generator[Op, Any, tuple[int, set[str]]]:
    """The journal's part of the outbox's ``forget_customer``: erase every stream that
    journaled the e-mail hash. Returns how many rows changed, and the hashes whose entries the
    outbox must forget by its own rule: this one, and those the streams' invites carry (an
    order whose address changed after it was placed), as for an erasure request."""
    streams: list[Stream] = yield _op("customer_streams", hashed)
    return (yield from _erase(streams, {hashed}))


def _erase(streams: Sequence[Stream], hashes: set[str]) -> Generator[Op, Any, tuple[int, set[str]]]:
    """Erase ``streams``; ``hashes`` and those their invites' entries carry, to forget."""
    unique = sorted(set(streams))
    hashes = hashes | (yield _op("entry_hashes", unique))
    changed: int = yield _op("erase_streams", unique)
    return changed, hashes


# -- the journal's single operations, each a transaction of its own --------------------------


def append_steps(delivery: Delivery, events: Sequence[DomainEvent]) -> Generator[Op, Any, bool]:
    """Journal a delivery's events once; False (nothing written) for a known delivery."""
    row = yield _op("record_delivery", delivery, None, ())
    if row is None:
        return False
    for event in events:
        yield _op("append_event", row, event)
    return True


def find_steps(ref: str, source: str | None) -> Generator[Op, Any, list[Stream]]:
    """The streams ``ref`` names, as an outbox key (through the decisions that carry it) or as
    a transaction reference; only ``source``'s when given. Sorted, each once."""
    by_key: list[Stream] = yield _op("streams_by_key", ref)
    by_reference: list[Stream] = yield _op("streams_by_reference", ref, source)
    return sorted({s for s in by_key if source in (None, s[0])} | set(by_reference))


def timeline_steps(source: str, stream: str) -> Generator[Op, Any, StreamTimeline]:
    """A stream's whole journal, with the deliveries that carried its events."""
    history: StreamHistory = yield _op("read_stream", source, stream, None)
    deliveries = yield _op("stream_deliveries", source, stream)
    return StreamTimeline(
        source=source,
        stream=stream,
        deliveries=tuple(deliveries),
        events=history.events,
        decisions=history.decisions,
    )


def latest_steps(limit: int) -> Generator[Op, Any, list[LatestDecision]]:
    """The ``limit`` newest decisions of all streams, newest first. A backend's rows are
    (source, stream, id, event, kind, key, outcome, decided_at, body)."""
    rows: Sequence[Sequence[Any]] = yield _op("latest_decisions", limit)
    return [
        LatestDecision(
            source=r[0],
            stream=r[1],
            row=DecisionRow(
                seq=r[2],
                event_seq=r[3],
                kind=r[4],
                key=r[5],
                outcome=Outcome(r[6]),
                decided_at=r[7],
                decision=standalone_decision(r[8]),
            ),
        )
        for r in rows
    ]


def one_step(name: str, *args: Any) -> Generator[Op, Any, Any]:
    """A single operation as steps (reading a stream, the customer's invites, recording a
    decision)."""
    return (yield _op(name, *args))


# -- running the steps -------------------------------------------------------------------------


def run_sync(steps: Generator[Op, Any, Any], tx: object) -> Any:
    """Drive ``steps`` against a synchronous transaction object; return their result."""
    answer: Any = None
    while True:
        try:
            name, args = steps.send(answer)
        except StopIteration as done:
            return done.value
        answer = getattr(tx, name)(*args)


async def run_async(steps: Generator[Op, Any, Any], tx: object) -> Any:
    """Drive ``steps`` against an asynchronous transaction object; return their result."""
    answer: Any = None
    while True:
        try:
            name, args = steps.send(answer)
        except StopIteration as done:
            return done.value
        method: Callable[..., Awaitable[Any]] = getattr(tx, name)
        answer = await method(*args)


__all__ = [
    "Op",
    "Plan",
    "PrepareEntry",
    "Steps",
    "Stream",
    "append_steps",
    "batch_steps",
    "erase_steps",
    "find_steps",
    "forget_steps",
    "ingest_steps",
    "latest_steps",
    "link_steps",
    "one_step",
    "run_async",
    "run_sync",
    "timeline_steps",
]
