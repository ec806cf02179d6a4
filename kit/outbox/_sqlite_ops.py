"""The SQLite outbox's operator commands: dead entries, purges and forgetting a customer.

A base of :class:`kit.outbox.sqlite.SQLiteStorage`, apart because none of it is on the delivery
path and all of it shares one concern: removed customer data must not stay readable in the WAL.
Purge and forget clear the journal's customer data (:mod:`kit.journal`) in the same transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from kit.journal._sqlite_tx import forget_entries, forget_journal, purge_journal
from kit.outbox import _sqlite_sql as sql
from kit.outbox._sqlite_conn import Plumbing
from kit.outbox.types import ForgetResult

logger = logging.getLogger("kit.outbox.sqlite")  # the storage's name, as operators filter logs

# How long the WAL scrub after purge/forget may wait for readers (milliseconds).
_SCRUB_WAIT_MS = 200


class SQLiteOperators(Plumbing):
    """Operator commands of the SQLite outbox (see :class:`kit.outbox.protocol.Storage`)."""

    _busy_timeout: float

    @staticmethod
    def _key_filter(keys: Sequence[str] | None) -> tuple[str, tuple[Any, ...]]:
        if keys is None:
            return "", ()
        return sql.AND_KEYS_IN, (json.dumps(list(keys)),)

    async def retry_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        if keys is not None and not keys:
            return 0
        where, params = self._key_filter(keys)
        async with self._transaction("retry_dead") as conn:
            cursor = await conn.execute(sql.RETRY_DEAD + where, (now, now, *params))
            return cursor.rowcount

    async def drop_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        if keys is not None and not keys:
            return 0
        where, params = self._key_filter(keys)
        async with self._transaction("drop_dead") as conn:
            cursor = await conn.execute(sql.DROP_DEAD + where, (now, *params))
            return cursor.rowcount

    async def purge(self, *, before: float, now: float) -> int:
        async with self._transaction("purge") as conn:
            cursor = await conn.execute(sql.PURGE, (before,))
            purged: int = cursor.rowcount
            journal = await conn.run(lambda db: purge_journal(db, before))
        if purged or journal:
            await self._scrub_wal("purge")
        return purged

    async def forget_customer(self, email_hash: str, *, now: float) -> ForgetResult:
        where = self._path
        async with self._transaction("forget_customer") as conn:
            result, journal = await conn.run(lambda db: _forget(db, email_hash, now, where))
        if result.purged or journal:
            await self._scrub_wal("forget_customer")
        return result

    async def scrub_wal(self, operation: str) -> None:
        """After customer data was removed by another path (the journal's erasure requests):
        see :meth:`_scrub_wal`."""
        await self._scrub_wal(operation)

    async def _scrub_wal(self, operation: str) -> None:
        """Move the scrubbed pages into the database file and empty the WAL, so that removed
        customer data does not stay readable in old WAL frames (or in a backup of them) until
        some later checkpoint. Freed space is zeroed by ``secure_delete`` (set on connect)."""
        if self.is_memory:
            return
        async with self._locked(operation) as conn:
            # TRUNCATE waits in the busy handler until every reader is on the newest snapshot;
            # a reader (a backup, a shell, a report) must not stall this storage's lock for the
            # whole busy timeout, so it gets a short one, and the rest waits for a checkpoint.
            await conn.execute(f"PRAGMA busy_timeout = {_SCRUB_WAIT_MS}")
            try:
                ((busy, _, _),) = await conn.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                await conn.execute(f"PRAGMA busy_timeout = {round(self._busy_timeout * 1000)}")
        if busy:
            logger.warning(
                "%s: another connection is reading the outbox, so the removed data stays in"
                " the WAL file of %s until the next checkpoint",
                operation,
                self._path,
                extra={"action": "outbox.scrub_deferred"},
            )


def _forget(
    db: sqlite3.Connection, email_hash: str, now: float, where: str
) -> tuple[ForgetResult, int]:
    """The customer's journal, then the entries of every e-mail hash it names; and how many
    journal rows changed."""
    journal, hashes = forget_journal(db, email_hash, now=now, where=where)
    found = ForgetResult.total(forget_entries(db, hashed, now) for hashed in sorted(hashes))
    return found, journal
