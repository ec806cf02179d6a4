"""The PostgreSQL outbox backend (``pip install 'etrusted-kit[postgres]'``).

For fleets: many flusher processes share one outbox. Claims use ``FOR UPDATE SKIP LOCKED`` over
partial indexes, so claimers never wait on each other and a claim costs the same with ten or a
million entries waiting; expired leases are recovered inside the claim itself, so no sweeper has
to run. Enqueues ``NOTIFY`` a channel derived from the schema in the same transaction, which
:meth:`PostgresStorage.listen` turns into wake-ups for flushers in other processes.

Times are stored as ``double precision`` epoch seconds, the same floats as
:mod:`kit.outbox.types`: they round-trip exactly (``timestamptz`` keeps only microseconds, so a
migrated outbox would no longer compare equal), and every backend sorts them the same way.

asyncpg is optional: this module imports without it, and constructing :class:`PostgresStorage`
then raises :class:`~kit.errors.ConfigError` naming the extra to install.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

from kit.errors import (
    OutboxError,
    OutboxMovedError,
)
from kit.journal._pg_tx import JournalSql, forget_journal, purge_journal
from kit.outbox._pg_base import _one
from kit.outbox._pg_enqueue import PgEnqueue
from kit.outbox._pg_flush_sql import claim_result, finish_args, finish_rounds
from kit.outbox._pg_sql import (
    amend_args,
    attempt_args,
    attempt_from_row,
    entry_from_row,
    keys_arg,
    load_args,
    stats_from_row,
)
from kit.outbox.types import (
    AttemptRecord,
    Claimed,
    Completion,
    Entry,
    EntryRecord,
    ForgetResult,
    Hold,
    NewEntry,
    OutboxStats,
    State,
)


class PostgresStorage(PgEnqueue):
    """The outbox in a PostgreSQL schema, shared safely by any number of flusher processes.

    ``pool``: an asyncpg pool owned by the application; it is used as is and never closed here.
    Without one, the storage makes its own pool, and one-entry enqueues use one more connection
    beside it (opened on first use, see :class:`~kit.outbox._pg_lane.Lane`), as ``listen()``
    does.
    """

    async def cancel(self, key: str, *, now: float) -> bool:
        with self._translate("cancel"):
            async with self._conn() as conn:
                return await self.cancel_on(conn, key, now)

    async def amend(self, entry: NewEntry, *, now: float) -> bool:
        with self._translate("amend"):
            async with self._conn() as conn:
                return await self.amend_on(conn, entry, now)

    async def cancel_on(self, conn: Any, key: str, now: float) -> bool:
        """``cancel`` on a connection the caller holds (inside its transaction, if any)."""
        if await conn.fetchval(self._sql.cancel, key, now) is not None:
            return True
        await self._refuse_unchanged(conn, key)
        return False

    async def amend_on(self, conn: Any, entry: NewEntry, now: float) -> bool:
        """``amend`` on a connection the caller holds (inside its transaction, if any)."""
        if await conn.fetchval(self._sql.amend, *amend_args(entry, now)) is not None:
            return True
        await self._refuse_unchanged(conn, entry.key)
        return False

    async def _refuse_unchanged(self, conn: Any, key: str) -> None:
        """A cancel or amend changed nothing: the outbox moved, or ``key`` is unknown; else
        the entry is no longer pending."""
        why = _one(await conn.fetchrow(self._sql.unchanged_why, key))
        if why["moved_to"] is not None:
            raise OutboxMovedError(self._url, why["moved_to"])
        if not why["known"]:
            raise OutboxError(f"unknown outbox key {key!r}")

    @contextlib.asynccontextmanager
    async def transaction(self, operation: str) -> AsyncIterator[Any]:
        """A pooled connection inside one transaction, driver errors translated. For the kit's
        own modules that keep tables beside the outbox (the journal)."""
        with self._translate(operation):
            async with self._conn() as conn, conn.transaction():
                yield conn

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[Claimed]:
        claimed, _ = await self.claim_with_holds(
            owner=owner, limit=limit, lease_seconds=lease_seconds, now=now
        )
        return claimed

    async def claim_with_holds(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> tuple[list[Claimed], list[Hold]]:
        with self._translate("claim"):
            async with self._lane_or_pool(self._claims) as conn:
                rows = await conn.fetch(
                    self._sql.claim_with_holds(limit), now, owner, lease_seconds
                )
        claimed, holds, moved = claim_result(rows)
        if moved is not None:
            raise OutboxMovedError(self._url, moved)
        return claimed, holds

    async def finish(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        results = [False] * len(completions)
        if not completions:
            return results
        rounds = finish_rounds(completions)
        with self._translate("finish"):
            async with self._lane_or_pool(self._results) as conn:
                if len(rounds) == 1:  # the usual case: one statement, atomic without BEGIN/COMMIT
                    await self._finish_round(conn, completions, rounds[0], results, now)
                    return results
                async with conn.transaction():
                    for indices in rounds:
                        await self._finish_round(conn, completions, indices, results, now)
        return results

    async def _finish_round(
        self,
        conn: Any,
        completions: Sequence[Completion],
        indices: list[int],
        results: list[bool],
        now: float,
    ) -> None:
        """One statement for completions with unique keys; marks the applied ones in results."""
        batch = [completions[i] for i in indices]
        for row in await conn.fetch(self._sql.finish, now, *finish_args(batch, now)):
            results[indices[row["idx"] - 1]] = True

    # -- operators ------------------------------------------------------------------------

    async def retry_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        return await self._count("retry_dead", self._sql.retry_dead, keys_arg(keys), now)

    async def drop_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        return await self._count("drop_dead", self._sql.drop_dead, keys_arg(keys), now)

    async def purge(self, *, before: float, now: float) -> int:
        async with self.transaction("purge") as conn:
            status: str = await conn.execute(self._sql.purge, before)
            await purge_journal(conn, self._journal_sql, before)
        return int(status.rsplit(" ", 1)[-1])

    async def forget_customer(self, email_hash: str, *, now: float) -> ForgetResult:
        async with self.transaction("forget_customer") as conn:
            _, hashes = await forget_journal(conn, self, self._journal_sql, email_hash, now=now)
            found = [await self.forget_on(conn, hashed, now) for hashed in sorted(hashes)]
        return ForgetResult.total(found)

    async def forget_on(self, conn: Any, email_hash: str, now: float) -> ForgetResult:
        """The outbox's forget rule for one e-mail hash, on a connection the caller holds."""
        row = _one(await conn.fetchrow(self._sql.forget, email_hash, now))
        return ForgetResult(purged=row["purged"], skipped_in_flight=row["skipped"])

    async def forget_keys_on(self, conn: Any, keys: Sequence[str], now: float) -> ForgetResult:
        """The forget rule for the entries of ``keys`` (an erased account's), on a connection
        the caller holds."""
        if not keys:
            return ForgetResult(purged=0, skipped_in_flight=0)
        row = _one(await conn.fetchrow(self._sql.forget_keys, list(keys), now))
        return ForgetResult(purged=row["purged"], skipped_in_flight=row["skipped"])

    @functools.cached_property
    def _journal_sql(self) -> JournalSql:
        return JournalSql(self._schema)

    # -- holds ----------------------------------------------------------------------------

    async def set_hold(self, hold: Hold) -> None:
        with self._translate("set_hold"):
            async with self._conn() as conn:
                await conn.execute(self._sql.set_hold, hold.name, hold.until, hold.reason)

    async def clear_hold(self, name: str) -> None:
        with self._translate("clear_hold"):
            async with self._conn() as conn:
                await conn.execute(self._sql.clear_hold, name)

    async def holds(self, *, now: float) -> list[Hold]:
        with self._translate("holds"):
            async with self._lane_or_pool(self._claims) as conn:
                rows = await conn.fetch(self._sql.holds, now)
        return [Hold(name=r["name"], until=r["until"], reason=r["reason"]) for r in rows]

    # -- the outbox as a whole ------------------------------------------------------------

    async def moved_to(self) -> str | None:
        with self._translate("moved_to"):
            async with self._conn() as conn:
                value: str | None = await conn.fetchval(self._sql.moved)
        return value

    async def set_moved(self, to: str | None) -> None:
        with self._translate("set_moved"):
            async with self._conn() as conn:
                if to is None:
                    await conn.execute(self._sql.clear_moved)
                else:
                    await conn.execute(self._sql.set_moved, to)

    # -- reading --------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        with self._translate("get"):
            async with self._conn() as conn:
                row = await conn.fetchrow(self._sql.get, key)
        return None if row is None else entry_from_row(row)

    async def entries(
        self, *, state: State | None = None, limit: int = 100, after_id: int = 0
    ) -> list[Entry]:
        if limit <= 0:
            return []
        state_value = None if state is None else State(state).value
        with self._translate("entries"):
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.entries, after_id, state_value, limit)
        return [entry_from_row(r) for r in rows]

    async def attempts(self, key: str) -> list[AttemptRecord]:
        with self._translate("attempts"):
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.attempts, key)
        return [attempt_from_row(r) for r in rows]

    async def stats(self) -> OutboxStats:
        with self._translate("stats"):
            async with self._conn() as conn:
                row = _one(await conn.fetchrow(self._sql.stats))
        return stats_from_row(row)

    # -- moving an outbox between backends ------------------------------------------------

    async def dump(self, *, batch: int = 500) -> AsyncIterator[list[EntryRecord]]:
        after, batch = 0, max(1, batch)
        while True:
            with self._translate("dump"):
                # One snapshot per batch, so an entry and its log always agree.
                async with (
                    self._conn() as conn,
                    conn.transaction(isolation="repeatable_read", readonly=True),
                ):
                    rows = await conn.fetch(self._sql.entries, after, None, batch)
                    if not rows:
                        return
                    log_rows = await conn.fetch(self._sql.attempts_of, [r["id"] for r in rows])
            logs: dict[int, list[AttemptRecord]] = {}
            for r in log_rows:
                logs.setdefault(r["entry_id"], []).append(attempt_from_row(r))
            yield [
                EntryRecord(entry=entry_from_row(r), attempts=tuple(logs.get(r["id"], ())))
                for r in rows
            ]
            after = rows[-1]["id"]

    async def load(self, records: Sequence[EntryRecord]) -> int:
        first: dict[str, EntryRecord] = {}
        for record in records:
            first.setdefault(record.entry.key, record)
        rows = [r.entry for r in first.values()]
        if not rows:
            return 0
        with self._translate("load"):
            async with self._conn() as conn, conn.transaction():
                inserted = {r["key"] for r in await conn.fetch(self._sql.load, *load_args(rows))}
                logs = [
                    (key, a) for key, rec in first.items() if key in inserted for a in rec.attempts
                ]
                if logs:
                    await conn.execute(self._sql.load_attempts, *attempt_args(logs))
        return len(inserted)


__all__ = ["PostgresStorage"]
