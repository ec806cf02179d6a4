"""The SQLite outbox's driver boundary: opening a tuned connection, serialising the work on it,
naming sqlite3's errors."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from kit.errors import MigrationError, StorageError, StorageUnavailableError
from kit.outbox._sqlite_group import GroupCommit
from kit.outbox._sqlite_worker import Worker

T = TypeVar("T")

# The backend's logger name, which operators already filter on.
logger = logging.getLogger("kit.outbox.sqlite")

# SQLite error names that mean "this database cannot be used (now)" rather than "this statement
# is wrong": they become StorageUnavailableError, which callers may wait out. Locked, busy, full
# and read-only databases are in it: a long transaction elsewhere, a backup, a full disk.
_UNAVAILABLE = frozenset(
    {
        "SQLITE_CANTOPEN",
        "SQLITE_NOTADB",
        "SQLITE_CORRUPT",
        "SQLITE_PERM",
        "SQLITE_AUTH",
        "SQLITE_BUSY",
        "SQLITE_LOCKED",
        "SQLITE_FULL",
        "SQLITE_READONLY",
    }
)


async def connect(path: str, *, memory: bool, durability: str, busy_timeout: float) -> Worker:
    """A thread owning an autocommit connection in WAL mode (for files), with foreign keys
    enforced. Nothing is left running if this fails."""
    if not memory:
        _create_private(path)
    opener = functools.partial(sqlite3.connect, path, isolation_level=None, timeout=busy_timeout)
    try:
        worker = await Worker.start(opener, name="kit.outbox.sqlite")
    except sqlite3.Error as exc:
        raise StorageUnavailableError(f"cannot open SQLite database {path}: {exc}") from exc
    try:
        if not memory:
            mode = await _enter_wal(worker, path, busy_timeout)
            if str(mode).lower() != "wal":
                logger.warning(
                    "SQLite database %s stays in journal_mode=%s (WAL not supported here)",
                    path,
                    mode,
                    extra={"action": "outbox.open.journal_mode"},
                )
            synchronous = "FULL" if durability == "full" else "NORMAL"
            await worker.execute(f"PRAGMA synchronous = {synchronous}")
        await worker.execute("PRAGMA foreign_keys = ON")
        # Deleted content (a purged payload, a forgotten customer) is overwritten, not just
        # marked free: some builds default to it, this one must not depend on the build.
        await worker.execute("PRAGMA secure_delete = ON")
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error):
            await worker.close()
        if isinstance(exc, sqlite3.Error):
            raise StorageUnavailableError(f"cannot use SQLite database {path}: {exc}") from exc
        raise
    return worker


def _create_private(path: str) -> None:
    """Create a new database file readable by its owner only: the outbox holds customer names
    and e-mail addresses, and SQLite gives its -wal and -shm files the database file's mode.
    An existing file (an application's own database, say) keeps the mode it has."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:  # it exists, or cannot be created: SQLite's own open reports the latter
        return
    os.close(fd)


async def _enter_wal(worker: Worker, path: str, busy_timeout: float) -> object:
    """Switch to WAL, waiting out other connections as a write would.

    SQLite answers ``PRAGMA journal_mode`` with SQLITE_BUSY at once, without calling the busy
    handler, while another connection holds the write lock of a database still in rollback mode:
    exactly the moment when several processes open a new outbox file together. So this waits
    here, for at most ``busy_timeout`` like every other statement.
    """
    deadline = time.monotonic() + busy_timeout
    pause = 0.002
    while True:
        try:
            rows = await worker.execute_fetchall("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")
            if not busy or time.monotonic() + pause > deadline:
                raise
            logger.debug(
                "SQLite database %s is locked while switching to WAL; retrying",
                path,
                extra={"action": "outbox.open.wal_busy"},
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)
            continue
        (mode,) = next(iter(rows))
        return mode


def translated(operation: str, exc: sqlite3.Error, where: str) -> StorageError:
    """The kit error for a sqlite3 error (missing tables mean the schema was never migrated)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if "no such table: etk_" in text:
        return MigrationError(
            f"SQLite {operation} failed: the outbox tables do not exist in {where}; open the"
            " outbox on this database once first, which creates them: `async with"
            f" Outbox.from_url(url)` or `await storage.open()` (docs/outbox.md) ({text})"
        )
    message = f"SQLite {operation} failed on {where}: {text}"
    primary = "_".join(name.split("_")[:2])  # SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
    if primary in _UNAVAILABLE or name.startswith("SQLITE_IOERR"):
        return StorageUnavailableError(message)
    return StorageError(message)


class Phase(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


MEMORY = ":memory:"


class Plumbing:
    """How the storage reaches its worker: one statement or transaction at a time (the lock),
    hot-path operations grouped, every sqlite3 error translated. A base of the storage."""

    _path: str
    _phase: Phase
    _worker: Worker | None
    _lock: asyncio.Lock  # one transaction at a time on the worker's connection
    _group: GroupCommit  # claims, results and holds, batched

    @property
    def is_memory(self) -> bool:
        return self._path == MEMORY

    async def _close_connection(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        async with self._lock:
            with self._translate("close"):
                await worker.close()

    def _connection(self, operation: str) -> Worker:
        if self._worker is None:
            state = "closed" if self._phase is Phase.CLOSED else "not open"
            raise StorageError(f"cannot {operation}: {self!r} is {state}; call open() first")
        return self._worker

    @contextlib.contextmanager
    def _translate(self, operation: str, where: str | None = None) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise translated(operation, exc, where or self._path) from exc
        except UnicodeError as exc:
            # A value sqlite3 cannot encode (a lone surrogate in an error text eTrusted sent):
            # refused like any value the database refuses, so callers isolate that one record.
            where = where or self._path
            raise StorageError(f"SQLite {operation} failed on {where}: {exc}") from exc
        except ValueError as exc:
            # aiosqlite's way of saying a caller's connection is gone (enqueue_in)
            if str(exc) not in ("Connection closed", "no active connection"):
                raise
            raise StorageError(f"SQLite {operation} failed on {self._path}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _locked(self, operation: str) -> AsyncIterator[Worker]:
        """The connection for one statement (autocommit), translated and serialised."""
        worker = self._connection(operation)
        async with self._lock:
            with self._translate(operation):
                yield worker

    async def _grouped(
        self,
        operation: str,
        fn: Callable[[sqlite3.Connection], T],
        *,
        write: bool = True,
        abandon: Callable[[T], None] | None = None,
    ) -> T:
        """``fn`` in a transaction shared with the other hot-path operations queued meanwhile."""
        worker = self._connection(operation)
        with self._translate(operation):
            return await self._group.run(worker, fn, write=write, abandon=abandon)

    @contextlib.asynccontextmanager
    async def _transaction(self, operation: str, *, write: bool = True) -> AsyncIterator[Worker]:
        """One transaction: ``BEGIN IMMEDIATE`` for writes, a consistent snapshot for reads."""
        worker = self._connection(operation)
        async with self._lock:
            with self._translate(operation):
                try:
                    # Inside the try: if we are cancelled while BEGIN waits for another
                    # process's lock, BEGIN still runs on the worker thread and must be undone.
                    await worker.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    yield worker
                    await worker.commit()
                except BaseException:
                    # Queued behind whatever is still running on the worker thread, so even a
                    # cancelled operation ends before the next transaction begins.
                    with contextlib.suppress(sqlite3.Error):
                        await worker.rollback()
                    raise
