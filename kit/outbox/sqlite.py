"""The default outbox backend: one SQLite file (or an in-memory database), on a thread of its own.

Several processes may share one file. Every write is an explicit ``BEGIN IMMEDIATE`` transaction
on an autocommit connection: SQLite then takes the write lock before the first read, so a claim's
"find the due rows" and "lease them" can never interleave with another process's claim, and two
flushers never get the same entry for the same attempt. Inside one process an
:class:`asyncio.Lock` serialises transactions on the one connection this object owns.

Every statement is a round trip to the storage's own worker thread (see
:mod:`kit.outbox._sqlite_worker`), so each operation is a handful of batched statements
(``executemany``, ``json_each`` key and id lists) rather than a statement per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import operator
import os
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal, Self, TypeVar

import aiosqlite

from kit.errors import (
    ConfigError,
    MigrationError,
    OutboxError,
    StorageError,
    StorageUnavailableError,
)
from kit.outbox import _sqlite_sql as sql
from kit.outbox._sqlite_batch import (
    amend_one,
    cancel_one,
    finish_entries,
    insert_entries,
    insert_one,
    load_records,
    refuse_if_moved_now,
)
from kit.outbox._sqlite_conn import MEMORY, Phase, connect
from kit.outbox._sqlite_group import GroupCommit
from kit.outbox._sqlite_ops import SQLiteOperators
from kit.outbox._sqlite_sql import attempt_from_row, entry_from_row
from kit.outbox._sqlite_worker import Worker
from kit.outbox.migrations import load_migrations
from kit.outbox.types import (
    AttemptRecord,
    Claimed,
    Completion,
    EnqueueResult,
    Entry,
    EntryRecord,
    Hold,
    NewEntry,
    OutboxStats,
    Release,
    State,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: ``RETURNING`` arrived in 3.35; ``json_each`` is built in from 3.38 and in most older builds.
MIN_SQLITE_VERSION = (3, 35, 0)

Durability = Literal["normal", "full"]


def sqlite_path_from_url(url: str) -> str:
    """The database path in a ``sqlite://`` URL (SQLAlchemy's convention).

    ``sqlite:///relative/path``, ``sqlite:////absolute/path``; ``sqlite://`` and
    ``sqlite:///:memory:`` mean an in-memory database.
    """
    if not url.startswith("sqlite:"):
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise ConfigError(f"not a sqlite:// URL (scheme {scheme!r})")
    rest = url[len("sqlite:") :]
    if rest == "//":
        return MEMORY
    if not rest.startswith("///"):
        raise ConfigError(
            "a SQLite URL has no host: use sqlite:///relative/path or sqlite:////absolute/path"
        )
    path = rest[3:]
    if not path:
        raise ConfigError("the SQLite URL names no database file")
    if "?" in path or "#" in path:
        raise ConfigError("query parameters and fragments are not supported in SQLite URLs")
    return path


def _resolve_target(target: str | os.PathLike[str]) -> str:
    if not isinstance(target, str):
        return os.fspath(target)
    if target.startswith("sqlite:"):
        return sqlite_path_from_url(target)
    if not target:
        raise ConfigError("the SQLite database path is empty")
    return target


def _same_file(a: str, b: str) -> bool:
    """One file, however spelt (relative, through a symlink, a hard link)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the database the other one is
        return False


# Claimed rows by due time, then id (a C-level key: no Python call per row).
_CLAIM_ORDER = operator.itemgetter(11, 0)

# Tests read the query plans of the claim's search and of the purge from here.
_CLAIM = sql.CLAIM_PICK
_PURGE = sql.PURGE


