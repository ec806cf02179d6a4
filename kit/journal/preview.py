"""What ingesting a delivery would do, worked out without writing anything: the ``--dry-run``
of ``backfill`` (a polled order) and of ``import`` (a file's transaction).

The policy is a pure function of a stream's journaled history and the new event
(:func:`kit.policy.decide`), so a dry run reads each stream's history from the journal and
decides in memory, carrying its own decisions forward across the order's events as the real
ingest would. An order version the journal already holds is a duplicate, as it would be on the
real run. Left out: the per-customer throttle's look-up across other streams (a dry run does
not know what the other orders of the run would have enqueued either).
"""

from __future__ import annotations

import attrs

from kit.adapters import DeliveryIdentity, ParseResult
from kit.domain import Skip
from kit.journal.protocol import Journal
from kit.policy import Decision, Enqueue, History, PolicyConfig, decide


@attrs.frozen(kw_only=True)
class Preview:
    """``duplicate``: the journal holds this order version; else the skip or the decisions."""

    duplicate: bool = False
    skip: Skip | None = None
    decisions: tuple[Decision, ...] = ()


async def preview(
    journal: Journal,
    source: str,
    policy: PolicyConfig,
    identity: DeliveryIdentity,
    parsed: ParseResult,
) -> Preview:
    if isinstance(parsed, Skip):
        return Preview(skip=parsed)
    known: dict[str, History] = {}
    out: list[Decision] = []
    for event in parsed:
        history = known.get(event.stream)
        if history is None:
            stored = await journal.history(source, event.stream)
            if any(
                row.event is not None and row.event.delivery_id == identity.delivery_id
                for row in stored.events
            ):
                return Preview(duplicate=True)
            history = History(
                events=tuple(r.event for r in stored.events if r.event is not None),
                decisions=tuple(r.decision for r in stored.decisions if r.decision is not None),
                waiting=stored.waiting,
            )
        decisions = decide(policy, history, event)
        out.extend(decisions)
        known[event.stream] = attrs.evolve(
            history,
            events=(*history.events, event),
            decisions=(*history.decisions, *decisions),
            waiting=history.waiting | {d.key for d in decisions if isinstance(d, Enqueue)},
        )
    return Preview(decisions=tuple(out))


__all__ = ["Preview", "preview"]
