"""The SQLite outbox's driver boundary: opening a tuned connection, naming sqlite3's errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time

import aiosqlite

from kit.errors import MigrationError, StorageError, StorageUnavailableError

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


async def connect(
    path: str, *, memory: bool, durability: str, busy_timeout: float
) -> aiosqlite.Connection:
    """An autocommit connection in WAL mode (for files), with foreign keys enforced."""
    if not memory:
        _create_private(path)
    conn = aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        await conn
    except sqlite3.Error as exc:
        _join_worker(conn)
        raise StorageUnavailableError(f"cannot open SQLite database {path}: {exc}") from exc
    try:
        if not memory:
            mode = await _enter_wal(conn, path, busy_timeout)
            if str(mode).lower() != "wal":
                logger.warning(
                    "SQLite database %s stays in journal_mode=%s (WAL not supported here)",
                    path,
                    mode,
                    extra={"action": "outbox.open.journal_mode"},
                )
            synchronous = "FULL" if durability == "full" else "NORMAL"
            await conn.execute(f"PRAGMA synchronous = {synchronous}")
        await conn.execute("PRAGMA foreign_keys = ON")
        # Deleted content (a purged payload, a forgotten customer) is overwritten, not just
        # marked free: some builds default to it, this one must not depend on the build.
        await conn.execute("PRAGMA secure_delete = ON")
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await conn.close()
        if isinstance(exc, sqlite3.Error):
            raise StorageUnavailableError(f"cannot use SQLite database {path}: {exc}") from exc
        raise
    return conn


def _create_private(path: str) -> None:
    """Create a new database file readable by its owner only: the outbox holds customer names
    and e-mail addresses, and SQLite gives its -wal and -shm files the database file's mode.
    An existing file (an application's own database, say) keeps the mode it has."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError:  # it exists, or cannot be created: SQLite's own open reports the latter
        return
    os.close(fd)


async def _enter_wal(conn: aiosqlite.Connection, path: str, busy_timeout: float) -> object:
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
            rows = await conn.execute_fetchall("PRAGMA journal_mode = WAL")
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
            " Outbox.from_url(url)` or `await storage.open()` (docs/outbox.md) ({text})"
        )
    message = f"SQLite {operation} failed on {where}: {text}"
    primary = "_".join(name.split("_")[:2])  # SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
    if primary in _UNAVAILABLE or name.startswith("SQLITE_IOERR"):
        return StorageUnavailableError(message)
    return StorageError(message)


def _join_worker(conn: aiosqlite.Connection) -> None:
    """Wait for the worker thread of a connection that failed to open.

    aiosqlite stops that thread without waiting for it; left alone it may try to report to an
    event loop that is closed by then (an exception in a thread that nobody sees).
    """
    thread = getattr(conn, "_thread", None)
    if isinstance(thread, threading.Thread) and thread.is_alive():
        thread.join(timeout=5.0)
