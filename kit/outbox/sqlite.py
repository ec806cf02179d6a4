"""The default outbox backend: one SQLite file (or an in-memory database) through aiosqlite.

Several processes may share one file. Every write is an explicit ``BEGIN IMMEDIATE`` transaction
on an autocommit connection: SQLite then takes the write lock before the first read, so a claim's
"find the due rows" and "lease them" can never interleave with another process's claim, and two
flushers never get the same entry for the same attempt. Inside one process an
:class:`asyncio.Lock` serialises transactions on the one connection this object owns.

Every call to aiosqlite is a round trip to its worker thread, so each operation is a handful of
batched statements (``executemany``, ``json_each`` key lists, ``UPDATE ... RETURNING``) rather
than a statement per row.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Literal, Self

import aiosqlite

from kit.errors import (
    ConfigError,
    MigrationError,
    OutboxError,
    StorageError,
    StorageUnavailableError,
)
from kit.outbox.memory import (
    apply_completion,
    empty_stats_counts,
    initial_due_at,
    payload_sha256,
)
from kit.outbox.migrations import load_migrations
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Claimed,
    ClaimMode,
    Completion,
    EnqueueResult,
    Entry,
    EntryRecord,
    ForgetResult,
    Hold,
    NewEntry,
    OutboxStats,
    State,
)

logger = logging.getLogger(__name__)

MEMORY = ":memory:"
#: ``RETURNING`` arrived in 3.35; ``json_each`` is built in from 3.38 and in most older builds.
MIN_SQLITE_VERSION = (3, 35, 0)

Durability = Literal["normal", "full"]

# SQLite error names that mean "this file cannot be used at all" rather than "this statement
# failed": they become StorageUnavailableError.
_UNAVAILABLE = frozenset(
    {"SQLITE_CANTOPEN", "SQLITE_NOTADB", "SQLITE_CORRUPT", "SQLITE_PERM", "SQLITE_AUTH"}
)


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


# -- SQL ------------------------------------------------------------------------------------

_ENTRY_FIELDS = (
    "id",
    "key",
    "state",
    "event_type",
    "channel_id",
    "transaction_reference",
    "payload",
    "payload_sha256",
    "email_hash",
    "attempt",
    "sends",
    "due_at",
    "created_at",
    "updated_at",
    "first_sent_at",
    "in_doubt_since",
    "event_ref",
    "delivered_at",
    "adopted",
    "blind_resends",
    "last_error",
    "lease_owner",
    "lease_expires_at",
)
_ENTRY_COLUMNS = ", ".join(_ENTRY_FIELDS)
# finish never needs the payload; reading it would only move kilobytes through the thread.
_HEAD_COLUMNS = ", ".join("NULL" if f == "payload" else f for f in _ENTRY_FIELDS)
_ATTEMPT_COLUMNS = "attempt, kind, started_at, duration_ms, outcome, http_status, error"

_KEYS_IN = "key IN (SELECT value FROM json_each(?))"

_INSERT_NEW = """
INSERT INTO etk_entries (key, state, event_type, channel_id, transaction_reference, payload,
                         payload_sha256, email_hash, due_at, created_at, updated_at)
VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_NEW_ONE = _INSERT_NEW + " ON CONFLICT (key) DO NOTHING RETURNING id"

_INSERT_LOADED = (
    f"INSERT INTO etk_entries ({', '.join(_ENTRY_FIELDS[1:])}) "
    f"VALUES ({', '.join('?' * (len(_ENTRY_FIELDS) - 1))})"
)

