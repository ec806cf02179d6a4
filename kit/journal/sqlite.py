"""The journal on SQLite: each operation is one function on the outbox storage's worker thread,
in one ``BEGIN IMMEDIATE ... COMMIT`` (SQLite has one writer, so deliveries of one stream are
decided one after the other without a lock of their own). After an erasure the WAL is
checkpointed, as after the outbox's own forget, so erased data does not linger there."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from kit.domain import CustomerErasureRequested
from kit.journal._sqlite_tx import SQLiteTx
from kit.journal.core import Plan, run_sync
from kit.journal.records import IngestResult, Outcome
from kit.journal.store import JournalStore, StepsFactory
from kit.outbox.sqlite import SQLiteStorage


class SQLiteJournal(JournalStore):
    """The journal in the database of ``storage`` (which must be open)."""

    def __init__(self, storage: SQLiteStorage, *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._clock = clock

    async def ingest(self, plan: Plan) -> IngestResult:
        result = await super().ingest(plan)
        if any(d.outcome is Outcome.ERASED for d in result.decisions):
            await self._storage.scrub_wal("journal.erase")
        return result

    async def ingest_many(self, plans: Sequence[Plan]) -> list[IngestResult]:
        results = await super().ingest_many(plans)
        if any(d.outcome is Outcome.ERASED for r in results for d in r.decisions):
            await self._storage.scrub_wal("journal.erase")
        return results

    async def erase(self, request: CustomerErasureRequested) -> None:
        await super().erase(request)
        await self._storage.scrub_wal("journal.erase")

    async def _run(self, operation: str, steps: StepsFactory) -> Any:
        now, where = self._clock(), self._storage.url
        return await self._storage.run_transaction(
            operation, lambda db: run_sync(steps(), SQLiteTx(db, now=now, where=where))
        )


__all__ = ["SQLiteJournal"]
