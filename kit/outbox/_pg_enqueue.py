"""The PostgreSQL outbox's write path for new entries: one statement, or COPY for big batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kit.errors import (
    MigrationError,
    OutboxError,
    OutboxMovedError,
)
from kit.outbox._pg_base import PgBase, _one
from kit.outbox._pg_conn import _asyncpg
from kit.outbox._pg_sql import (
    COPY_COLUMNS,
    KEY_CONSTRAINT,
    copy_records,
    enqueue_args,
    enqueue_one_args,
    first_of_each_key,
)
from kit.outbox.types import (
    EnqueueResult,
    NewEntry,
)

if TYPE_CHECKING:
    pass

# From this many entries on, enqueue() writes with COPY: four more round trips, less work per
# row. Measured here, COPY costs more CPU per entry below about 64 entries and less above 128.
_COPY_MIN_ENTRIES = 100


class PgEnqueue(PgBase):
    """Enqueueing, on the outbox's own connections or inside the caller's transaction."""

    # -- writing --------------------------------------------------------------------------

    async def enqueue(self, entries: Sequence[NewEntry], *, now: float) -> list[EnqueueResult]:
        if not entries:
            return []
        with self._translate("enqueue"):
            if len(entries) == 1:
                async with self._lane_or_pool(self._lane) as conn:
                    return await self._enqueue_on(conn, entries, now)
            async with self._conn() as conn:
                if len(entries) >= _COPY_MIN_ENTRIES:
                    return await self._enqueue_copy(conn, entries, now)
                return await self._enqueue_on(conn, entries, now)

    async def enqueue_in(
        self, connection: Any, entries: Sequence[NewEntry], *, now: float
    ) -> list[EnqueueResult]:
        """Enqueue on the caller's ``asyncpg`` connection, inside its open transaction.

        The NOTIFY rides in the same transaction, so listeners wake only after the caller's
        COMMIT, and never after a ROLLBACK. This object need not be open; once it is, a
        connection to another database than the outbox's is refused (the statements name the
        outbox's schema, so that one cannot differ).
        """
        if not isinstance(connection, _asyncpg.Connection | _asyncpg.pool.PoolConnectionProxy):
            raise OutboxError(
                f"enqueue_in needs an asyncpg connection, got {type(connection).__name__}"
            )
        if not connection.is_in_transaction():
            raise OutboxError(
                "enqueue_in needs a connection inside an open transaction"
                " (async with connection.transaction(): ...)"
            )
        if not entries:
            return []
        with self._translate("enqueue_in"):
            try:
                return await self._enqueue_on(connection, entries, now, database=self._database)
            except _asyncpg.UndefinedTableError as exc:
                raise MigrationError(
                    f"PostgreSQL enqueue_in failed: the outbox tables do not exist in schema"
                    f" {self._schema!r} of the connection's database; open the outbox on that"
                    " database once first, which creates them: `async with"
                    f" Outbox.from_url(url)` or `await storage.open()` (docs/outbox.md) ({exc})"
                ) from exc

    async def _enqueue_on(
        self, conn: Any, entries: Sequence[NewEntry], now: float, *, database: str | None = None
    ) -> list[EnqueueResult]:
        """``database``: refuse a connection to any other database (enqueue_in)."""
        if len(entries) == 1:
            (entry,) = entries
            row = await conn.fetchrow(
                self._sql.enqueue_one, now, *enqueue_one_args(entry, now), self._channel, database
            )
            if row is None:
                await self._refuse_skipped(conn, database)
            return [EnqueueResult(entry.key, duplicate=row is None)]
        record = await conn.fetchrow(  # returns exactly one row
            self._sql.enqueue, now, *enqueue_args(entries, now), self._channel, database
        )
        inserted = set(record["keys"])
        if len(inserted) < len(entries):
            await self._refuse_skipped(conn, database)
        return _results(entries, inserted)

    async def wait_for_writers(self) -> None:
        """Return once every transaction writing entries when called has ended.

        migrate-outbox calls it after setting its hold: an enqueue that started before the
        hold (an ``enqueue_in`` inside an application's long transaction, say) saw no hold and
        could otherwise commit after the copy had read the table.
        """
        with self._translate("wait_for_writers"):
            async with self._conn() as conn, conn.transaction():
                await conn.execute(self._sql.wait_for_writers)

    async def _refuse_skipped(self, conn: Any, database: str | None = None) -> None:
        """Entries were skipped: duplicates, unless the outbox moved or this is another
        database than ``database``."""
        why = _one(await conn.fetchrow(self._sql.skipped_why))
        if database is not None and why["database"] != database:
            raise OutboxError(
                f"enqueue_in got a connection to database {why['database']!r}, but the outbox"
                f" is in {database!r} ({self._url}): no flusher would see entries written"
                " there; use a connection to the outbox's database"
            )
        if why["moved_to"] is not None:
            raise OutboxMovedError(self._url, why["moved_to"])

    async def _enqueue_copy(
        self, conn: Any, entries: Sequence[NewEntry], now: float
    ) -> list[EnqueueResult]:
        """A batch in its own transaction: look up the known keys, COPY the rest.

        COPY cannot skip a conflicting row, so a key that a concurrent enqueue commits between
        the lookup and the COPY fails it; the batch is then written again by the statement with
        ``ON CONFLICT``, which settles such races row by row.
        """
        rows = first_of_each_key(entries)
        known = set(await conn.fetchval(self._sql.known_keys, [e.key for e in rows]))
        fresh = [e for e in rows if e.key not in known]
        if not fresh:
            await self._refuse_skipped(conn)
        else:
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "entries",
                        schema_name=self._schema,
                        columns=COPY_COLUMNS,
                        records=copy_records(fresh, now),
                    )
                    _, moved_to = _one(
                        await conn.fetchrow(self._sql.notify_unless_moved, self._channel)
                    )
                    if moved_to is not None:  # raised inside: the COPY is rolled back
                        raise OutboxMovedError(self._url, moved_to)
            except _asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != KEY_CONSTRAINT:
                    raise
                return await self._enqueue_on(conn, entries, now)
        return _results(entries, {e.key for e in fresh})


def _results(entries: Sequence[NewEntry], inserted: set[str]) -> list[EnqueueResult]:
    """One result per entry; only the first copy of an inserted key is new."""
    results: list[EnqueueResult] = []
    for entry in entries:
        fresh = entry.key in inserted
        inserted.discard(entry.key)  # later copies of the same key are duplicates
        results.append(EnqueueResult(entry.key, duplicate=not fresh))
    return results
