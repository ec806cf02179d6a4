"""The SQLite outbox's driver boundary: opening a tuned connection, naming sqlite3's errors."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading

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
    conn = aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout)
    try:
        await conn
    except sqlite3.Error as exc:
        _join_worker(conn)
        raise StorageUnavailableError(f"cannot open SQLite database {path}: {exc}") from exc
    try:
        if not memory:
            (mode,) = next(iter(await conn.execute_fetchall("PRAGMA journal_mode = WAL")))
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
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await conn.close()
        if isinstance(exc, sqlite3.Error):
            raise StorageUnavailableError(f"cannot use SQLite database {path}: {exc}") from exc
        raise
    return conn


def translated(operation: str, exc: sqlite3.Error, where: str) -> StorageError:
    """The kit error for a sqlite3 error (missing tables mean the schema was never migrated)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc)
    if "no such table: etk_" in text:
        return MigrationError(
            f"SQLite {operation} failed: the outbox tables do not exist in {where}; "
            f"run migrate() first ({text})"
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
