"""Where a feed run stands, per source, in the outbox's own database (migration ``0005_feeds``).

A checkpoint is saved after a page's orders were journaled (each in its own ingest
transaction), never before: a run killed between the two reads the page again on resume, and
the journal records each order version once, so nothing is missed and nothing doubled. The
page is not written in the same transaction as its orders because the journal takes one
delivery per transaction: holding the single SQLite writer for a page of 250 orders would keep
webhooks (which Shopify gives five seconds) waiting behind a backfill.

Backends: SQLite and PostgreSQL through the outbox storage's own transaction helpers, and an
in-memory one for tests with the in-memory outbox.
"""

from __future__ import annotations

import enum
import weakref
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from kit.errors import ConfigError
from kit.outbox import Outbox

if TYPE_CHECKING:  # the backends import their drivers; the store imports them when chosen
    from kit.outbox.postgres import PostgresStorage
    from kit.outbox.protocol import Storage
    from kit.outbox.sqlite import SQLiteStorage


class Run(enum.StrEnum):
    """Which run of a source a checkpoint belongs to; each has its own."""

    POLL = "poll"  # the periodic reconciliation under ``serve``
    BACKFILL = "backfill"  # ``etrusted-kit backfill``: one window at a time


@attrs.frozen(kw_only=True)
class Checkpoint:
    """A run's window and how far it got (UTC epoch seconds).

    ``high_water`` is the newest change time on a committed page: the run resumes reading at
    ``high_water - overlap``. ``done``: the window's last page was committed.
    """

    source: str
    run: Run
    since: float
    until: float | None = None
    high_water: float | None = None
    pages: int = 0
    orders: int = 0
    done: bool = False
    saved_at: float = 0.0


class CheckpointStore(Protocol):
    async def load(self, source: str, run: Run) -> Checkpoint | None: ...

    async def save(self, checkpoint: Checkpoint) -> None:
        """Insert or replace the source's checkpoint for ``checkpoint.run``."""
        ...

    async def dump(self) -> list[Checkpoint]:
        """Every checkpoint (one per source and run: a short list), for a move."""
        ...

    async def add(self, checkpoint: Checkpoint) -> bool:
        """Insert ``checkpoint`` unless its source and run have one already (which stays)."""
        ...


_COLUMNS = "source, run, since, until, high_water, pages, orders, done, saved_at"


def _row(row: Any) -> Checkpoint:
    source, run, since, until, high_water, pages, orders, done, saved_at = tuple(row)
    return Checkpoint(
        source=source,
        run=Run(run),
        since=since,
        until=until,
        high_water=high_water,
        pages=int(pages),
        orders=int(orders),
        done=bool(done),
        saved_at=saved_at,
    )


def _values(c: Checkpoint) -> tuple[Any, ...]:
    return (
        c.source,
        c.run.value,
        c.since,
        c.until,
        c.high_water,
        c.pages,
        c.orders,
        c.done,
        c.saved_at,
    )


class SQLiteCheckpoints:
    _LOAD = f"SELECT {_COLUMNS} FROM etk_feed_checkpoints WHERE source = ? AND run = ?"
    _SAVE = (
        f"INSERT OR REPLACE INTO etk_feed_checkpoints ({_COLUMNS}) VALUES ({', '.join('?' * 9)})"
    )

    _DUMP = f"SELECT {_COLUMNS} FROM etk_feed_checkpoints ORDER BY source, run"
    _ADD = f"INSERT OR IGNORE INTO etk_feed_checkpoints ({_COLUMNS}) VALUES ({', '.join('?' * 9)})"

    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage

    async def load(self, source: str, run: Run) -> Checkpoint | None:
        row = await self._storage.run_transaction(
            "feed.checkpoint.load",
            lambda db: db.execute(self._LOAD, (source, run.value)).fetchone(),
        )
        return None if row is None else _row(row)

    async def save(self, checkpoint: Checkpoint) -> None:
        values = _values(checkpoint)
        await self._storage.run_transaction(
            "feed.checkpoint.save", lambda db: db.execute(self._SAVE, values)
        )

    async def dump(self) -> list[Checkpoint]:
        rows = await self._storage.run_transaction(
            "feed.checkpoint.dump", lambda db: db.execute(self._DUMP).fetchall()
        )
        return [_row(r) for r in rows]

    async def add(self, checkpoint: Checkpoint) -> bool:
        values = _values(checkpoint)
        added: int = await self._storage.run_transaction(
            "feed.checkpoint.add", lambda db: db.execute(self._ADD, values).rowcount
        )
        return added == 1


