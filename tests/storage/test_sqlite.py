"""What only the SQLite backend has: files, URLs, WAL, processes, migrations, driver errors and
enqueueing inside the application's own transaction. The rules shared by every backend are in
kit.testing.storage_contract."""

from __future__ import annotations

import asyncio
import gc
import glob
import json
import logging
import os
import sqlite3
import stat
import sys
import textwrap
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from builders import T0, event, order

from kit.errors import (
    ConfigError,
    MigrationError,
    OutboxError,
    StorageError,
    StorageUnavailableError,
    ValidationError,
)
from kit.outbox import Outbox, email_hash
from kit.outbox import _sqlite_group as group_module
from kit.outbox import sqlite as sqlite_backend
from kit.outbox.migrations import Migration, load_migrations
from kit.outbox.protocol import Storage, SupportsExternalTransaction
from kit.outbox.sqlite import SQLiteStorage, sqlite_path_from_url
from kit.outbox.types import ClaimMode, Completion, Dead, NewEntry, State

T = 1_700_000_000.0
LATEST = load_migrations("sqlite")[-1].version
REPO = Path(__file__).resolve().parents[2]
TABLES = {
    "etk_entries",
    "etk_attempts",
    "etk_holds",
    "etk_meta",
    "etk_schema_version",
    "etk_deliveries",
    "etk_journal_events",
    "etk_journal_decisions",
    "etk_feed_checkpoints",
    "etk_feed_leases",
    "etk_journal_aliases",
}


def new(key: str) -> NewEntry:
    return NewEntry(
        key=key,
        payload=f'{{"ref":"{key}"}}',
        event_type="checkout",
        channel_id="chl-1",
        transaction_reference=f"order-{key}",
    )


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    db.close()
    return {r[0] for r in rows}


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    async with SQLiteStorage(tmp_path / "outbox.db") as s:
        yield s


def test_it_is_a_storage_with_external_transactions() -> None:
    s = SQLiteStorage(":memory:")
    assert isinstance(s, Storage)
    assert isinstance(s, SupportsExternalTransaction)


