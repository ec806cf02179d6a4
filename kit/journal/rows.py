"""How the journal stores its rows, written once for every backend: the JSON bodies of events
and decisions, the e-mail hashes and invite times beside them, and how they are read back."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from kit import jsonenc
from kit.domain import (
    CustomerErasureRequested,
    DomainEvent,
    dump_event,
    load_event,
    order_of,
)
from kit.journal.records import EventRow, Outcome
from kit.outbox import email_hash
from kit.policy import Decision, Enqueue, dump_decision, fold, load_decision


def _json(data: dict[str, Any]) -> str:
    """A row's body: read back by a JSON parser and never compared as bytes, so orjson may
    write it as is (about five times faster than the stdlib for an order's facts)."""
    return jsonenc.encode_values(data)


@attrs.frozen(kw_only=True)
class EventColumns:
    kind: str
    occurred_at: float
    email_hash: str | None
    reference: str | None  # the order's transaction reference: kept through an erasure
    body: str


def event_columns(event: DomainEvent) -> EventColumns:
    """An erasure request is stored without the e-mail it names (it is there to erase it)."""
    if isinstance(event, CustomerErasureRequested):
        event = attrs.evolve(event, email=None)
    order = order_of(event)
    return EventColumns(
        kind=event.kind,
        occurred_at=event.occurred_at.timestamp(),
        email_hash=email_hash(order.email) if order is not None and order.email else None,
        reference=order.reference if order is not None else None,
        body=_json(dump_event(event)),
    )


@attrs.frozen(kw_only=True)
class DecisionColumns:
    kind: str
    key: str | None
    email_hash: str | None
    invite_at: float | None  # an invite that went into the outbox: for the throttle
    body: str


def decision_columns(decision: Decision, outcome: Outcome) -> DecisionColumns:
    hashed = None
    invite_at = None
    if isinstance(decision, Enqueue):
        email = decision.facts.order.email
        hashed = email_hash(email) if email else None
        if outcome is Outcome.ENQUEUED:
            invite_at = decision.send_after.timestamp()
    return DecisionColumns(
        kind=decision.kind,
        key=getattr(decision, "key", None),
        email_hash=hashed,
        invite_at=invite_at,
        body=_json(dump_decision(decision, order=False)),
    )


def decision_values(
    event_seq: int, source: str, stream: str, decision: Decision, outcome: Outcome, now: float
) -> tuple[Any, ...]:
    """A decision row's values in the column order both backends' INSERT lists: event, source,
    stream, kind, key, outcome, recorded_at, email_hash, invite_at, body."""
    c = decision_columns(decision, outcome)
    return (
        event_seq,
        source,
        stream,
        c.kind,
        c.key,
        outcome.value,
        now,
        c.email_hash,
        c.invite_at,
        c.body,
    )


def read_event(body: str | None) -> DomainEvent | None:
    return None if body is None else load_event(json.loads(body))


def decision_reader(events: Sequence[EventRow]) -> Callable[[int, str | None], Decision | None]:
    """Reads the decision bodies of the stream whose ``events`` these are: ``read(event_seq,
    body)``. An Enqueue is stored without its order (the event holds it): the order is the one
    the stream's events up to the decision's own fold to, which is what the policy decided on
    (an erasure clears those events and the Enqueue's body together)."""

    def read(event_seq: int, body: str | None) -> Decision | None:
        if body is None:
            return None
        data = json.loads(body)
        if _needs_no_order(data):
            return load_decision(data)
        known = (e.event for e in events if e.seq <= event_seq and e.event is not None)
        return load_decision(data, order=fold(known).order)

    return read


def _needs_no_order(data: Any) -> bool:
    """A decision body reads alone unless it is an Enqueue stored without its order."""
    facts = data.get("facts") if isinstance(data, dict) else None
    return not isinstance(facts, dict) or "order" in facts


def standalone_decision(body: str | None) -> Decision | None:
    """A decision read without its stream's events: None where those would be needed."""
    if body is None:
        return None
    data = json.loads(body)
    return load_decision(data) if _needs_no_order(data) else None


__all__ = [
    "DecisionColumns",
    "EventColumns",
    "decision_columns",
    "decision_reader",
    "decision_values",
    "event_columns",
    "read_event",
    "standalone_decision",
]