class PostgresCheckpoints:
    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage
        table = f'"{storage.schema}".feed_checkpoints'
        self._load = f"SELECT {_COLUMNS} FROM {table} WHERE source = $1 AND run = $2"
        self._dump = f"SELECT {_COLUMNS} FROM {table} ORDER BY source, run"
        self._add = f"""
            INSERT INTO {table} ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (source, run) DO NOTHING RETURNING source"""
        self._save = f"""
            INSERT INTO {table} ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
            ON CONFLICT (source, run) DO UPDATE SET
                since = EXCLUDED.since, until = EXCLUDED.until,
                high_water = EXCLUDED.high_water, pages = EXCLUDED.pages,
                orders = EXCLUDED.orders, done = EXCLUDED.done, saved_at = EXCLUDED.saved_at"""

    async def load(self, source: str, run: Run) -> Checkpoint | None:
        async with self._storage.transaction("feed.checkpoint.load") as conn:
            row = await conn.fetchrow(self._load, source, run.value)
        return None if row is None else _row(row)

    async def save(self, checkpoint: Checkpoint) -> None:
        async with self._storage.transaction("feed.checkpoint.save") as conn:
            await conn.execute(self._save, *_values(checkpoint))

    async def dump(self) -> list[Checkpoint]:
        async with self._storage.transaction("feed.checkpoint.dump") as conn:
            return [_row(r) for r in await conn.fetch(self._dump)]

    async def add(self, checkpoint: Checkpoint) -> bool:
        async with self._storage.transaction("feed.checkpoint.add") as conn:
            return await conn.fetchval(self._add, *_values(checkpoint)) is not None


class MemoryCheckpoints:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, Run], Checkpoint] = {}

    async def load(self, source: str, run: Run) -> Checkpoint | None:
        return self._rows.get((source, run))

    async def save(self, checkpoint: Checkpoint) -> None:
        self._rows[(checkpoint.source, checkpoint.run)] = checkpoint

    async def dump(self) -> list[Checkpoint]:
        return [self._rows[k] for k in sorted(self._rows)]

    async def add(self, checkpoint: Checkpoint) -> bool:
        return self._rows.setdefault((checkpoint.source, checkpoint.run), checkpoint) is checkpoint


_MEMORY: weakref.WeakKeyDictionary[object, MemoryCheckpoints] = weakref.WeakKeyDictionary()


def checkpoints_for(outbox: Outbox) -> CheckpointStore:
    """The checkpoint store in ``outbox``'s database (the outbox must be open)."""
    return checkpoints_in(outbox.storage)


def checkpoints_in(storage: Storage) -> CheckpointStore:
    """The checkpoint store beside ``storage`` (which must be open)."""
    from kit.outbox.memory import InMemoryStorage

    if isinstance(storage, InMemoryStorage):
        return _MEMORY.setdefault(storage, MemoryCheckpoints())
    from kit.outbox.sqlite import SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        return SQLiteCheckpoints(storage)
    from kit.outbox.postgres import PostgresStorage  # imports without asyncpg

    if isinstance(storage, PostgresStorage):
        return PostgresCheckpoints(storage)
    raise ConfigError(
        f"{type(storage).__name__} keeps no feed checkpoints: use SQLite or PostgreSQL"
    )


__all__ = [
    "Checkpoint",
    "CheckpointStore",
    "MemoryCheckpoints",
    "PostgresCheckpoints",
    "Run",
    "SQLiteCheckpoints",
    "checkpoints_for",
    "checkpoints_in",
]