# -- targets and URLs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///outbox.db", "outbox.db"),
        ("sqlite:///data/outbox.db", "data/outbox.db"),
        ("sqlite:////var/lib/kit/outbox.db", "/var/lib/kit/outbox.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_path_from_url(url: str, path: str) -> None:
    assert sqlite_path_from_url(url) == path
    storage = SQLiteStorage(url)
    assert storage.path == path
    assert sqlite_path_from_url(storage.url) == path  # the url round-trips


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://user:secret@db/app",
        "sqlite:relative.db",
        "sqlite://host/outbox.db",
        "sqlite:///",
        "sqlite:///outbox.db?mode=ro",
        "outbox.db",
    ],
)
def test_sqlite_path_from_url_refuses_other_forms(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        sqlite_path_from_url(url)
    assert "secret" not in str(info.value)


def test_targets_and_options(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "outbox.db"
    by_path = SQLiteStorage(missing)  # the constructor does no I/O
    assert by_path.path == str(missing)
    assert by_path.url == f"sqlite:///{missing}"
    assert not missing.parent.exists()
    assert SQLiteStorage("plain.db").url == "sqlite:///plain.db"
    assert SQLiteStorage(":memory:").is_memory
    with pytest.raises(ConfigError, match="durability"):
        SQLiteStorage(":memory:", durability="paranoid")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="busy_timeout"):
        SQLiteStorage(":memory:", busy_timeout=-1)
    with pytest.raises(ConfigError):
        SQLiteStorage("")


# -- pragmas --------------------------------------------------------------------------------


async def pragma(storage: SQLiteStorage, name: str) -> object:
    conn = storage._worker  # the storage's own connection: pragmas are per connection
    assert conn is not None
    rows = list(await conn.execute_fetchall(f"PRAGMA {name}"))
    return rows[0][0]


@pytest.mark.parametrize(("durability", "level"), [("normal", 1), ("full", 2)])
async def test_file_databases_use_wal(tmp_path: Path, durability: str, level: int) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStorage(path, durability=durability, busy_timeout=2.5) as s:  # type: ignore[arg-type]
        assert await pragma(s, "journal_mode") == "wal"
        assert await pragma(s, "synchronous") == level
        assert await pragma(s, "foreign_keys") == 1
        assert await pragma(s, "busy_timeout") == 2500
    with sqlite3.connect(path) as other:  # WAL is a property of the file
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    other.close()


def hold_write_lock(path: Path) -> sqlite3.Connection:
    """A rollback-mode file whose write lock another connection holds: the moment, when several
    processes open a new outbox together, at which SQLite refuses a journal-mode switch at once."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE app_table (x)")
    holder.execute("BEGIN IMMEDIATE")
    return holder


async def test_opening_waits_out_a_writer_before_switching_to_wal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "outbox.db"
    holder = hold_write_lock(path)
    retried = asyncio.Event()

    class ReleaseOnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if getattr(record, "action", None) == "outbox.open.wal_busy" and not retried.is_set():
                retried.set()
                holder.execute("COMMIT")

    handler = ReleaseOnRetry()
    backend_logger = logging.getLogger("kit.outbox.sqlite")
    backend_logger.addHandler(handler)
    old_level = backend_logger.level
    backend_logger.setLevel(logging.DEBUG)
    try:
        async with SQLiteStorage(path, busy_timeout=30) as s:
            assert retried.is_set()  # it was refused once, and waited instead of failing
            assert await pragma(s, "journal_mode") == "wal"
    finally:
        backend_logger.removeHandler(handler)
        backend_logger.setLevel(old_level)
        holder.close()


async def test_opening_gives_up_on_a_writer_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    holder = hold_write_lock(path)
    try:
        with pytest.raises(StorageUnavailableError, match=r"outbox\.db.*locked"):
            async with SQLiteStorage(path, busy_timeout=0.05):
                pass
    finally:
        holder.close()
    with sqlite3.connect(path) as db:  # nothing was half-done to the application's file
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()


async def test_in_memory_database() -> None:
    async with SQLiteStorage("sqlite://") as s:
        assert await pragma(s, "journal_mode") == "memory"
        await s.enqueue([new("a")], now=T)
        assert [e.key for e in await s.entries()] == ["a"]


# -- lifecycle ------------------------------------------------------------------------------


async def test_lifecycle(tmp_path: Path) -> None:
    s = SQLiteStorage(tmp_path / "outbox.db")
    with pytest.raises(StorageError, match="not open"):
        await s.get("a")
    await s.open()
    await s.open()  # idempotent
    await s.enqueue([new("a")], now=T)
    await s.aclose()
    await s.aclose()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await s.get("a")
    with pytest.raises(StorageError, match="closed"):
        await s.open()
    async with SQLiteStorage(tmp_path / "outbox.db") as again:
        assert (await again.get("a")) is not None


async def test_a_cancelled_transaction_leaves_the_connection_clean(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStorage(path, busy_timeout=30) as s:
        await s.enqueue([new("a")], now=T)
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # the claim below waits for this lock
            task = asyncio.create_task(s.claim(owner="w", limit=5, lease_seconds=30, now=T))
            while not s._lock.locked():  # once it holds the lock, its BEGIN is queued
                await asyncio.sleep(0)
            task.cancel()
            blocker.execute("ROLLBACK")  # now that BEGIN can run on the worker thread
        finally:
            blocker.close()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The cancelled claim's BEGIN ran after the lock was freed: it must have been rolled
        # back, or this next transaction could not begin.
        await s.enqueue([new("b")], now=T)
        claimed = await s.claim(owner="w", limit=5, lease_seconds=30, now=T)
        assert [c.key for c in claimed] == ["a", "b"]
        assert [c.attempt for c in claimed] == [1, 1]


# -- error translation ----------------------------------------------------------------------


async def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailableError) as info:
        await SQLiteStorage(tmp_path).open()
    assert str(tmp_path) in str(info.value)
    assert isinstance(info.value.__cause__, sqlite3.Error)


async def test_a_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "outbox.db"
    with pytest.raises(StorageUnavailableError, match="missing") as info:
        await SQLiteStorage(path).open()
    assert isinstance(info.value.__cause__, sqlite3.Error)
    assert not path.parent.exists()


async def test_a_corrupted_file(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a SQLite database, just some bytes\n" * 200)
    storage = SQLiteStorage(path)
    with pytest.raises(StorageUnavailableError, match="not a database") as info:
        await storage.open()
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    # a failed open leaves nothing behind and may be retried once the file is fixed
    path.unlink()
    await storage.open()
    await storage.aclose()


async def test_statement_errors_name_the_operation_and_database(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStorage(path, busy_timeout=0) as s:
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StorageError) as info:
                await s.enqueue([new("a")], now=T)
        finally:
            blocker.close()
        # Locked is "unavailable right now": callers (the flusher's writer) wait it out.
        assert type(info.value) is StorageUnavailableError
        assert "enqueue" in str(info.value)
        assert str(path) in str(info.value)
        assert "locked" in str(info.value)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        await s.enqueue([new("a")], now=T)  # the lock is gone: fine again


async def test_a_text_sqlite_cannot_encode_is_refused_as_a_storage_error(tmp_path: Path) -> None:
    """A result whose error text holds a lone surrogate (half an emoji, as json.loads reads a
    truncated "\\ud83d" in an error body) cannot be written: ``finish`` raises a StorageError
    naming the operation, as for any value the database refuses, and writes nothing of it.
    (The flusher's writer sets such a result aside and records the others.)"""
    async with SQLiteStorage(tmp_path / "outbox.db") as s:
        await s.enqueue([new("a")], now=T)
        (claimed,) = await s.claim(owner="w", limit=1, lease_seconds=30, now=T)
        refused = Completion(claimed.key, claimed.attempt, Dead("rejected by eTrusted: Zo\ud83d"))
        with pytest.raises(StorageError, match="finish") as info:
            await s.finish([refused], now=T + 1)
        assert isinstance(info.value.__cause__, UnicodeEncodeError)
        entry = await s.get("a")
        assert entry is not None
        assert (entry.state, entry.attempt) == (State.SENDING, claimed.attempt)


async def test_unmigrated_database_asks_for_migrate(tmp_path: Path) -> None:
    bare = SQLiteStorage(tmp_path / "bare.db")
    await bare.open(migrate=False)
    try:
        assert await bare.schema_version() == 0
        with pytest.raises(MigrationError, match=r"storage\.open\(\)"):
            await bare.enqueue([new("a")], now=T)
        assert await bare.migrate() == LATEST
        await bare.enqueue([new("a")], now=T)
    finally:
        await bare.aclose()


# -- migrations -----------------------------------------------------------------------------


def test_migration_files_load_in_order() -> None:
    migrations = load_migrations("sqlite")
    assert [(m.version, m.name) for m in migrations] == [
        (1, "initial"),
        (2, "outbox_meta"),
        (3, "journal"),
        (4, "journal_reference"),
        (5, "feeds"),
        (6, "feed_leases"),
        (7, "journal_aliases"),
    ]
    assert "CREATE TABLE etk_entries" in migrations[0].sql
    with pytest.raises(MigrationError):
        load_migrations("oracle")
    with pytest.raises(MigrationError):
        load_migrations("../sqlite")


async def test_migrate_from_empty_and_again(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStorage(path) as s:
        assert await s.schema_version() == LATEST
        assert await s.migrate() == LATEST  # idempotent
        assert await s.migrate() == LATEST
    assert tables(path) >= TABLES
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version, name FROM etk_schema_version").fetchall() == [
            (1, "initial"),
            (2, "outbox_meta"),
            (3, "journal"),
            (4, "journal_reference"),
            (5, "feeds"),
            (6, "feed_leases"),
            (7, "journal_aliases"),
        ]
    db.close()


async def test_outbox_tables_live_beside_the_applications_own(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, total REAL)")
        db.execute("INSERT INTO orders (total) VALUES (9.5)")
    db.close()
    async with SQLiteStorage(path):
        pass
    assert tables(path) == TABLES | {"orders"}


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStorage(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO etk_schema_version VALUES (?, 'from_the_future', 0)", (LATEST + 1,))
    db.close()
    for migrate in (True, False):
        with pytest.raises(MigrationError, match="newer") as info:
            await SQLiteStorage(path).open(migrate=migrate)
        assert f"version {LATEST + 1}" in str(info.value)


async def test_a_failing_migration_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outbox.db"
    async with SQLiteStorage(path):
        pass
    broken = Migration(
        LATEST + 1, "broken", "CREATE TABLE etk_new (x INTEGER);\nCREATE TABLE oops (;\n"
    )
    monkeypatch.setattr(
        sqlite_backend, "load_migrations", lambda backend: [*load_migrations(backend), broken]
    )
    with pytest.raises(StorageError, match="migrate"):
        await SQLiteStorage(path).open()
    assert "etk_new" not in tables(path)  # one transaction: all or nothing
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT max(version) FROM etk_schema_version").fetchone() == (LATEST,)
    db.close()


# -- several processes ----------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from kit.outbox.sqlite import SQLiteStorage

    async def main(path, job, owner):
        storage = SQLiteStorage(path, busy_timeout=30)
        print("ready", flush=True)
        sys.stdin.readline()  # the parent starts every process at once
        async with storage:
            got = []
            while job == "claim":
                claimed = await storage.claim(owner=owner, limit=3, lease_seconds=3600, now=2e9)
                if not claimed:
                    break
                got.extend([c.key, c.attempt] for c in claimed)
            print(json.dumps({"version": await storage.schema_version(), "claimed": got}))

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def run_children(path: Path, job: str, count: int) -> list[dict[str, object]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            str(path),
            job,
            f"proc-{i}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        for i in range(count)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
            assert line == b"ready\n", line
        outputs = await asyncio.wait_for(
            asyncio.gather(*(child.communicate(b"go\n") for child in children)), timeout=120
        )
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    results = []
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()
        results.append(json.loads(out))
    return results


async def test_processes_migrating_at_once(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    results = await run_children(path, "migrate", 3)
    assert [r["version"] for r in results] == [LATEST] * 3
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM etk_schema_version").fetchone() == (LATEST,)
    db.close()


async def test_processes_never_claim_the_same_entry(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    keys = [f"k{i:04d}" for i in range(600)]
    async with SQLiteStorage(path) as s:
        for start in range(0, len(keys), 100):
            await s.enqueue([new(k) for k in keys[start : start + 100]], now=T)
        results = await run_children(path, "claim", 3)
        claimed = [(k, a) for r in results for k, a in r["claimed"]]  # type: ignore[attr-defined]
        assert sorted(k for k, _ in claimed) == keys  # each exactly once
        assert {a for _, a in claimed} == {1}
        leases = {e.lease_owner for e in await s.entries(state=State.SENDING, limit=1000)}
        assert leases <= {"proc-0", "proc-1", "proc-2"}
        assert (await s.stats()).counts[State.SENDING] == len(keys)


# -- the query plan -------------------------------------------------------------------------


async def plan(storage: SQLiteStorage, sql: str, params: Any) -> list[str]:
    conn = storage._worker
    assert conn is not None
    rows = await conn.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", params)
    return [str(r[3]) for r in rows]


async def test_claim_and_purge_use_indexes(storage: SQLiteStorage) -> None:
    # some rows in every state, so the planner has something to choose between
    await storage.enqueue([new(f"k{i}") for i in range(50)], now=T)
    await storage.claim(owner="w", limit=20, lease_seconds=30, now=T)
    claim_plan = await plan(
        storage,
        sqlite_backend._CLAIM,
        {"now": T, "limit": 10, "owner": "w", "expires": T + 30},
    )
    searches = [line for line in claim_plan if "etk_entries" in line]
    assert any("INDEX etk_entries_due (state=? AND due_at<?)" in ln for ln in searches)
    assert any("INDEX etk_entries_lease (lease_expires_at<?)" in ln for ln in searches)
    assert not [ln for ln in claim_plan if ln.startswith("SCAN etk_entries")], claim_plan

    purge_plan = await plan(storage, sqlite_backend._PURGE, (T,))
    assert any("INDEX etk_entries_purgeable" in ln for ln in purge_plan), purge_plan
    assert not [ln for ln in purge_plan if ln.startswith("SCAN etk_entries")]


# -- enqueue inside the application's transaction ------------------------------------------


async def test_enqueue_in_follows_the_callers_transaction(
    storage: SQLiteStorage, tmp_path: Path
) -> None:
    path = tmp_path / "outbox.db"
    async with aiosqlite.connect(path) as app:  # Python's default: implicit transactions
        await app.execute("CREATE TABLE orders (id TEXT PRIMARY KEY)")
        await app.commit()

        await app.execute("INSERT INTO orders VALUES ('o-1')")
        results = await storage.enqueue_in(app, [new("o-1"), new("o-1")], now=T)
        assert [r.duplicate for r in results] == [False, True]
        await app.rollback()
        assert await storage.get("o-1") is None
        assert list(await app.execute_fetchall("SELECT * FROM orders")) == []

        await app.execute("INSERT INTO orders VALUES ('o-2')")
        await storage.enqueue_in(app, [new("o-2")], now=T)
        assert await storage.get("o-2") is None  # not visible before the caller commits
        await app.commit()
    claimed = await storage.claim(owner="w", limit=5, lease_seconds=30, now=T)
    assert [(c.key, c.mode) for c in claimed] == [("o-2", ClaimMode.SEND)]


async def test_enqueue_in_with_an_explicit_begin(storage: SQLiteStorage, tmp_path: Path) -> None:
    await storage.enqueue([new("known")], now=T)
    async with aiosqlite.connect(tmp_path / "outbox.db", isolation_level=None) as app:
        with pytest.raises(OutboxError, match="transaction"):
            await storage.enqueue_in(app, [new("x")], now=T)  # autocommit, no BEGIN
        await app.execute("BEGIN")
        results = await storage.enqueue_in(app, [new("known"), new("a"), new("b")], now=T)
        assert [r.duplicate for r in results] == [True, False, False]
        await app.execute("COMMIT")
    assert [e.key for e in await storage.entries()] == ["known", "a", "b"]
    with pytest.raises(OutboxError, match="aiosqlite"):
        await storage.enqueue_in(object(), [new("x")], now=T)


async def test_enqueue_in_needs_the_outbox_tables(tmp_path: Path) -> None:
    """The error says how to create them, with public API that docs/outbox.md describes."""
    storage = SQLiteStorage(tmp_path / "app.db")  # never opened: enqueue_in does not need it
    async with aiosqlite.connect(tmp_path / "app.db") as app:
        with pytest.raises(MigrationError, match=r"Outbox\.from_url\(url\)") as info:
            await storage.enqueue_in(app, [new("a")], now=T)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    docs = (Path(__file__).parents[2] / "docs" / "outbox.md").read_text(encoding="utf-8")
    assert "`Outbox.from_url(url" in docs
    assert "`open()` (or `async with`) connects and creates or upgrades the tables" in docs


async def test_enqueue_in_refuses_a_connection_to_another_database_file(tmp_path: Path) -> None:
    """A connection to another file (even one with the outbox tables) or to an in-memory
    database is refused: no flusher of this outbox would ever see its entries. The same file
    under another spelling (relative, through a symlink) is the same outbox."""
    async with (
        SQLiteStorage(tmp_path / "outbox.db") as storage,
        SQLiteStorage(tmp_path / "other.db"),
    ):
        for target in (tmp_path / "other.db", ":memory:"):
            async with aiosqlite.connect(target) as app:
                await app.execute("BEGIN")
                with pytest.raises(OutboxError, match=r"outbox\.db"):
                    await storage.enqueue_in(app, [new("a")], now=T)
        (tmp_path / "link.db").symlink_to(tmp_path / "outbox.db")
        async with aiosqlite.connect(tmp_path / "link.db") as app:
            await app.execute("BEGIN")
            assert not (await storage.enqueue_in(app, [new("a")], now=T))[0].duplicate
            await app.commit()
        assert await storage.get("a") is not None
        assert [e.key for e in await storage.entries()] == ["a"]


async def test_an_in_memory_outbox_refuses_enqueue_in(tmp_path: Path) -> None:
    async with SQLiteStorage(":memory:") as storage, aiosqlite.connect(":memory:") as app:
        await app.execute("BEGIN")
        with pytest.raises(OutboxError, match="in-memory outbox"):
            await storage.enqueue_in(app, [new("a")], now=T)


@pytest.mark.parametrize(("slipped", "expected"), [("other", [True, False, False]), ("a", None)])
async def test_enqueue_in_when_another_writer_slips_in_before_the_insert(
    storage: SQLiteStorage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slipped: str,
    expected: list[bool] | None,
) -> None:
    # With implicit transactions the caller's BEGIN comes with our INSERT, so another writer
    # can commit between our first statement and it. An unrelated key does not confuse the
    # duplicate report; one of our own keys makes it refuse rather than guess.
    await storage.enqueue([new("known")], now=T)
    async with aiosqlite.connect(tmp_path / "outbox.db") as app:
        executemany = app.executemany

        async def racing(sql: str, rows: Any) -> Any:
            await storage.enqueue([new(slipped)], now=T)
            return await executemany(sql, rows)

        monkeypatch.setattr(app, "executemany", racing)
        batch = [new("known"), new("a"), new("b")]
        if expected is None:
            with pytest.raises(OutboxError, match="could not tell"):
                await storage.enqueue_in(app, batch, now=T)
            return
        results = await storage.enqueue_in(app, batch, now=T)
        assert [r.duplicate for r in results] == expected
        await app.commit()
    assert {e.key for e in await storage.entries()} == {"known", "other", "a", "b"}


# -- group commit ---------------------------------------------------------------------------


async def test_operations_queued_together_share_one_transaction(tmp_path: Path) -> None:
    async with SQLiteStorage(tmp_path / "outbox.db") as s:
        await s.enqueue([new("a"), new("b")], now=T)
        seen: list[int] = []

        def count_groups(db: sqlite3.Connection, ops: list[Any]) -> None:
            seen.append(len(ops))
            real_run_group(db, ops)

        real_run_group = group_module.run_group
        group_module.run_group = count_groups
        try:
            first, second, holds = await asyncio.gather(
                s.claim(owner="w", limit=1, lease_seconds=30, now=T),
                s.claim(owner="w", limit=1, lease_seconds=30, now=T),
                s.holds(now=T),
            )
        finally:
            group_module.run_group = real_run_group
        assert seen == [3]
        assert sorted(c.key for c in first + second) == ["a", "b"]
        assert holds == []


async def test_a_failing_operation_fails_alone(tmp_path: Path) -> None:
    async with SQLiteStorage(tmp_path / "outbox.db") as s:
        await s.enqueue([new("a")], now=T)

        def broken(db: sqlite3.Connection) -> None:
            db.execute("INSERT INTO etk_holds (name, until, reason) VALUES ('x', 1, 'y')")
            db.execute("INSERT INTO no_such_table VALUES (1)")

        claimed, failed = await asyncio.gather(
            s.claim(owner="w", limit=5, lease_seconds=30, now=T),
            s._grouped("broken", broken),
            return_exceptions=True,
        )
        assert isinstance(failed, StorageError)
        assert [c.key for c in claimed] == ["a"]  # type: ignore[union-attr]
        entry = await s.get("a")
        assert entry is not None
        assert entry.state is State.SENDING
        assert entry.attempt == 1
        assert await s.holds(now=0) == []  # the failed operation left nothing behind


async def test_a_lone_failure_reaches_its_caller_and_nobody_else(tmp_path: Path) -> None:
    """An operation that fails alone raises in its caller and is reported nowhere else: the
    event loop is never told of an error nobody retrieved (which strict test runs and error
    monitoring would report as a second failure)."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:
        async with SQLiteStorage(tmp_path / "outbox.db") as s:

            def broken(db: sqlite3.Connection) -> None:
                db.execute("INSERT INTO no_such_table VALUES (1)")

            with pytest.raises(StorageError):
                await s._grouped("broken", broken)
        gc.collect()  # an unretrieved future reports itself when it is collected
    finally:
        loop.set_exception_handler(None)
    assert reported == []


async def test_a_failure_whose_caller_left_is_not_handed_to_another(tmp_path: Path) -> None:
    # A fails while its caller is being cancelled; B, a valid claim in the same group, must run
    # again alone and succeed, not receive A's error with its own write rolled back.
    async with SQLiteStorage(tmp_path / "outbox.db") as s:
        await s.enqueue([new("a")], now=T)
        loop = asyncio.get_running_loop()
        gone = threading.Event()

        def failing(db: sqlite3.Connection) -> None:
            loop.call_soon_threadsafe(first.cancel)
            assert gone.wait(10), "the cancelled caller never finished"
            raise sqlite3.IntegrityError("A's own failure")

        first = asyncio.ensure_future(s._grouped("failing", failing))
        first.add_done_callback(lambda _: gone.set())
        second = asyncio.ensure_future(s.claim(owner="w", limit=5, lease_seconds=30, now=T))
        a, b = await asyncio.gather(first, second, return_exceptions=True)
        assert isinstance(a, asyncio.CancelledError)
        assert [c.key for c in b] == ["a"]  # type: ignore[union-attr]
        entry = await s.get("a")
        assert entry is not None
        assert entry.state is State.SENDING


async def test_a_claim_cancelled_after_it_ran_gives_its_entries_back(tmp_path: Path) -> None:
    async with SQLiteStorage(tmp_path / "outbox.db") as s:
        await s.enqueue([new("a")], now=T)
        inside, gate = threading.Event(), threading.Event()

        def blocker(db: sqlite3.Connection) -> None:
            inside.set()
            gate.wait(10)

        # The claim and the blocker share one transaction; the claim has run when the blocker
        # starts, and its caller is cancelled before the transaction ends.
        claim = asyncio.create_task(s.claim(owner="w", limit=5, lease_seconds=30, now=T))
        block = asyncio.create_task(s._grouped("block", blocker))
        assert await asyncio.to_thread(inside.wait, 10)
        claim.cancel()
        gate.set()
        await block
        with pytest.raises(asyncio.CancelledError):
            await claim
        await asyncio.gather(*s._handing_back)
        entry = await s.get("a")
        assert entry is not None
        assert entry.state is State.PENDING
        assert entry.attempt == 1
        assert entry.lease_owner is None


async def test_a_new_outbox_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds customer names and e-mail addresses; the -wal and -shm files follow its mode."""
    path = tmp_path / "outbox.db"
    previous = os.umask(0o022)  # the usual default, under which files are world-readable
    try:
        async with SQLiteStorage(str(path)) as storage:
            await storage.enqueue([new("k1")], now=1.0)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    finally:
        os.umask(previous)
    assert modes == {"outbox.db": 0o600, "outbox.db-wal": 0o600, "outbox.db-shm": 0o600}


async def test_an_existing_database_file_keeps_its_mode(tmp_path: Path) -> None:
    """An application's own database (transactional enqueue) is not ours to re-permission."""
    path = tmp_path / "app.db"
    sqlite3.connect(path).close()
    path.chmod(0o640)
    async with SQLiteStorage(str(path)):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


# -- forgetting a customer --------------------------------------------------------------------


EMAIL = "zelda.forget-me@lovelace-family.example"
NAME = "Zeldafirstname"


def files_holding(path: Path, needle: bytes) -> list[str]:
    """The database files (main, -wal, -shm, -journal) whose bytes contain ``needle``."""
    return sorted(Path(f).name for f in glob.glob(f"{path}*") if needle in Path(f).read_bytes())


async def test_forgotten_customer_data_leaves_the_sqlite_files_while_a_flusher_runs(
    tmp_path: Path,
) -> None:
    """Once ``forget_customer()`` returns, the customer's e-mail and name are gone from the
    database file and its -wal file, also while another process (the flusher daemon) keeps
    the outbox open."""
    path = tmp_path / "outbox.db"
    async with Outbox.from_url(str(path)) as app:
        await app.enqueue_many(
            [event(f"o-{n}", email=f"other{n}@example.org", first_name="Other") for n in range(5)]
        )
        await app.enqueue(event("o-zelda", email=EMAIL, first_name=NAME))
    flusher = SQLiteStorage(path)  # the daemon: it has the file open the whole time
    await flusher.open()
    try:
        # The operator runs `etrusted-kit forget` (its own process and connection).
        async with Outbox.from_url(str(path)) as operator:
            result = await operator.forget_customer(EMAIL)
            assert result.purged == 1
            entry = (await operator.entries())[-1]
            assert entry.payload is None
            assert entry.email_hash is None
        assert files_holding(path, EMAIL.encode()) == []
        assert files_holding(path, NAME.encode()) == []
    finally:
        await flusher.aclose()


async def test_forget_does_not_stall_the_storage_for_the_busy_timeout_behind_a_reader(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Forgetting a customer while another connection holds an open read (a backup, a ``sqlite3``
    shell, a report) returns at once and leaves the storage usable: the WAL scrub is deferred
    and logged, not waited out for the whole ``busy_timeout`` while claims and enqueues queue
    behind it. With a busy timeout of ten minutes, a wait of 30 s tells the difference."""

    path = str(tmp_path / "o.db")
    storage = SQLiteStorage(path, busy_timeout=600.0)  # waited out, it would hang the test
    async with Outbox(storage) as outbox:
        await outbox.enqueue(order(1))
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM etk_entries").fetchall()  # a read snapshot
            await outbox.enqueue(order(2))  # the snapshot is no longer the newest
            forget = storage.forget_customer(email_hash("buyer1@example.com"), now=T0)
            result = await asyncio.wait_for(forget, 30)
            # The storage is usable at once, with its own busy timeout back in force.
            await outbox.enqueue(order(3))
        finally:
            reader.close()
    assert result.purged == 1
    assert any(getattr(r, "action", None) == "outbox.scrub_deferred" for r in caplog.records)


# -- unstorable text ----------------------------------------------------------------------


async def test_enqueue_many_refuses_a_call_with_an_unstorable_event_and_stores_nothing(
    tmp_path: Path,
) -> None:
    """An event with a lone surrogate (half an emoji, which json.loads accepts from a webhook
    body as "\\ud83d") makes ``enqueue_many`` raise the documented ValidationError and store
    nothing of the call, not even the batches before it."""

    broken = json.loads(json.dumps(event("o-broken", first_name=NAME)).replace(NAME, "Zo\\ud83d"))
    good = [event(f"o-{n}", email=f"c{n}@example.org") for n in range(4)]
    async with Outbox.from_url(str(tmp_path / "outbox.db")) as outbox:
        raised: BaseException | None = None
        try:
            await outbox.enqueue_many([*good, broken], batch_size=2)
        except Exception as exc:  # which error it is, is the point
            raised = exc
        stored = (await outbox.stats()).counts[State.PENDING]
    detail = f"raised {raised!r}; {stored} of the call's events were stored"
    assert isinstance(raised, ValidationError), detail
    assert stored == 0, detail
