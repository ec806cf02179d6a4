"""The journal on PostgreSQL: each operation is one transaction on one pooled connection of the
outbox storage, with a transaction-scoped advisory lock per stream (see
:mod:`kit.journal._pg_tx`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kit.journal._pg_tx import JournalSql, PgTx
from kit.journal.core import run_async
from kit.journal.store import JournalStore, StepsFactory
from kit.outbox.postgres import PostgresStorage


class PostgresJournal(JournalStore):
    """The journal in the schema of ``storage`` (which must be open)."""

    def __init__(self, storage: PostgresStorage, *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._sql = JournalSql(storage.schema)
        self._clock = clock

    async def _run(self, operation: str, steps: StepsFactory) -> Any:
        async with self._storage.transaction(operation) as conn:
            tx = PgTx(conn, self._storage, self._sql, now=self._clock())
            return await run_async(steps(), tx)


__all__ = ["PostgresJournal"]
