"""Why did this customer get an invite, or not: an order's journal and outbox, side by side.

:func:`explain` finds the streams a reference names (a transaction reference, or an outbox
key) and reads each one's timeline from the journal and its entries, with their attempt logs,
from the outbox. :func:`explanation_json` is the document ``etrusted-kit explain --json``
prints (its shape is documented in docs/journal.md and kept stable).

Nothing here returns customer data: an event is shown by its kind and times, a decision by
what it did and why, an entry by its state and refs. Free text that could quote an e-mail (a
skip's detail, an attempt's error) goes through :func:`kit.redact.mask_emails`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from kit.journal.protocol import Journal
from kit.journal.records import DecisionRow, DeliveryRow, EventRow, Outcome, StreamTimeline
from kit.outbox import Outbox
from kit.outbox.types import AttemptRecord, Entry
from kit.policy import Amend, Cancel, Enqueue, Recorded, Skipped, Stale, Throttled
from kit.redact import mask_emails

FORMAT_VERSION = 1


@attrs.frozen(kw_only=True)
class EntryStory:
    """One outbox entry the order's decisions named, with its attempt log."""

    entry: Entry
    attempts: tuple[AttemptRecord, ...] = ()


@attrs.frozen(kw_only=True)
class OrderStory:
    """One stream's journal and the outbox entries it decided about. ``timeline`` is None for
    an entry enqueued without the journal (``etrusted-kit enqueue``), found by its key."""

    timeline: StreamTimeline | None
    entries: tuple[EntryStory, ...] = ()
    decided_by: tuple[tuple[str, str], ...] = ()  # (key, source) that wrote a shared entry


async def explain(
    outbox: Outbox, journal: Journal, ref: str, *, source: str | None = None
) -> list[OrderStory]:
    """The story of every stream ``ref`` names (see :meth:`Journal.find_streams`); an empty
    list when nothing matches."""
    stories = []
    for found_source, stream in await journal.find_streams(ref, source=source):
        timeline = await journal.timeline(found_source, stream)
        keys = dict.fromkeys(d.key for d in timeline.decisions if d.key)
        entries = [await _entry(outbox, key) for key in keys]
        decided_by = await _deciders(journal, timeline)
        stories.append(
            OrderStory(
                timeline=timeline,
                entries=tuple(e for e in entries if e is not None),
                decided_by=tuple(sorted(decided_by.items())),
            )
        )
    if not stories and source is None:
        alone = await _entry(outbox, ref)
        if alone is not None:
            stories.append(OrderStory(timeline=None, entries=(alone,)))
    return stories


async def _deciders(journal: Journal, timeline: StreamTimeline) -> dict[str, str]:
    """For each key this stream found already in the outbox (``duplicate``), the source whose
    decision wrote the entry: one invite, decided by another source first."""
    shared = {d.key for d in timeline.decisions if d.key and d.outcome is Outcome.DUPLICATE}
    found: dict[str, str] = {}
    for key in sorted(shared):
        for other, stream in await journal.find_streams(key):
            if (other, stream) == (timeline.source, timeline.stream):
                continue
            rows = (await journal.timeline(other, stream)).decisions
            if any(d.key == key and d.outcome is Outcome.ENQUEUED for d in rows):
                found[key] = other
    return found


async def _entry(outbox: Outbox, key: str) -> EntryStory | None:
    entry = await outbox.storage.get(key)
    if entry is None:  # a skipped trigger names the key it would have had
        return None
    return EntryStory(entry=entry, attempts=tuple(await outbox.attempts(key)))


# -- the timeline as one list, in journal order ------------------------------------------------


Item = DeliveryRow | EventRow | DecisionRow


def timeline_items(timeline: StreamTimeline) -> Iterator[Item]:
    """Each delivery, then the events it carried, each followed by its decisions: the order
    the journal recorded them in."""
    deliveries = {d.seq: d for d in timeline.deliveries}
    decisions: dict[int, list[DecisionRow]] = {}
    for decision in timeline.decisions:
        decisions.setdefault(decision.event_seq, []).append(decision)
    shown: set[int] = set()
    for event in timeline.events:
        delivery = deliveries.get(event.delivery)
        if delivery is not None and delivery.seq not in shown:
            shown.add(delivery.seq)
            yield delivery
        yield event
        yield from decisions.pop(event.seq, ())
    for rest in decisions.values():  # none in a consistent journal; never hide one
        yield from rest


@attrs.frozen(kw_only=True)
class DecisionFacts:
    """What a decision did and why, without customer data; None where it does not apply or
    its body was erased (only an ``enqueue`` carries customer data, and so loses it)."""

    reason: str | None = None
    detail: str | None = None
    event_type: str | None = None
    channel_id: str | None = None
    send_after: float | None = None