class SQLiteStorage(SQLiteOperators):
    """The outbox in a SQLite database (see the module docstring for the concurrency model).

    ``target`` is a file path, a ``sqlite:///relative`` / ``sqlite:////absolute`` URL, or
    ``:memory:`` / ``sqlite://`` for a private in-memory database. ``durability="full"`` makes
    every commit fsync (``synchronous=FULL``); ``"normal"`` may lose the last commits on a power
    cut but never corrupts the file. ``busy_timeout`` is how long a write waits for another
    process's transaction.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        durability: Durability = "normal",
        busy_timeout: float = 10.0,
    ) -> None:
        if durability not in ("normal", "full"):
            raise ConfigError(f"durability must be 'normal' or 'full', got {durability!r}")
        if busy_timeout < 0:
            raise ConfigError(f"busy_timeout must be >= 0, got {busy_timeout!r}")
        self._path = _resolve_target(target)
        self._durability: Durability = durability
        self._busy_timeout = float(busy_timeout)
        self._worker: Worker | None = None  # the thread that owns our connection
        self._phase = Phase.NEW
        self._lock = asyncio.Lock()
        self._group = GroupCommit(self._lock)
        self._handing_back: set[asyncio.Future[None]] = set()  # releases of cancelled claims
        self._open_lock = asyncio.Lock()
        # Callers' connections whose main database is the outbox's file (see enqueue_in).
        self._own_file: weakref.WeakSet[aiosqlite.Connection] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.url!r}, durability={self._durability!r})"

    @property
    def url(self) -> str:
        return "sqlite://" if self.is_memory else f"sqlite:///{self._path}"

    @property
    def path(self) -> str:
        return self._path

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        async with self._open_lock:  # a second open() waits until the schema is ready
            if self._phase is Phase.OPEN:
                return
            if self._phase is Phase.CLOSED:
                raise StorageError(f"{self!r} was closed; create a new storage object")
            self._worker = await self._connect()
            try:
                if migrate:
                    await self.migrate()
                else:
                    await self._refuse_newer_schema()
            except BaseException:
                await self._close_connection()  # stays NEW: open() may be tried again
                raise
            self._phase = Phase.OPEN
        logger.info(
            "outbox opened at %s",
            self.url,
            extra={"action": "outbox.open", "backend": "sqlite"},
        )

    async def aclose(self) -> None:
        async with self._open_lock:
            if self._phase is Phase.CLOSED:
                return
            if self._handing_back:  # entries of cancelled claims go back before the door shuts
                await asyncio.gather(*self._handing_back, return_exceptions=True)
            self._phase = Phase.CLOSED
        await self._close_connection()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _connect(self) -> Worker:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise StorageUnavailableError(
                f"SQLite {sqlite3.sqlite_version} is too old; etrusted-kit needs >= "
                + ".".join(map(str, MIN_SQLITE_VERSION))
            )
        return await connect(
            self._path,
            memory=self.is_memory,
            durability=self._durability,
            busy_timeout=self._busy_timeout,
        )

    # -- schema -----------------------------------------------------------------------------

    async def migrate(self) -> int:
        migrations = load_migrations("sqlite")
        latest = migrations[-1].version
        async with self._transaction("migrate") as conn:
            await conn.execute(sql.SCHEMA_TABLE)
            current = await self._version_in(conn)
            if current > latest:
                raise self._newer_schema(current, latest)
            for migration in migrations[current:]:
                for statement in sql.statements(migration.sql):
                    await conn.execute(statement)
                await conn.execute(
                    sql.RECORD_VERSION, (migration.version, migration.name, time.time())
                )
                logger.info(
                    "applied outbox migration %04d_%s to %s",
                    migration.version,
                    migration.name,
                    self.url,
                    extra={"action": "outbox.migrate", "version": migration.version},
                )
        return max(current, latest)

    async def schema_version(self) -> int:
        """The outbox schema version in the database; 0 when it was never migrated."""
        async with self._transaction("schema_version", write=False) as conn:
            return await self._version_in(conn)

    @staticmethod
    async def _version_in(conn: Worker) -> int:
        exists = await conn.execute_fetchall(sql.HAS_VERSION_TABLE)
        if not list(exists):
            return 0
        rows = list(await conn.execute_fetchall(sql.MAX_VERSION))
        return int(rows[0][0] or 0)

    def _newer_schema(self, current: int, latest: int) -> MigrationError:
        return MigrationError(
            f"the outbox schema in {self._path} is version {current}, newer than the version "
            f"{latest} this etrusted-kit knows: it was written by a newer etrusted-kit; upgrade "
            "etrusted-kit instead of downgrading the database"
        )

    async def _refuse_newer_schema(self) -> None:
        current = await self.schema_version()
        latest = load_migrations("sqlite")[-1].version
        if current > latest:
            raise self._newer_schema(current, latest)

    # -- writing ----------------------------------------------------------------------------

    async def enqueue(self, entries: Sequence[NewEntry], *, now: float) -> list[EnqueueResult]:
        if not entries:
            return []
        if len(entries) == 1:
            # One INSERT statement is a transaction of its own: in autocommit mode SQLite takes
            # the write lock for it exactly as BEGIN IMMEDIATE would (waiting in the busy
            # handler), and it saves two of the three round trips to the worker thread. Spelt
            # out rather than through _locked() and insert_entries(): enqueue()'s hot path.
            new = entries[0]
            conn = self._connection("enqueue")
            async with self._lock:
                with self._translate("enqueue"):
                    inserted = await insert_one(conn, new, now, where=self.url)
            return [EnqueueResult(new.key, duplicate=not inserted)]
        if len({e.key for e in entries}) == 1:
            async with self._locked("enqueue") as conn:
                return await insert_entries(conn, entries, now, where=self.url)
        async with self._transaction("enqueue") as conn:
            return await insert_entries(conn, entries, now, where=self.url)

    async def enqueue_in(
        self, connection: Any, entries: Sequence[NewEntry], *, now: float
    ) -> list[EnqueueResult]:
        """Enqueue on the caller's aiosqlite connection, inside the caller's transaction.

        Nothing is committed or rolled back here. The connection must be in a transaction (or
        use Python's implicit transactions, the default ``isolation_level``); in autocommit mode
        with no ``BEGIN`` the rows would be committed at once, so that is refused. So is a
        connection to another database file than the outbox's: no flusher would see its rows.
        This storage object does not need to be open.
        """
        if not isinstance(connection, aiosqlite.Connection):
            raise OutboxError(
                f"enqueue_in needs an aiosqlite.Connection, got {type(connection).__name__}"
            )
        where = "the caller's connection"
        with self._translate("enqueue_in", where):
            if connection.isolation_level is None and not connection.in_transaction:
                raise OutboxError(
                    "enqueue_in needs an open transaction: the connection is in autocommit mode "
                    "(isolation_level=None) and no BEGIN was issued"
                )
            if connection not in self._own_file:
                await self._refuse_another_file(connection)
            if not entries:
                return []
            return await insert_entries(connection, entries, now, where=self.url)

    async def _refuse_another_file(self, connection: aiosqlite.Connection) -> None:
        """The caller's connection must have the outbox's file as its main database. Checked
        once per connection (its main database cannot change), by file identity."""
        if self.is_memory:
            raise OutboxError(
                "enqueue_in cannot reach an in-memory outbox: its database is private to the"
                " storage's own connection; use a database file shared by both"
            )
        rows = await connection.execute_fetchall("PRAGMA database_list")
        main = next((str(r[2]) for r in rows if r[1] == "main"), "")
        if not main:
            raise OutboxError(
                f"enqueue_in got a connection to an in-memory database, but the outbox is in"
                f" {self._path}: connect to that file (aiosqlite.connect({self._path!r}))"
            )
        if not _same_file(main, self._path):
            raise OutboxError(
                f"enqueue_in got a connection to {main}, but the outbox is in {self._path}:"
                " no flusher would see entries written there; connect to the outbox's file"
            )
        self._own_file.add(connection)

    async def cancel(self, key: str, *, now: float) -> bool:
        return await self._grouped("cancel", lambda db: cancel_one(db, key, now, where=self.url))

    async def amend(self, entry: NewEntry, *, now: float) -> bool:
        return await self._grouped("amend", lambda db: amend_one(db, entry, now, where=self.url))

    async def run_transaction(self, operation: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the storage's worker thread inside one write transaction
        (``BEGIN IMMEDIATE ... COMMIT``, shared with other operations queued meanwhile; a
        failing ``fn`` is rolled back alone). For the kit's own modules that keep tables beside
        the outbox (the journal); sqlite3 errors come out translated.
        """
        return await self._grouped(operation, fn)

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[Claimed]:
        claimed, _ = await self._claim(owner, max(0, limit), lease_seconds, now, with_holds=False)
        return claimed

    async def claim_with_holds(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> tuple[list[Claimed], list[Hold]]:
        return await self._claim(owner, max(0, limit), lease_seconds, now, with_holds=True)

    async def _claim(
        self, owner: str, limit: int, lease_seconds: float, now: float, *, with_holds: bool
    ) -> tuple[list[Claimed], list[Hold]]:
        expires = now + lease_seconds
        params: dict[str, Any] = {"now": now, "limit": limit, "owner": owner, "expires": expires}

        def claim_rows(db: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            refuse_if_moved_now(db, self.url)
            rows: list[Any] = []
            if limit > 0:
                ids = [r[0] for r in db.execute(sql.CLAIM_PICK, params)]
                if ids:
                    params["ids"] = picked = json.dumps(ids)
                    db.execute(sql.CLAIM, params)
                    rows = db.execute(sql.CLAIMED, (picked,)).fetchall()
            holds = db.execute(sql.HOLDS, (now,)).fetchall() if with_holds else []
            return rows, holds

        def hand_back(result: tuple[list[Any], list[Any]]) -> None:
            # The caller was cancelled after these were leased: release them at once rather
            # than leave them to expire into doubt (fenced by attempt, so always harmless).
            if result[0]:
                back = [Completion(r[1], r[2], Release(), None, r[0]) for r in result[0]]
                task = asyncio.ensure_future(self._hand_back(back))
                self._handing_back.add(task)
                task.add_done_callback(self._handing_back.discard)

        rows, holds = await self._grouped("claim", claim_rows, abandon=hand_back)
        rows.sort(key=_CLAIM_ORDER)  # CLAIMED reads them in no particular order
        return (
            [sql.claimed_from_row(r, expires) for r in rows],
            [Hold(name=r[0], until=r[1], reason=r[2]) for r in holds],
        )

    async def _hand_back(self, completions: list[Completion]) -> None:
        with contextlib.suppress(StorageError):
            await self.finish(completions, now=time.time())

    async def finish(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        if not completions:
            return []
        return await self._grouped("finish", lambda db: finish_entries(db, completions, now))

    # -- holds ------------------------------------------------------------------------------

    async def set_hold(self, hold: Hold) -> None:
        async with self._locked("set_hold") as conn:
            await conn.execute(sql.SET_HOLD, (hold.name, hold.until, hold.reason))

    async def clear_hold(self, name: str) -> None:
        async with self._locked("clear_hold") as conn:
            await conn.execute(sql.CLEAR_HOLD, (name,))

    async def holds(self, *, now: float) -> list[Hold]:
        def read(db: sqlite3.Connection) -> list[Any]:
            return db.execute(sql.HOLDS, (now,)).fetchall()

        rows = await self._grouped("holds", read, write=False)
        return [Hold(name=r[0], until=r[1], reason=r[2]) for r in rows]

    # -- the outbox as a whole --------------------------------------------------------------

    async def moved_to(self) -> str | None:
        async with self._locked("moved_to") as conn:
            rows = list(await conn.execute_fetchall(sql.MOVED))
        return str(rows[0][0]) if rows else None

    async def set_moved(self, to: str | None) -> None:
        async with self._locked("set_moved") as conn:
            if to is None:
                await conn.execute(sql.CLEAR_MOVED)
            else:
                await conn.execute(sql.SET_MOVED, (to,))

    # -- reading ----------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        async with self._locked("get") as conn:
            rows = list(await conn.execute_fetchall(sql.GET, (key,)))
        return entry_from_row(rows[0]) if rows else None

    async def entries(
        self, *, state: State | None = None, limit: int = 100, after_id: int = 0
    ) -> list[Entry]:
        if limit <= 0:
            return []
        query, params = (
            (sql.ENTRIES, ()) if state is None else (sql.ENTRIES_IN_STATE, (state.value,))
        )
        async with self._locked("entries") as conn:
            rows = await conn.execute_fetchall(query, (after_id, *params, limit))
        return [entry_from_row(r) for r in rows]

    async def attempts(self, key: str) -> list[AttemptRecord]:
        async with self._locked("attempts") as conn:
            rows = await conn.execute_fetchall(sql.ATTEMPTS, (key,))
        return [attempt_from_row(r) for r in rows]

    async def stats(self) -> OutboxStats:
        async with self._transaction("stats", write=False) as conn:
            grouped = await conn.execute_fetchall(sql.STATS_COUNTS)
            rows = list(await conn.execute_fetchall(sql.STATS_SUMMARY))
        return sql.stats_from_rows(grouped, rows[0])

    # -- moving an outbox -------------------------------------------------------------------

    async def dump(self, *, batch: int = 500) -> AsyncIterator[list[EntryRecord]]:
        size = max(1, batch)
        after = 0
        while True:
            async with self._transaction("dump", write=False) as conn:
                entries = [
                    entry_from_row(r)
                    for r in await conn.execute_fetchall(sql.ENTRIES, (after, size))
                ]
                if not entries:
                    return
                logs: dict[int, list[AttemptRecord]] = {e.id: [] for e in entries}
                for row in await conn.execute_fetchall(
                    sql.ATTEMPTS_BETWEEN, (entries[0].id, entries[-1].id)
                ):
                    logs[row[0]].append(attempt_from_row(row[1:]))
            yield [EntryRecord(entry=e, attempts=tuple(logs[e.id])) for e in entries]
            after = entries[-1].id

    async def load(self, records: Sequence[EntryRecord]) -> int:
        unique: dict[str, EntryRecord] = {}
        for record in records:
            unique.setdefault(record.entry.key, record)
        if not unique:
            return 0
        async with self._transaction("load") as conn:
            return await load_records(conn, unique)


__all__ = ["MEMORY", "SQLiteStorage", "sqlite_path_from_url"]
