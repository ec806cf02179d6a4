"""Which ``serve`` process polls a source: a lease row per source in the outbox's database
(migration ``0006_feed_leases``).

Several ``serve`` replicas on one PostgreSQL (or several processes on one SQLite file) would
otherwise all poll every source, spending the platform's API budget several times over. A
replica polls a source only while it holds the source's lease: it takes it when the row is
absent or expired, renews it well inside ``ttl`` while it polls, and deletes it when it stops.
A holder that dies (kill -9, a lost host) stops renewing, and another replica takes over once
the row expired, so within ``ttl``.

A lease row rather than a PostgreSQL session advisory lock: an advisory lock needs one pooled
connection held for as long as the replica polls (and a pool that recycles it loses the lock
silently), exists only on PostgreSQL, and cannot be read by anyone else; a row works the same
on SQLite, renews in a short transaction, and names its holder for ``status`` and health
checks. The price is that takeover waits for the expiry instead of the dropped connection.
Correctness does not rest on the lease: the checkpoint and the journal make a double poll
harmless, the lease only keeps it from being the normal case.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Protocol

from kit.errors import ConfigError
from kit.outbox import Outbox

if TYPE_CHECKING:
    from kit.outbox.postgres import PostgresStorage
    from kit.outbox.sqlite import SQLiteStorage


class LeaseStore(Protocol):
    async def acquire(self, source: str, holder: str, *, ttl: float, now: float) -> bool:
        """Take or renew ``source``'s lease for ``holder`` until ``now + ttl``; False when
        another holder's lease has not expired."""
        ...

    async def release(self, source: str, holder: str) -> None:
        """Give the lease up, if ``holder`` still has it."""
        ...

    async def holder(self, source: str, *, now: float) -> str | None:
        """Who holds an unexpired lease on ``source``."""
        ...


# One statement takes an absent or expired row, or renews the holder's own; a row held by
# someone else and not expired is left alone and nothing is returned.
_UPSERT = """
    INSERT INTO {table} (source, holder, expires_at, acquired_at) VALUES ({p1}, {p2}, {p3}, {p4})
    ON CONFLICT (source) DO UPDATE SET
        holder = excluded.holder,
        expires_at = excluded.expires_at,
        acquired_at = CASE WHEN {table}.holder = excluded.holder
                           THEN {table}.acquired_at ELSE excluded.acquired_at END
    WHERE {table}.holder = excluded.holder OR {table}.expires_at <= {p4}
    RETURNING holder"""


class SQLiteLeases:
    _TABLE = "etk_feed_leases"

    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage
        self._upsert = _UPSERT.format(table=self._TABLE, p1="?1", p2="?2", p3="?3", p4="?4")

    async def acquire(self, source: str, holder: str, *, ttl: float, now: float) -> bool:
        args = (source, holder, now + ttl, now)
        row = await self._storage.run_transaction(
            "feed.lease.acquire", lambda db: db.execute(self._upsert, args).fetchone()
        )
        return row is not None

    async def release(self, source: str, holder: str) -> None:
        sql = f"DELETE FROM {self._TABLE} WHERE source = ? AND holder = ?"
        await self._storage.run_transaction(
            "feed.lease.release", lambda db: db.execute(sql, (source, holder))
        )

    async def holder(self, source: str, *, now: float) -> str | None:
        sql = f"SELECT holder FROM {self._TABLE} WHERE source = ? AND expires_at > ?"
        row = await self._storage.run_transaction(
            "feed.lease.holder", lambda db: db.execute(sql, (source, now)).fetchone()
        )
        return None if row is None else str(row[0])


class PostgresLeases:
    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        self._table = f'"{storage.schema}".feed_leases'
        # excluded/table qualifiers: the table's own name, without the schema, in SET/WHERE.
        self._upsert = _UPSERT.format(
            table="feed_leases", p1="$1", p2="$2", p3="$3", p4="$4"
        ).replace("INSERT INTO feed_leases", f"INSERT INTO {self._table} AS feed_leases", 1)

    async def acquire(self, source: str, holder: str, *, ttl: float, now: float) -> bool:
        async with self._storage.transaction("feed.lease.acquire") as conn:
            row = await conn.fetchrow(self._upsert, source, holder, now + ttl, now)
        return row is not None

    async def release(self, source: str, holder: str) -> None:
        sql = f"DELETE FROM {self._table} WHERE source = $1 AND holder = $2"
        async with self._storage.transaction("feed.lease.release") as conn:
            await conn.execute(sql, source, holder)

    async def holder(self, source: str, *, now: float) -> str | None:
        sql = f"SELECT holder FROM {self._table} WHERE source = $1 AND expires_at > $2"
        async with self._storage.transaction("feed.lease.holder") as conn:
            value: Any = await conn.fetchval(sql, source, now)
        return None if value is None else str(value)


class MemoryLeases:
    def __init__(self) -> None:
        self._rows: dict[str, tuple[str, float]] = {}

    async def acquire(self, source: str, holder: str, *, ttl: float, now: float) -> bool:
        held = self._rows.get(source)
        if held is not None and held[0] != holder and held[1] > now:
            return False
        self._rows[source] = (holder, now + ttl)
        return True

    async def release(self, source: str, holder: str) -> None:
        if self._rows.get(source, ("", 0.0))[0] == holder:
            del self._rows[source]

    async def holder(self, source: str, *, now: float) -> str | None:
        held = self._rows.get(source)
        return held[0] if held is not None and held[1] > now else None


_MEMORY: weakref.WeakKeyDictionary[object, MemoryLeases] = weakref.WeakKeyDictionary()


def leases_for(outbox: Outbox) -> LeaseStore:
    """The lease store in ``outbox``'s database (the outbox must be open)."""
    storage = outbox.storage
    from kit.outbox.memory import InMemoryStorage

    if isinstance(storage, InMemoryStorage):
        return _MEMORY.setdefault(storage, MemoryLeases())
    from kit.outbox.sqlite import SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        return SQLiteLeases(storage)
    from kit.outbox.postgres import PostgresStorage

    if isinstance(storage, PostgresStorage):
        return PostgresLeases(storage)
    raise ConfigError(f"{type(storage).__name__} keeps no feed leases: use SQLite or PostgreSQL")


__all__ = ["LeaseStore", "MemoryLeases", "PostgresLeases", "SQLiteLeases", "leases_for"]