_INSERT_ATTEMPT = (
    f"INSERT INTO etk_attempts (entry_id, {_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# Three index range scans (pending and in_doubt by due time, expired sending leases), each cut
# to the limit before they are merged, so the cost does not grow with the table.
_CLAIM = """
UPDATE etk_entries SET
    state = CASE WHEN state = 'pending' THEN 'sending' ELSE 'in_doubt' END,
    first_sent_at = CASE WHEN state = 'pending' THEN coalesce(first_sent_at, :now)
                         ELSE first_sent_at END,
    in_doubt_since = CASE WHEN state = 'pending' THEN in_doubt_since
                          ELSE coalesce(in_doubt_since, :now) END,
    due_at = CASE WHEN state = 'sending' THEN lease_expires_at ELSE due_at END,
    attempt = attempt + 1,
    lease_owner = :owner,
    lease_expires_at = :expires,
    updated_at = :now
WHERE id IN (
    SELECT id FROM (
        SELECT id, due FROM (
            SELECT id, due_at AS due FROM etk_entries
            WHERE state = 'pending' AND due_at <= :now
            ORDER BY due_at, id LIMIT :limit)
        UNION ALL
        SELECT id, due FROM (
            SELECT id, due_at AS due FROM etk_entries
            WHERE state = 'in_doubt' AND due_at <= :now
              AND (lease_expires_at IS NULL OR lease_expires_at <= :now)
            ORDER BY due_at, id LIMIT :limit)
        UNION ALL
        SELECT id, due FROM (
            SELECT id, lease_expires_at AS due FROM etk_entries INDEXED BY etk_entries_lease
            WHERE state = 'sending' AND lease_expires_at <= :now
            ORDER BY lease_expires_at, id LIMIT :limit)
        ORDER BY due, id LIMIT :limit))
RETURNING id, key, attempt, state, payload, event_type, channel_id, transaction_reference,
          sends, first_sent_at, in_doubt_since, due_at"""

_FINISH = """
UPDATE etk_entries SET state = ?, due_at = ?, in_doubt_since = ?, event_ref = ?,
    delivered_at = ?, adopted = ?, blind_resends = ?, sends = ?, last_error = ?,
    lease_owner = ?, lease_expires_at = ?, updated_at = ?
WHERE id = ? AND attempt = ?"""

_PURGE = """
UPDATE etk_entries INDEXED BY etk_entries_purgeable SET payload = NULL
WHERE payload IS NOT NULL AND state IN ('delivered', 'dead', 'cancelled') AND updated_at < ?"""

_SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS etk_schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""


def _entry_from_row(row: Sequence[Any]) -> Entry:
    values = dict(zip(_ENTRY_FIELDS, row, strict=True))
    values["state"] = State(values["state"])
    values["adopted"] = bool(values["adopted"])
    return Entry(**values)


def _attempt_from_row(row: Sequence[Any]) -> AttemptRecord:
    attempt, kind, started_at, duration_ms, outcome, http_status, error = row
    return AttemptRecord(
        attempt=attempt,
        kind=AttemptKind(kind),
        started_at=started_at,
        duration_ms=duration_ms,
        outcome=outcome,
        http_status=http_status,
        error=error,
    )


def _attempt_params(entry_id: int, record: AttemptRecord) -> tuple[Any, ...]:
    return (
        entry_id,
        record.attempt,
        record.kind.value,
        record.started_at,
        record.duration_ms,
        record.outcome,
        record.http_status,
        record.error,
    )


def _statements(script: str) -> list[str]:
    """Split a migration file into statements (``executescript`` would commit mid-migration)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    leftover = [ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise MigrationError(f"migration ends inside a statement: {leftover[0][:60]!r}")
    return statements


async def _insert_entries(
    conn: aiosqlite.Connection, entries: Sequence[NewEntry], now: float
) -> list[EnqueueResult]:
    """The INSERTs of ``enqueue``, on a connection whose transaction the caller controls."""
    rows: dict[str, tuple[Any, ...]] = {}
    for new in entries:
        if new.key not in rows:
            rows[new.key] = (
                new.key,
                new.event_type,
                new.channel_id,
                new.transaction_reference,
                new.payload,
                payload_sha256(new.payload),
                new.email_hash,
                initial_due_at(new, now),
                now,
                now,
            )
    if len(rows) == 1:
        (row,) = rows.values()
        returned = list(await conn.execute_fetchall(_INSERT_NEW_ONE, row))
        inserted = {row[0]} if returned else set()
    else:
        keys = json.dumps(list(rows))
        found = await conn.execute_fetchall(
            f"SELECT key FROM etk_entries WHERE {_KEYS_IN}", (keys,)
        )
        existing = {r[0] for r in found}
        fresh = [row for key, row in rows.items() if key not in existing]
        if fresh:
            # Plain INSERT: should another connection slip the same key in between (only possible
            # in a caller's deferred transaction), this fails loudly instead of misreporting.
            await conn.executemany(_INSERT_NEW, fresh)
        inserted = rows.keys() - existing
    results: list[EnqueueResult] = []
    for new in entries:
        results.append(EnqueueResult(new.key, duplicate=new.key not in inserted))
        inserted.discard(new.key)  # later copies inside the batch are duplicates
    return results


class _Phase(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class SQLiteStorage:
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
        self._conn: aiosqlite.Connection | None = None
        self._phase = _Phase.NEW
        self._lock = asyncio.Lock()  # one transaction at a time on our connection
        self._open_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.url!r}, durability={self._durability!r})"

    @property
    def url(self) -> str:
        return "sqlite://" if self.is_memory else f"sqlite:///{self._path}"

    @property
    def path(self) -> str:
        return self._path

    @property
    def is_memory(self) -> bool:
        return self._path == MEMORY

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        async with self._open_lock:  # a second open() waits until the schema is ready
            if self._phase is _Phase.OPEN:
                return
            if self._phase is _Phase.CLOSED:
                raise StorageError(f"{self!r} was closed; create a new storage object")
            self._conn = await self._connect()
            try:
                if migrate:
                    await self.migrate()
                else:
                    await self._refuse_newer_schema()
            except BaseException:
                await self._close_connection()  # stays NEW: open() may be tried again
                raise
            self._phase = _Phase.OPEN
        logger.info(
            "outbox opened at %s",
            self.url,
            extra={"action": "outbox.open", "backend": "sqlite"},
        )

    async def aclose(self) -> None:
        async with self._open_lock:
            if self._phase is _Phase.CLOSED:
                return
            self._phase = _Phase.CLOSED
        await self._close_connection()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _connect(self) -> aiosqlite.Connection:
        if sqlite3.sqlite_version_info < MIN_SQLITE_VERSION:
            raise StorageUnavailableError(
                f"SQLite {sqlite3.sqlite_version} is too old; etrusted-kit needs >= "
                + ".".join(map(str, MIN_SQLITE_VERSION))
            )
        conn = aiosqlite.connect(self._path, isolation_level=None, timeout=self._busy_timeout)
        try:
            await conn
        except sqlite3.Error as exc:
            _join_worker(conn)
            raise StorageUnavailableError(
                f"cannot open SQLite database {self._path}: {exc}"
            ) from exc
        try:
            if not self.is_memory:
                (mode,) = next(iter(await conn.execute_fetchall("PRAGMA journal_mode = WAL")))
                if str(mode).lower() != "wal":
                    logger.warning(
                        "SQLite database %s stays in journal_mode=%s (WAL not supported here)",
                        self._path,
                        mode,
                        extra={"action": "outbox.open.journal_mode"},
                    )
                synchronous = "FULL" if self._durability == "full" else "NORMAL"
                await conn.execute(f"PRAGMA synchronous = {synchronous}")
            await conn.execute("PRAGMA foreign_keys = ON")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StorageUnavailableError(
                    f"cannot use SQLite database {self._path}: {exc}"
                ) from exc
            raise
        return conn

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        async with self._lock:
            with self._translate("close"):
                await conn.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _connection(self, operation: str) -> aiosqlite.Connection:
        if self._conn is None:
            state = "closed" if self._phase is _Phase.CLOSED else "not open"
            raise StorageError(f"cannot {operation}: {self!r} is {state}; call open() first")
        return self._conn

    def _translated(self, operation: str, exc: sqlite3.Error, where: str) -> StorageError:
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        if "no such table: etk_" in text:
            return MigrationError(
                f"SQLite {operation} failed: the outbox tables do not exist in {where}; "
                f"run migrate() first ({text})"
            )
        message = f"SQLite {operation} failed on {where}: {text}"
        if name in _UNAVAILABLE or name.startswith("SQLITE_IOERR"):
            return StorageUnavailableError(message)
        return StorageError(message)

    @contextlib.contextmanager
    def _translate(self, operation: str, where: str | None = None) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._translated(operation, exc, where or self._path) from exc
        except ValueError as exc:
            # aiosqlite's way of saying the connection is gone
            if str(exc) not in ("Connection closed", "no active connection"):
                raise
            raise StorageError(f"SQLite {operation} failed on {self._path}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _locked(self, operation: str) -> AsyncIterator[aiosqlite.Connection]:
        """The connection for one statement (autocommit), translated and serialised."""
        conn = self._connection(operation)
        async with self._lock:
            with self._translate(operation):
                yield conn

    @contextlib.asynccontextmanager
    async def _transaction(
        self, operation: str, *, write: bool = True
    ) -> AsyncIterator[aiosqlite.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` for writes, a consistent snapshot for reads."""
        conn = self._connection(operation)
        async with self._lock:
            with self._translate(operation):
                try:
                    # Inside the try: if we are cancelled while BEGIN waits for another
                    # process's lock, BEGIN still runs on the worker thread and must be undone.
                    await conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    yield conn
                    await conn.commit()
                except BaseException:
                    # Queued behind whatever is still running on the worker thread, so even a
                    # cancelled operation ends before the next transaction begins.
                    with contextlib.suppress(sqlite3.Error, ValueError):
                        await conn.rollback()
                    raise

    # -- schema -----------------------------------------------------------------------------

    async def migrate(self) -> int:
        migrations = load_migrations("sqlite")
        latest = migrations[-1].version
        async with self._transaction("migrate") as conn:
            await conn.execute(_SCHEMA_TABLE)
            current = await self._version_in(conn)
            if current > latest:
                raise self._newer_schema(current, latest)
            for migration in migrations[current:]:
                for statement in _statements(migration.sql):
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO etk_schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
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
    async def _version_in(conn: aiosqlite.Connection) -> int:
        exists = await conn.execute_fetchall(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'etk_schema_version'"
        )
        if not list(exists):
            return 0
        rows = list(await conn.execute_fetchall("SELECT max(version) FROM etk_schema_version"))
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
        if len({e.key for e in entries}) == 1:
            # One INSERT statement is a transaction of its own: in autocommit mode SQLite takes
            # the write lock for it exactly as BEGIN IMMEDIATE would (waiting in the busy
            # handler), and it saves two of the three round trips to the worker thread.
            async with self._locked("enqueue") as conn:
                return await _insert_entries(conn, entries, now)
        async with self._transaction("enqueue") as conn:
            return await _insert_entries(conn, entries, now)

    async def enqueue_in(
        self, connection: Any, entries: Sequence[NewEntry], *, now: float
    ) -> list[EnqueueResult]:
        """Enqueue on the caller's aiosqlite connection, inside the caller's transaction.

        Nothing is committed or rolled back here. The connection must be in a transaction (or
        use Python's implicit transactions, the default ``isolation_level``); in autocommit mode
        with no ``BEGIN`` the rows would be committed at once, so that is refused. This storage
        object does not need to be open; its path is only used in error messages.
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
            if not entries:
                return []
            return await _insert_entries(connection, entries, now)

    async def cancel(self, key: str, *, now: float) -> bool:
        async with self._transaction("cancel") as conn:
            rows = list(
                await conn.execute_fetchall("SELECT state FROM etk_entries WHERE key = ?", (key,))
            )
            if not rows:
                raise OutboxError(f"unknown outbox key {key!r}")
            if rows[0][0] != State.PENDING.value:
                return False
            await conn.execute(
                "UPDATE etk_entries SET state = 'cancelled', updated_at = ? WHERE key = ?",
                (now, key),
            )
            return True

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[Claimed]:
        if limit <= 0:
            return []
        expires = now + lease_seconds
        params = {"now": now, "limit": limit, "owner": owner, "expires": expires}
        async with self._transaction("claim") as conn:
            rows = list(await conn.execute_fetchall(_CLAIM, params))
        rows.sort(key=lambda r: (r[11], r[0]))  # RETURNING order is arbitrary
        return [
            Claimed(
                key=r[1],
                attempt=r[2],
                mode=ClaimMode.SEND if r[3] == State.SENDING.value else ClaimMode.RECONCILE,
                payload=r[4],
                event_type=r[5],
                channel_id=r[6],
                transaction_reference=r[7],
                sends=r[8],
                first_sent_at=r[9],
                in_doubt_since=r[10],
                lease_expires_at=expires,
            )
            for r in rows
        ]

    async def finish(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        if not completions:
            return []
        keys = json.dumps(list(dict.fromkeys(c.key for c in completions)))
        applied: list[bool] = []
        async with self._transaction("finish") as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_HEAD_COLUMNS} FROM etk_entries WHERE {_KEYS_IN}", (keys,)
            )
            current = {e.key: e for e in map(_entry_from_row, rows)}
            changed: dict[str, Entry] = {}
            log: list[tuple[Any, ...]] = []
            for completion in completions:
                entry = current.get(completion.key)
                after = None if entry is None else apply_completion(entry, completion, now)
                applied.append(after is not None)
                if after is None:
                    continue
                current[after.key] = changed[after.key] = after
                if completion.record is not None:
                    log.append(_attempt_params(after.id, completion.record))
            if changed:
                await conn.executemany(
                    _FINISH,
                    [
                        (
                            e.state.value,
                            e.due_at,
                            e.in_doubt_since,
                            e.event_ref,
                            e.delivered_at,
                            int(e.adopted),
                            e.blind_resends,
                            e.sends,
                            e.last_error,
                            e.lease_owner,
                            e.lease_expires_at,
                            e.updated_at,
                            e.id,
                            e.attempt,
                        )
                        for e in changed.values()
                    ],
                )
            if log:
                await conn.executemany(_INSERT_ATTEMPT, log)
        return applied

    # -- operators --------------------------------------------------------------------------

    @staticmethod
    def _key_filter(keys: Sequence[str] | None) -> tuple[str, tuple[Any, ...]]:
        if keys is None:
            return "", ()
        return f" AND {_KEYS_IN}", (json.dumps(list(keys)),)

    async def retry_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        if keys is not None and not keys:
            return 0
        where, params = self._key_filter(keys)
        async with self._transaction("retry_dead") as conn:
            cursor = await conn.execute(
                "UPDATE etk_entries SET state = 'pending', due_at = ?, sends = 0,"
                " in_doubt_since = NULL, updated_at = ?"
                f" WHERE state = 'dead' AND payload IS NOT NULL{where}",
                (now, now, *params),
            )
            return cursor.rowcount

    async def drop_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        if keys is not None and not keys:
            return 0
        where, params = self._key_filter(keys)
        async with self._transaction("drop_dead") as conn:
            cursor = await conn.execute(
                "UPDATE etk_entries SET state = 'cancelled', payload = NULL, updated_at = ?"
                f" WHERE state = 'dead'{where}",
                (now, *params),
            )
            return cursor.rowcount

    async def purge(self, *, before: float, now: float) -> int:
        async with self._transaction("purge") as conn:
            cursor = await conn.execute(_PURGE, (before,))
            return cursor.rowcount

    async def forget_customer(self, email_hash: str, *, now: float) -> ForgetResult:
        async with self._transaction("forget_customer") as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT count(*) FROM etk_entries WHERE email_hash = ? AND state = 'sending'",
                    (email_hash,),
                )
            )
            cancelled = await conn.execute(
                "UPDATE etk_entries SET state = 'cancelled', payload = NULL, email_hash = NULL,"
                " lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
                " WHERE email_hash = ? AND state IN ('pending', 'in_doubt', 'dead')",
                (now, email_hash),
            )
            n_cancelled = cancelled.rowcount
            scrubbed = await conn.execute(
                "UPDATE etk_entries SET payload = NULL, email_hash = NULL"
                " WHERE email_hash = ? AND state IN ('delivered', 'cancelled')",
                (email_hash,),
            )
            return ForgetResult(
                purged=n_cancelled + scrubbed.rowcount, skipped_in_flight=int(rows[0][0])
            )

    # -- holds ------------------------------------------------------------------------------

    async def set_hold(self, hold: Hold) -> None:
        async with self._locked("set_hold") as conn:
            await conn.execute(
                "INSERT INTO etk_holds (name, until, reason) VALUES (?, ?, ?) ON CONFLICT (name)"
                " DO UPDATE SET until = excluded.until, reason = excluded.reason",
                (hold.name, hold.until, hold.reason),
            )

    async def clear_hold(self, name: str) -> None:
        async with self._locked("clear_hold") as conn:
            await conn.execute("DELETE FROM etk_holds WHERE name = ?", (name,))

    async def holds(self, *, now: float) -> list[Hold]:
        async with self._locked("holds") as conn:
            rows = await conn.execute_fetchall(
                "SELECT name, until, reason FROM etk_holds WHERE until > ? ORDER BY name", (now,)
            )
        return [Hold(name=r[0], until=r[1], reason=r[2]) for r in rows]

    # -- reading ----------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        async with self._locked("get") as conn:
            rows = list(
                await conn.execute_fetchall(
                    f"SELECT {_ENTRY_COLUMNS} FROM etk_entries WHERE key = ?", (key,)
                )
            )
        return _entry_from_row(rows[0]) if rows else None

    async def entries(
        self, *, state: State | None = None, limit: int = 100, after_id: int = 0
    ) -> list[Entry]:
        if limit <= 0:
            return []
        where, params = ("", ()) if state is None else (" AND state = ?", (state.value,))
        async with self._locked("entries") as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_ENTRY_COLUMNS} FROM etk_entries WHERE id > ?{where} ORDER BY id LIMIT ?",
                (after_id, *params, limit),
            )
        return [_entry_from_row(r) for r in rows]

    async def attempts(self, key: str) -> list[AttemptRecord]:
        async with self._locked("attempts") as conn:
            rows = await conn.execute_fetchall(
                f"SELECT {_ATTEMPT_COLUMNS} FROM etk_attempts"
                " WHERE entry_id = (SELECT id FROM etk_entries WHERE key = ?) ORDER BY id",
                (key,),
            )
        return [_attempt_from_row(r) for r in rows]

    async def stats(self) -> OutboxStats:
        async with self._transaction("stats", write=False) as conn:
            grouped = await conn.execute_fetchall(
                "SELECT state, count(*) FROM etk_entries GROUP BY state"
            )
            rows = list(
                await conn.execute_fetchall(
                    "SELECT"
                    " (SELECT min(created_at) FROM etk_entries WHERE state = 'pending'),"
                    " (SELECT last_error FROM etk_entries WHERE last_error IS NOT NULL"
                    "  ORDER BY updated_at DESC, id DESC LIMIT 1),"
                    " (SELECT coalesce(sum(blind_resends), 0) FROM etk_entries"
                    "  WHERE blind_resends > 0),"
                    " (SELECT count(*) FROM etk_entries WHERE adopted = 1)"
                )
            )
        counts = empty_stats_counts()
        for state, count in grouped:
            counts[State(state)] = count
        oldest, last_error, blind, adopted = rows[0]
        return OutboxStats(
            counts=counts,
            oldest_pending_created_at=oldest,
            last_error=last_error,
            blind_resends=int(blind),
            adopted=int(adopted),
        )

    # -- moving an outbox -------------------------------------------------------------------

    async def dump(self, *, batch: int = 500) -> AsyncIterator[list[EntryRecord]]:
        size = max(1, batch)
        after = 0
        while True:
            async with self._transaction("dump", write=False) as conn:
                entries = [
                    _entry_from_row(r)
                    for r in await conn.execute_fetchall(
                        f"SELECT {_ENTRY_COLUMNS} FROM etk_entries WHERE id > ?"
                        " ORDER BY id LIMIT ?",
                        (after, size),
                    )
                ]
                if not entries:
                    return
                logs: dict[int, list[AttemptRecord]] = {e.id: [] for e in entries}
                for row in await conn.execute_fetchall(
                    f"SELECT entry_id, {_ATTEMPT_COLUMNS} FROM etk_attempts"
                    " WHERE entry_id BETWEEN ? AND ? ORDER BY entry_id, id",
                    (entries[0].id, entries[-1].id),
                ):
                    logs[row[0]].append(_attempt_from_row(row[1:]))
            yield [EntryRecord(entry=e, attempts=tuple(logs[e.id])) for e in entries]
            after = entries[-1].id

    async def load(self, records: Sequence[EntryRecord]) -> int:
        unique: dict[str, EntryRecord] = {}
        for record in records:
            unique.setdefault(record.entry.key, record)
        if not unique:
            return 0
        async with self._transaction("load") as conn:
            found = await conn.execute_fetchall(
                f"SELECT key FROM etk_entries WHERE {_KEYS_IN}", (json.dumps(list(unique)),)
            )
            existing = {r[0] for r in found}
            fresh = [r for k, r in unique.items() if k not in existing]
            if not fresh:
                return 0
            await conn.executemany(
                _INSERT_LOADED,
                [
                    tuple(_db_value(getattr(r.entry, field)) for field in _ENTRY_FIELDS[1:])
                    for r in fresh
                ],
            )
            ids = {
                row[1]: row[0]
                for row in await conn.execute_fetchall(
                    f"SELECT id, key FROM etk_entries WHERE {_KEYS_IN}",
                    (json.dumps([r.entry.key for r in fresh]),),
                )
            }
            log = [_attempt_params(ids[r.entry.key], a) for r in fresh for a in r.attempts]
            if log:
                await conn.executemany(_INSERT_ATTEMPT, log)
        return len(fresh)


def _join_worker(conn: aiosqlite.Connection) -> None:
    """Wait for the worker thread of a connection that failed to open.

    aiosqlite stops that thread without waiting for it; left alone it may try to report to an
    event loop that is closed by then (an exception in a thread that nobody sees).
    """
    thread = getattr(conn, "_thread", None)
    if isinstance(thread, threading.Thread) and thread.is_alive():
        thread.join(timeout=5.0)


def _db_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


__all__ = ["MEMORY", "SQLiteStorage", "sqlite_path_from_url"]
