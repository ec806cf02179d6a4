"""The journal store's methods, written once over a backend's way to run steps in one
transaction (:meth:`JournalStore._run`)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Generator, Sequence
from typing import Any

from kit.domain import CustomerErasureRequested, DomainEvent
from kit.journal.core import (
    Op,
    Plan,
    Stream,
    append_steps,
    batch_steps,
    erase_steps,
    find_steps,
    ingest_steps,
    latest_steps,
    one_step,
    timeline_steps,
)
from kit.journal.records import (
    Delivery,
    IngestResult,
    LatestDecision,
    Outcome,
    StreamHistory,
    StreamTimeline,
)
from kit.policy import Decision

StepsFactory = Callable[[], Generator[Op, Any, Any]]


class JournalStore(abc.ABC):
    """A :class:`kit.journal.protocol.Journal` given :meth:`_run`."""

    @abc.abstractmethod
    async def _run(self, operation: str, steps: StepsFactory) -> Any:
        """Run fresh ``steps()`` in one transaction (a backend may run them again after a
        rollback, so they are made anew for each run) and return their result."""

    async def ingest(self, plan: Plan) -> IngestResult:
        result: IngestResult = await self._run("ingest", lambda: ingest_steps(plan))
        return result

    async def ingest_many(self, plans: Sequence[Plan]) -> list[IngestResult]:
        results: list[IngestResult] = await self._run("ingest_many", lambda: batch_steps(plans))
        return results

    async def append(self, delivery: Delivery, events: Sequence[DomainEvent]) -> bool:
        return bool(await self._run("journal.append", lambda: append_steps(delivery, events)))

    async def history(self, source: str, stream: str) -> StreamHistory:
        found: StreamHistory = await self._run(
            "journal.history", lambda: one_step("read_stream", source, stream, None)
        )
        return found

    async def find_streams(self, ref: str, *, source: str | None = None) -> list[Stream]:
        found: list[Stream] = await self._run("journal.find", lambda: find_steps(ref, source))
        return found

    async def timeline(self, source: str, stream: str) -> StreamTimeline:
        found: StreamTimeline = await self._run(
            "journal.timeline", lambda: timeline_steps(source, stream)
        )
        return found

    async def latest_decisions(self, limit: int) -> list[LatestDecision]:
        found: list[LatestDecision] = await self._run("journal.latest", lambda: latest_steps(limit))
        return found

    async def record_decision(
        self, event_seq: int, source: str, stream: str, decision: Decision, outcome: Outcome
    ) -> None:
        await self._run(
            "journal.record_decision",
            lambda: one_step("record_decision", event_seq, source, stream, decision, outcome),
        )

    async def customer_invites(
        self, email_hash: str, *, source: str, stream: str, order: str | None = None
    ) -> list[float]:
        found: list[float] = await self._run(
            "journal.customer_invites",
            lambda: one_step("customer_invites", email_hash, source, stream, order),
        )
        return found

    async def erase(self, request: CustomerErasureRequested) -> None:
        await self._run("journal.erase", lambda: erase_steps(request))


__all__ = ["JournalStore"]