def decision_facts(row: DecisionRow, decided_by: Mapping[str, str] | None = None) -> DecisionFacts:
    """``decided_by``: the source that wrote a key's entry (:attr:`OrderStory.decided_by`), so
    an enqueue that found its key taken reads as the same invite, not a second one."""
    d = row.decision
    if isinstance(d, Enqueue) and row.outcome is Outcome.DUPLICATE:
        by = (decided_by or {}).get(d.key)
        return DecisionFacts(
            detail=(
                f"the same invite, already decided by source {by!r}"
                if by
                else "the same invite, already in the outbox"
            ),
            event_type=d.event_type,
            channel_id=d.channel_id,
        )
    if isinstance(d, Enqueue):
        return DecisionFacts(
            event_type=d.event_type, channel_id=d.channel_id, send_after=d.send_after.timestamp()
        )
    if isinstance(d, Skipped):
        return DecisionFacts(reason=d.reason.value, detail=_safe(d.detail))
    if isinstance(d, Cancel):
        return DecisionFacts(reason=d.reason.value)
    if isinstance(d, Amend):
        return DecisionFacts(
            detail=f"{len(d.products)} products left", send_after=d.send_after.timestamp()
        )
    if isinstance(d, Throttled):
        return DecisionFacts(
            detail=f"the customer's invite due {utc_text(d.last_invite_at.timestamp())}"
        )
    if isinstance(d, Stale):
        return DecisionFacts(
            detail=f"the journal holds news of {utc_text(d.newest_at.timestamp())}"
        )
    if isinstance(d, Recorded):
        return DecisionFacts(reason=d.note.value, detail=_safe(d.detail))
    return DecisionFacts()


def _safe(text: str | None) -> str | None:
    return None if text is None else mask_emails(text)


def utc_text(seconds: float | None) -> str | None:
    """``2025-03-04T10:14:58Z``: UTC, to the second."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the JSON document ----------------------------------------------------------------------


def explanation_json(ref: str, source: str | None, stories: list[OrderStory]) -> dict[str, Any]:
    """The ``--json`` document (docs/journal.md): times are UTC ISO 8601 strings."""
    return {
        "format": FORMAT_VERSION,
        "ref": ref,
        "source": source,
        "orders": [_story_json(s) for s in stories],
    }


def _story_json(story: OrderStory) -> dict[str, Any]:
    timeline = story.timeline
    return {
        "source": None if timeline is None else timeline.source,
        "stream": None if timeline is None else timeline.stream,
        "references": (
            [story.entries[0].entry.transaction_reference]
            if timeline is None
            else list(timeline.references)
        ),
        "timeline": (
            []
            if timeline is None
            else [_item_json(i, dict(story.decided_by)) for i in timeline_items(timeline)]
        ),
        "entries": [_entry_json(e) for e in story.entries],
    }


def _item_json(item: Item, decided_by: Mapping[str, str]) -> dict[str, Any]:
    if isinstance(item, DeliveryRow):
        return {
            "type": "delivery",
            "at": utc_text(item.received_at),
            "delivery_id": item.delivery_id,
            "event_id": item.event_id,
            "topic": item.topic,
        }
    if isinstance(item, EventRow):
        return {
            "type": "event",
            "at": utc_text(item.occurred_at),
            "recorded_at": utc_text(item.recorded_at),
            "seq": item.seq,
            "kind": item.kind,
            "reference": item.reference,
            "erased": item.event is None,
        }
    facts = decision_facts(item, decided_by)
    return {
        "type": "decision",
        "at": utc_text(item.decided_at),
        "event_seq": item.event_seq,
        "kind": item.kind,
        "key": item.key,
        "outcome": item.outcome.value,
        "reason": facts.reason,
        "detail": facts.detail,
        "event_type": facts.event_type,
        "channel_id": facts.channel_id,
        "send_after": utc_text(facts.send_after),
        "erased": item.decision is None,
    }


def _entry_json(story: EntryStory) -> dict[str, Any]:
    entry = story.entry
    return {
        "key": entry.key,
        "state": entry.state.value,
        "event_type": entry.event_type,
        "channel_id": entry.channel_id,
        "transaction_reference": entry.transaction_reference,
        "event_ref": entry.event_ref,
        "created_at": utc_text(entry.created_at),
        "due_at": utc_text(entry.due_at),
        "delivered_at": utc_text(entry.delivered_at),
        "sends": entry.sends,
        "adopted": entry.adopted,
        "last_error": _safe(entry.last_error),
        "attempts": [
            {
                "attempt": a.attempt,
                "kind": a.kind.value,
                "at": utc_text(a.started_at),
                "duration_ms": round(a.duration_ms, 1),
                "outcome": a.outcome,
                "http_status": a.http_status,
                "error": _safe(a.error),
            }
            for a in story.attempts
        ],
    }


__all__ = [
    "FORMAT_VERSION",
    "DecisionFacts",
    "EntryStory",
    "OrderStory",
    "decision_facts",
    "explain",
    "explanation_json",
    "timeline_items",
    "utc_text",
]
