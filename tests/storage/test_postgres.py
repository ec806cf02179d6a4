"""What only the PostgreSQL backend does: SKIP LOCKED claims across processes, LISTEN/NOTIFY,
transactional enqueue, advisory-locked migrations, error translation and index-backed claims.

The storage rules shared by every backend are in ``tests/contract``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import attrs
import pytest

import kit.outbox._pg_base as pg_base
import kit.outbox._pg_enqueue as pg_enqueue
from kit.errors import (
    ConfigError,
    MigrationError,
    OutboxError,
    StorageError,
    StorageUnavailableError,
)
from kit.outbox._pg_lane import RETRY_AFTER, Lane
from kit.outbox.migrations import load_migrations
from kit.outbox.postgres import PostgresStorage
from kit.outbox.protocol import Storage, SupportsExternalTransaction, SupportsListen
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    ClaimMode,
    Completion,
    Delivered,
    Hold,
    NewEntry,
    Release,
    Retry,
    State,
)

pytestmark = pytest.mark.postgres

WAIT = 10.0  # generous upper bound for things that do happen; never reached when passing


def new(i: int | str, **kw: Any) -> NewEntry:
    return NewEntry(
        key=f"k-{i}",
        payload=json.dumps({"type": "order_shipped", "n": str(i)}),
        event_type="order_shipped",
        channel_id="chl-1",
        transaction_reference=f"order-{i}",
        **kw,
    )


@pytest.fixture
async def storage(pg_dsn: str, pg_schema: str) -> AsyncIterator[PostgresStorage]:
    async with PostgresStorage(pg_dsn, schema=pg_schema, max_size=4) as s:
        yield s


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    c = await asyncpg.connect(pg_dsn)
    yield c
    await c.close()


@pytest.fixture
async def other_schema(pg_dsn: str) -> AsyncIterator[str]:
    name = "etk_test_other_" + "".join(random.choices("abcdef0123456789", k=10))
    yield name
    c = await asyncpg.connect(pg_dsn)
    try:
        await c.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await c.close()


class RawListener:
    """A plain asyncpg LISTEN, to see exactly which notifications were sent and in what order."""

    def __init__(self) -> None:
        self.payloads: asyncio.Queue[str] = asyncio.Queue()

    def __call__(self, _c: object, _pid: int, _channel: str, payload: str) -> None:
        self.payloads.put_nowait(payload)

    async def next(self) -> str:
        return await asyncio.wait_for(self.payloads.get(), WAIT)


async def wait_until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():
            await asyncio.sleep(0.01)


# -- shape ------------------------------------------------------------------------------------


def test_implements_the_protocols(pg_dsn: str) -> None:
    s = PostgresStorage(pg_dsn)
    assert isinstance(s, Storage)
    assert isinstance(s, SupportsListen)
    assert isinstance(s, SupportsExternalTransaction)


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_url_hides_the_password(scheme: str) -> None:
    s = PostgresStorage(f"{scheme}://app:s3cret@db.example:5433/shop?password=s3cret&sslmode=off")
    assert s.url == f"{scheme}://app@db.example:5433/shop?sslmode=off"
    assert "s3cret" not in repr(s)


@pytest.mark.parametrize(
    ("dsn", "schema"),
    [
        ("mysql://x/y", "etrusted_kit"),
        ("postgresql://x/y", 'bad"; DROP SCHEMA public; --'),
        ("postgresql://x/y", "1starts_with_digit"),
        ("postgresql://x/y", "x" * 59),
    ],
)
def test_rejects_bad_config(dsn: str, schema: str) -> None:
    with pytest.raises(ConfigError):
        PostgresStorage(dsn, schema=schema)


def test_missing_asyncpg_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_base, "_asyncpg", None)
    with pytest.raises(ConfigError, match=r"pip install 'etrusted-kit\[postgres\]'"):
        PostgresStorage("postgresql://localhost/test")


def test_module_imports_without_asyncpg() -> None:
    code = (
        "import sys; sys.modules['asyncpg'] = None\n"
        "from kit.errors import ConfigError\n"
        "from kit.outbox.postgres import PostgresStorage\n"
        "try:\n"
        "    PostgresStorage('postgresql://localhost/test')\n"
        "except ConfigError as exc:\n"
        "    print('ConfigError:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert "ConfigError:" in out.stdout
    assert "etrusted-kit[postgres]" in out.stdout


# -- errors -----------------------------------------------------------------------------------


async def test_unreachable_server_is_unavailable() -> None:
    s = PostgresStorage("postgresql://app:s3cret@127.0.0.1:1/test", command_timeout=5)
    with pytest.raises(StorageUnavailableError) as info:
        await s.open()
    message = str(info.value)
    assert "connect" in message
    assert "postgresql://app@127.0.0.1:1/test" in message
    assert "s3cret" not in message
    assert isinstance(info.value.__cause__, OSError)
    await s.aclose()


async def test_lock_wait_timeout_is_unavailable(
    pg_dsn: str, pg_schema: str, conn: asyncpg.Connection[Any]
) -> None:
    async with PostgresStorage(pg_dsn, schema=pg_schema, command_timeout=0.5) as s:
        await s.enqueue([new(1)], now=1.0)
        async with conn.transaction():
            await conn.execute(f'SELECT 1 FROM "{pg_schema}".entries FOR UPDATE')
            with pytest.raises(StorageUnavailableError, match="cancel"):
                await s.cancel("k-1", now=2.0)
        assert await s.cancel("k-1", now=3.0) is True


@pytest.mark.parametrize("own_pool", [True, False], ids=["own pool", "application pool"])
@pytest.mark.parametrize("call", ["stats", "purge"], ids=["one statement", "transaction"])
async def test_a_connection_ended_mid_statement_is_unavailable(
    call: str, own_pool: bool, pg_dsn: str, pg_schema: str, conn: asyncpg.Connection[Any]
) -> None:
    """A backend the server ends while a call waits on it (pg_terminate_backend, a restart) is
    a passing outage, whatever asyncpg's cleanup of the dead connection (leaving the
    transaction, handing the connection back) says after it: the writer of a flusher waits
    it out rather than splitting and abandoning its results as refused. The next call works."""
    pool = None if own_pool else await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        async with PostgresStorage(pg_dsn, schema=pg_schema, pool=pool) as s:
            await s.enqueue([new(1)], now=1.0)
            run: Callable[[], Any] = {
                "stats": s.stats,
                "purge": lambda: s.purge(before=0.0, now=2.0),
            }[call]
            async with conn.transaction():
                await conn.execute(f'LOCK TABLE "{pg_schema}".entries IN ACCESS EXCLUSIVE MODE')
                waiting = asyncio.create_task(run())
                blocked: list[int] = []

                async def find_blocked() -> None:
                    blocked[:] = [
                        r["pid"]
                        for r in await conn.fetch(
                            "SELECT pid FROM pg_stat_activity"
                            " WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                        )
                    ]

                async with asyncio.timeout(WAIT):
                    while not blocked:
                        await find_blocked()
                (pid,) = blocked
                assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
                with pytest.raises(StorageUnavailableError) as info:
                    await waiting
            assert "terminat" in str(info.value)
            await run()
    finally:
        if pool is not None:
            await pool.close()


async def test_a_read_only_server_is_unavailable(pg_dsn: str, pg_schema: str) -> None:
    """A server that takes no writes (a primary demoted to standby while a failover turns its
    DNS) is a passing outage, as a read-only SQLite file is: a flusher waits it out instead of
    stopping as if its setup were broken."""
    async with PostgresStorage(pg_dsn, schema=pg_schema) as s:
        await s.enqueue([new(1)], now=1.0)
    pool = await asyncpg.create_pool(
        pg_dsn, min_size=1, max_size=2, server_settings={"default_transaction_read_only": "on"}
    )
    read_only = PostgresStorage(pg_dsn, schema=pg_schema, pool=pool)
    try:
        await read_only.open(migrate=False)
        with pytest.raises(StorageUnavailableError, match="read-only"):
            await read_only.claim_with_holds(owner="o", limit=1, lease_seconds=10, now=2.0)
        with pytest.raises(StorageUnavailableError, match="read-only"):
            await read_only.enqueue([new(2)], now=2.0)
    finally:
        await read_only.aclose()
        await pool.close()


async def test_query_errors_are_storage_errors(
    storage: PostgresStorage, conn: asyncpg.Connection[Any], pg_schema: str
) -> None:
    await conn.execute(f'DROP TABLE "{pg_schema}".holds')
    with pytest.raises(StorageError) as info:
        await storage.holds(now=0.0)
    assert not isinstance(info.value, StorageUnavailableError)
    assert isinstance(info.value.__cause__, asyncpg.PostgresError)


async def test_use_before_open_and_after_close(pg_dsn: str, pg_schema: str) -> None:
    s = PostgresStorage(pg_dsn, schema=pg_schema)
    with pytest.raises(StorageError, match="not open"):
        await s.get("k")
    await s.open()
    await s.open()  # idempotent
    await s.aclose()
    await s.aclose()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await s.get("k")
    with pytest.raises(StorageError, match="closed"):
        await s.open()


async def test_external_pool_is_never_closed(pg_dsn: str, pg_schema: str) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        async with PostgresStorage(pg_dsn, schema=pg_schema, pool=pool) as s:
            await s.enqueue([new(1)], now=1.0)
        assert not pool.is_closing()
        assert await pool.fetchval(f'SELECT count(*) FROM "{pg_schema}".entries') == 1
    finally:
        await pool.close()


# -- migrations -------------------------------------------------------------------------------


async def test_concurrent_migrations_from_many_objects(pg_dsn: str, pg_schema: str) -> None:
    stores = [PostgresStorage(pg_dsn, schema=pg_schema, max_size=1) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open(migrate=False) for s in stores))
        versions = await asyncio.gather(*(s.migrate() for s in stores))
        latest = load_migrations("postgres")[-1].version
        assert versions == [latest] * 3
        assert await stores[0].migrate() == latest
        await stores[1].enqueue([new(1)], now=1.0)
        assert (await stores[2].get("k-1")) is not None
    finally:
        for s in stores:
            await s.aclose()
    c = await asyncpg.connect(pg_dsn)
    try:
        rows = await c.fetch(f'SELECT version, name FROM "{pg_schema}".schema_version')
    finally:
        await c.close()
    assert [(r["version"], r["name"]) for r in rows] == [
        (m.version, m.name) for m in load_migrations("postgres")
    ]


async def test_concurrent_open_of_fresh_schema(pg_dsn: str, pg_schema: str) -> None:
    a = PostgresStorage(pg_dsn, schema=pg_schema, max_size=1)
    b = PostgresStorage(pg_dsn, schema=pg_schema, max_size=1)
    try:
        await asyncio.gather(a.open(), b.open())
        await a.enqueue([new(1)], now=1.0)
        assert [e.key for e in await b.entries()] == ["k-1"]
    finally:
        await a.aclose()
        await b.aclose()


async def test_newer_database_refuses(
    storage: PostgresStorage, pg_dsn: str, pg_schema: str, conn: asyncpg.Connection[Any]
) -> None:
    await conn.execute(
        f"INSERT INTO \"{pg_schema}\".schema_version (version, name) VALUES (99, 'future')"
    )
    for migrate in (True, False):
        s = PostgresStorage(pg_dsn, schema=pg_schema)
        with pytest.raises(MigrationError, match="99"):
            await s.open(migrate=migrate)
        with pytest.raises(StorageError, match="not open"):
            await s.get("k")  # a failed open leaves nothing half-open
        await s.aclose()


# -- schema isolation -------------------------------------------------------------------------


async def test_schemas_are_isolated(
    storage: PostgresStorage, pg_dsn: str, other_schema: str
) -> None:
    async with PostgresStorage(pg_dsn, schema=other_schema) as other:
        assert other.channel != storage.channel
        a = await storage.enqueue([new(1)], now=1.0)
        b = await other.enqueue([new(1), new(2)], now=1.0)
        assert [r.duplicate for r in a + b] == [False, False, False]
        await other.set_hold(Hold(name="pace", until=100.0, reason="429"))
        claimed = await storage.claim(owner="a", limit=10, lease_seconds=30, now=2.0)
        assert [c.key for c in claimed] == ["k-1"]
        assert await storage.holds(now=2.0) == []
        assert (await other.stats()).counts[State.PENDING] == 2
        assert [h.name for h in await other.holds(now=2.0)] == ["pace"]


# -- SKIP LOCKED ------------------------------------------------------------------------------


async def test_racing_claimers_never_overlap(pg_dsn: str, pg_schema: str) -> None:
    """Four storages (four pools, as four processes would have) claim the same outbox at once.

    Claims are left unfinished now and then, so expired leases are raced over too.
    """
    rng = random.Random(7)
    stores = [PostgresStorage(pg_dsn, schema=pg_schema, max_size=2) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        total = 400
        await stores[0].enqueue([new(i) for i in range(total)], now=0.0)
        seen: set[tuple[str, int]] = set()
        last_attempt: dict[str, int] = {}
        delivered: set[str] = set()
        now = 1.0
        for _round in range(500):
            if len(delivered) == total:
                break
            batches = await asyncio.gather(
                *(
                    s.claim(owner=f"w{n}", limit=rng.randint(1, 9), lease_seconds=5.0, now=now)
                    for n, s in enumerate(stores)
                )
            )
            this_round = [(c.key, c.attempt) for batch in batches for c in batch]
            keys = [k for k, _ in this_round]
            assert len(keys) == len(set(keys)), "one entry handed to two claimants"
            for key, attempt in this_round:
                assert (key, attempt) not in seen
                assert attempt > last_attempt.get(key, 0)
                seen.add((key, attempt))
                last_attempt[key] = attempt
            for s, batch in zip(stores, batches, strict=True):
                done = []
                for c in batch:
                    roll = rng.random()
                    if roll < 0.15:
                        continue  # a crashed flusher: the lease expires
                    outcome = Retry(now, "503") if roll < 0.4 else Delivered(f"evt-{c.key}")
                    done.append(Completion(c.key, c.attempt, outcome))
                for c, ok in zip(done, await s.finish(done, now=now), strict=True):
                    assert ok
                    if isinstance(c.outcome, Delivered):
                        delivered.add(c.key)
            now += 2.0  # leases of 5 s expire every few rounds
        assert len(delivered) == total
        assert (await stores[0].stats()).counts[State.DELIVERED] == total
    finally:
        for s in stores:
            await s.aclose()


# -- LISTEN / NOTIFY --------------------------------------------------------------------------


async def test_listen_wakes_after_enqueue_and_coalesces(storage: PostgresStorage) -> None:
    listener = storage.listen()
    try:
        await asyncio.wait_for(anext(listener), WAIT)  # listening now (and told to look)
        await storage.enqueue([new(1)], now=1.0)
        await asyncio.wait_for(anext(listener), WAIT)
        for i in range(2, 5):  # three transactions before the flusher looks again
            await storage.enqueue([new(i)], now=1.0)
        await wait_until(lambda: listener.received == 4)
        await asyncio.wait_for(anext(listener), WAIT)
        # The burst was one wake-up; every notification has been received, so no other can come.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(listener), 0.05)
        # A cancelled wait (a poll timeout) leaves the listener working.
        await storage.enqueue([new(5)], now=1.0)
        await asyncio.wait_for(anext(listener), WAIT)
        assert listener.received == 5
    finally:
        await listener.aclose()


async def test_duplicates_notify_nobody(storage: PostgresStorage, pg_dsn: str) -> None:
    raw = RawListener()
    spy = await asyncpg.connect(pg_dsn)
    await spy.add_listener(storage.channel, raw)
    try:
        await storage.enqueue([new(1)], now=1.0)
        assert await raw.next() == ""
        assert [r.duplicate for r in await storage.enqueue([new(1)], now=2.0)] == [True]
        await spy.execute("SELECT pg_notify($1, 'sentinel')", storage.channel)
        assert await raw.next() == "sentinel"  # notifications arrive in commit order
    finally:
        await spy.close()


async def test_enqueue_in_wakes_listeners_only_after_commit(
    storage: PostgresStorage, pg_dsn: str, conn: asyncpg.Connection[Any]
) -> None:
    spy = await asyncpg.connect(pg_dsn)
    listener = storage.listen()
    try:
        await asyncio.wait_for(anext(listener), WAIT)  # listening
        async with conn.transaction():
            result = await storage.enqueue_in(conn, [new(1), new(1)], now=1.0)
            assert [r.duplicate for r in result] == [False, True]
            assert await storage.get("k-1") is None  # not visible outside the transaction
            # Notifications arrive in commit order: when this one is in, an enqueue
            # notification sent without waiting for the COMMIT would have been in before it.
            await spy.execute("SELECT pg_notify($1, 'sentinel')", storage.channel)
            await asyncio.wait_for(anext(listener), WAIT)
            assert listener.received == 1
        await asyncio.wait_for(anext(listener), WAIT)  # the COMMIT woke it
        assert listener.received == 2
        assert await storage.get("k-1") is not None
    finally:
        await listener.aclose()
        await spy.close()


async def test_enqueue_in_is_invisible_before_commit_and_gone_after_rollback(
    storage: PostgresStorage, pg_dsn: str, conn: asyncpg.Connection[Any]
) -> None:
    raw = RawListener()
    spy = await asyncpg.connect(pg_dsn)
    await spy.add_listener(storage.channel, raw)
    try:
        tx = conn.transaction()
        await tx.start()
        await storage.enqueue_in(conn, [new(1)], now=1.0)
        await spy.execute("SELECT pg_notify($1, 'before-commit')", storage.channel)
        assert await raw.next() == "before-commit"  # nothing from the open transaction
        await tx.commit()
        assert await raw.next() == ""
        assert (await storage.get("k-1")) is not None

        tx = conn.transaction()
        await tx.start()
        await storage.enqueue_in(conn, [new(2)], now=1.0)
        await tx.rollback()
        await spy.execute("SELECT pg_notify($1, 'after-rollback')", storage.channel)
        assert await raw.next() == "after-rollback"  # the rolled-back enqueue sent nothing
        assert await storage.get("k-2") is None
        assert raw.payloads.empty()
    finally:
        await spy.close()


async def test_enqueue_in_needs_an_open_transaction(
    storage: PostgresStorage, conn: asyncpg.Connection[Any]
) -> None:
    with pytest.raises(OutboxError, match="transaction"):
        await storage.enqueue_in(conn, [new(1)], now=1.0)
    assert await storage.get("k-1") is None


async def test_enqueue_in_refuses_a_connection_to_another_database(
    pg_dsn: str, pg_schema: str
) -> None:
    """A connection to another database, even one holding an outbox in the same schema, is
    refused once the storage is open: no flusher of this outbox would see its entries."""
    other_db = f"{pg_schema}_other"
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{other_db}"')
        other_dsn = pg_dsn.rsplit("/", 1)[0] + f"/{other_db}"
        async with (
            PostgresStorage(pg_dsn, schema=pg_schema) as storage,
            PostgresStorage(other_dsn, schema=pg_schema),
        ):
            conn = await asyncpg.connect(other_dsn)
            try:
                for keys in ([1], [1, 2]):
                    async with conn.transaction():
                        with pytest.raises(OutboxError, match=f"database '{other_db}'"):
                            await storage.enqueue_in(conn, [new(k) for k in keys], now=1.0)
            finally:
                await conn.close()
            assert await storage.entries() == []
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{other_db}" WITH (FORCE)')
        await admin.close()


async def test_enqueue_in_names_how_to_create_missing_tables(pg_dsn: str, pg_schema: str) -> None:
    storage = PostgresStorage(pg_dsn, schema=pg_schema)  # never opened: nothing to compare
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with conn.transaction():
            with pytest.raises(MigrationError, match=r"Outbox\.from_url\(url\)"):
                await storage.enqueue_in(conn, [new(1)], now=1.0)
    finally:
        await conn.close()


async def test_enqueue_in_translates_errors(
    storage: PostgresStorage, conn: asyncpg.Connection[Any], pg_schema: str
) -> None:
    await conn.execute(f"ALTER TABLE \"{pg_schema}\".entries ADD CHECK (key <> 'k-bad')")
    with pytest.raises(StorageError, match="enqueue_in"):
        async with conn.transaction():
            await storage.enqueue_in(conn, [new("bad")], now=1.0)


async def test_listener_reconnects_after_termination(
    storage: PostgresStorage, conn: asyncpg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    query = f'LISTEN "{storage.channel}"'
    find = "SELECT pid FROM pg_stat_activity WHERE query = $1 AND application_name = $2"
    listener = storage.listen()
    try:
        await asyncio.wait_for(anext(listener), WAIT)
        first = await conn.fetch(find, query, "etrusted-kit listener")
        assert len(first) == 1
        with caplog.at_level(logging.WARNING, logger="kit.outbox.postgres"):
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", first[0]["pid"])
            await asyncio.wait_for(anext(listener), WAIT)  # reconnected: told to look
        assert listener.connects == 2
        assert any(getattr(r, "action", "") == "outbox.listen.lost" for r in caplog.records)
        second = await conn.fetch(find, query, "etrusted-kit listener")
        assert [r["pid"] for r in second] != [r["pid"] for r in first]
        await storage.enqueue([new(1)], now=1.0)
        await asyncio.wait_for(anext(listener), WAIT)
    finally:
        await listener.aclose()


async def test_broken_listener_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    s = PostgresStorage("postgresql://app:s3cret@127.0.0.1:1/test")
    listener = s.listen()
    with caplog.at_level(logging.WARNING, logger="kit.outbox.postgres"):
        pending = asyncio.ensure_future(anext(listener))
        await wait_until(
            lambda: (
                sum(
                    getattr(r, "action", "") == "outbox.listen.connect_failed"
                    for r in caplog.records
                )
                >= 2
            )
        )
        assert not pending.done()
        await s.aclose()  # closes the listeners it handed out
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, WAIT)
    assert all("s3cret" not in r.getMessage() for r in caplog.records)
    with pytest.raises(StopAsyncIteration):
        await anext(listener)


async def test_aclose_releases_the_listening_connection(
    storage: PostgresStorage, conn: asyncpg.Connection[Any]
) -> None:
    listener = storage.listen()
    await asyncio.wait_for(anext(listener), WAIT)
    find = "SELECT count(*) FROM pg_stat_activity WHERE query = $1"
    assert await conn.fetchval(find, f'LISTEN "{storage.channel}"') == 1
    await listener.aclose()
    await listener.aclose()
    async with asyncio.timeout(WAIT):  # the server drops the backend right after the goodbye
        while await conn.fetchval(find, f'LISTEN "{storage.channel}"'):
            await asyncio.sleep(0.01)


# -- enqueue paths ----------------------------------------------------------------------------

BULK = pg_enqueue._COPY_MIN_ENTRIES  # from this batch size on, enqueue() writes with COPY


def _stored(entries: list[Any]) -> list[tuple[Any, ...]]:
    """What an enqueue stored, without the ids (which differ between two schemas)."""
    return [attrs.astuple(attrs.evolve(e, id=0)) for e in entries]


async def _mixed_batch(s: PostgresStorage) -> list[bool]:
    """A bulk batch with keys stored before, repeated keys and hold-backs; the duplicate flags."""
    await s.enqueue([new(3)], now=1.0)
    await s.enqueue([new(70), new(71)], now=1.0)
    batch = [new(i, send_after=5.0 if i % 3 else None) for i in range(BULK + 20)]
    batch += [new(5), new(3), new(BULK + 50)]
    return [r.duplicate for r in await s.enqueue(batch, now=2.0)]


async def test_bulk_enqueue_stores_what_the_statement_stores(
    storage: PostgresStorage, pg_dsn: str, other_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied = await _mixed_batch(storage)
    expected = [i in (3, 70, 71) for i in range(BULK + 20)] + [True, True, False]
    assert copied == expected
    monkeypatch.setattr(pg_enqueue, "_COPY_MIN_ENTRIES", 10**9)  # the ON CONFLICT statement
    async with PostgresStorage(pg_dsn, schema=other_schema) as other:
        assert await _mixed_batch(other) == expected
        listed = await storage.entries(limit=1000)
        assert _stored(listed) == _stored(await other.entries(limit=1000))
    ids = [e.id for e in listed]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # dense, in input order
    assert [e.key for e in listed][-3:] == [
        "k-" + str(BULK + 18),
        "k-" + str(BULK + 19),
        "k-" + str(BULK + 50),
    ]


async def test_bulk_enqueue_settles_a_race_with_another_enqueue(
    storage: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key stored after the lookup of known keys fails the COPY; ON CONFLICT settles it."""
    await storage.enqueue([new(7)], now=1.0)
    blind = "SELECT '{}'::text[] FROM (SELECT $1::text[]) AS keys"  # sees no stored key
    monkeypatch.setattr(storage._sql, "known_keys", blind)
    results = await storage.enqueue([new(i) for i in range(BULK)], now=2.0)
    assert [r.duplicate for r in results] == [i == 7 for i in range(BULK)]
    assert (await storage.get("k-7")).created_at == 1.0  # type: ignore[union-attr]
    assert (await storage.stats()).counts[State.PENDING] == BULK


async def test_bulk_enqueue_notifies_once_and_duplicates_not_at_all(
    storage: PostgresStorage, pg_dsn: str
) -> None:
    raw = RawListener()
    spy = await asyncpg.connect(pg_dsn)
    await spy.add_listener(storage.channel, raw)
    try:
        await storage.enqueue([new(i) for i in range(BULK * 2)], now=1.0)
        again = await storage.enqueue([new(i) for i in range(BULK)], now=2.0)
        assert all(r.duplicate for r in again)
        await spy.execute("SELECT pg_notify($1, 'sentinel')", storage.channel)
        assert await raw.next() == ""
        assert await raw.next() == "sentinel"
    finally:
        await spy.close()


async def test_concurrent_single_enqueues_of_one_key_store_it_once(
    storage: PostgresStorage,
) -> None:
    results = await asyncio.gather(*(storage.enqueue([new(1)], now=1.0) for _ in range(4)))
    assert sorted(r.duplicate for (r,) in results) == [False, True, True, True]
    assert (await storage.stats()).counts[State.PENDING] == 1


async def _backends(conn: asyncpg.Connection[Any], schema: str, app: str) -> list[int]:
    """Backends named ``app`` whose last statement read or wrote the entries of ``schema``."""
    rows = await conn.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $2 AND strpos(query, $1) > 0"
        " AND pid <> pg_backend_pid()",
        f'"{schema}".entries',
        app,
    )
    return [r["pid"] for r in rows]


async def _lane_pids(conn: asyncpg.Connection[Any], schema: str) -> list[int]:
    return await _backends(conn, schema, "etrusted-kit enqueue")


@pytest.mark.parametrize("path", ["enqueue connection", "pool"])
async def test_calls_recover_from_a_lost_connection(
    path: str, pg_dsn: str, pg_schema: str, conn: asyncpg.Connection[Any]
) -> None:
    app = "etrusted-kit enqueue" if path != "pool" else ""
    async with PostgresStorage(pg_dsn, schema=pg_schema, max_size=1) as s:
        await s.enqueue([new(1)], now=1.0)
        await s.get("k-1")
        (pid,) = await _backends(conn, pg_schema, app)
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
        failures = 0
        for i in (2, 3):
            try:
                if path == "pool":
                    await s.get("k-1")
                else:
                    await s.enqueue([new(i)], now=1.0)
            except StorageUnavailableError:  # asyncpg may notice the loss only by using it
                failures += 1
        assert failures <= 1
        assert await s.get("k-1") is not None
        if path != "pool":
            assert await s.get("k-3") is not None
        assert (await _backends(conn, pg_schema, app)) not in ([], [pid])


async def test_aclose_closes_the_enqueue_connection(
    pg_dsn: str, pg_schema: str, conn: asyncpg.Connection[Any]
) -> None:
    async with PostgresStorage(pg_dsn, schema=pg_schema) as s:
        await s.enqueue([new(1)], now=1.0)
        assert len(await _lane_pids(conn, pg_schema)) == 1
    with pytest.raises(StorageError, match="closed"):
        await s.enqueue([new(2)], now=1.0)
    async with asyncio.timeout(WAIT):  # the server drops the backend right after the goodbye
        while await _lane_pids(conn, pg_schema):
            await asyncio.sleep(0.01)


async def test_an_application_pool_gets_no_extra_connection(
    pg_dsn: str, pg_schema: str, conn: asyncpg.Connection[Any]
) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
    try:
        async with PostgresStorage(pg_dsn, schema=pg_schema, pool=pool) as s:
            assert [r.duplicate for r in await s.enqueue([new(1)], now=1.0)] == [False]
            assert [r.duplicate for r in await s.enqueue([new(1)], now=1.0)] == [True]
            (claimed,) = await s.claim(owner="a", limit=1, lease_seconds=30.0, now=2.0)
            await s.finish([Completion(claimed.key, claimed.attempt, Release())], now=3.0)
            assert await _lane_pids(conn, pg_schema) == []
            for app in ("etrusted-kit claims", "etrusted-kit results"):
                assert await _backends(conn, pg_schema, app) == []
    finally:
        await pool.close()


async def test_the_flusher_calls_take_connections_of_their_own(
    pg_dsn: str, pg_schema: str, conn: asyncpg.Connection[Any]
) -> None:
    """Claims and holds on one lane, results on another: the flusher runs both at once."""
    async with PostgresStorage(pg_dsn, schema=pg_schema, max_size=1) as s:
        await s.enqueue([new(1), new(2)], now=1.0)
        assert await s.holds(now=2.0) == []
        claimed = await s.claim(owner="a", limit=2, lease_seconds=30.0, now=2.0)
        claims = await _backends(conn, pg_schema, "etrusted-kit claims")
        assert len(claims) == 1
        done = [Completion(c.key, c.attempt, Delivered(f"ref-{c.key}")) for c in claimed]
        assert await s.finish(done, now=3.0) == [True, True]
        results = await _backends(conn, pg_schema, "etrusted-kit results")
        assert len(results) == 1
        claimed = await s.claim(owner="a", limit=2, lease_seconds=30.0, now=4.0)
        assert claimed == []
        assert await _backends(conn, pg_schema, "etrusted-kit claims") == claims  # reused
    async with asyncio.timeout(WAIT):  # closed with the storage
        while await _backends(conn, pg_schema, "etrusted-kit claims") or await _backends(
            conn, pg_schema, "etrusted-kit results"
        ):
            await asyncio.sleep(0.01)


async def test_a_lane_left_inside_a_transaction_is_not_handed_on(storage: PostgresStorage) -> None:
    lane = storage._results
    assert lane is not None
    taken: list[Any] = []

    async def fail_inside_a_transaction() -> None:
        async with storage._lane_or_pool(lane) as conn:
            taken.append(conn)
            await conn.execute("BEGIN")
            raise RuntimeError("cancelled half-way, say")

    with pytest.raises(RuntimeError):
        await fail_inside_a_transaction()
    (first,) = taken
    assert first.is_closed() or not first.is_in_transaction()  # rolled back, or replaced
    async with storage._lane_or_pool(lane) as second:
        assert not second.is_in_transaction()


async def test_a_cancelled_finish_never_leaves_the_results_lane_in_a_transaction(
    storage: PostgresStorage, conn: asyncpg.Connection[Any], pg_schema: str
) -> None:
    # A finish that needs two rounds (one key twice) runs in a transaction. Cancelled while its
    # BEGIN is on the way, it must not hand the lane back with the server inside that
    # transaction, or every later one-statement result would "succeed" and commit nothing.
    # Cancel it after every number of loop steps in turn; each later result must be visible.
    await storage.enqueue([new(i) for i in range(80)], now=1.0)
    for steps in range(20):
        claimed = await storage.claim(owner="w", limit=2, lease_seconds=600, now=2.0)
        first = claimed[0]
        twice = [Completion(c.key, c.attempt, Release()) for c in claimed]
        twice.append(Completion(first.key, first.attempt, Release()))
        task = asyncio.ensure_future(storage.finish(twice, now=2.0))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        (entry,) = await storage.claim(owner="w", limit=1, lease_seconds=600, now=2.0)
        done = Completion(entry.key, entry.attempt, Delivered(f"ref-{steps}"))
        assert await storage.finish([done], now=3.0) == [True]
        row = await conn.fetchrow(
            f'SELECT state, event_ref FROM "{pg_schema}".entries WHERE key = $1', entry.key
        )
        assert (row["state"], row["event_ref"]) == ("delivered", f"ref-{steps}"), steps


class FakeConnection:
    def __init__(self) -> None:
        self.closed = False

    def is_closed(self) -> bool:
        return self.closed

    async def close(self, *, timeout: float) -> None:
        self.closed = True

    def terminate(self) -> None:
        self.closed = True


async def test_the_enqueue_lane_serves_one_caller_and_closes_after_the_last() -> None:
    made: list[FakeConnection] = []

    async def connect() -> Any:
        made.append(FakeConnection())
        return made[-1]

    lane = Lane(connect)
    first = await lane.take()
    assert first is made[0]
    assert await lane.take() is None  # busy: that caller takes the pool
    await lane.give()
    assert await lane.take() is first  # reused while open
    await lane.aclose()  # closed while in use: left to the caller
    assert not made[0].closed
    await lane.give()
    assert made[0].closed
    assert await lane.take() is None

    lane = Lane(connect)
    await lane.take()
    made[-1].closed = True  # lost while in use
    await lane.give()
    assert await lane.take() is made[-1] is not made[1]  # replaced on the next call
    await lane.give(broken=True)  # a failure that may have broken it: closed at once
    assert made[2].closed
    assert await lane.take() is made[-1] is not made[2]
    await lane.give()
    await lane.aclose()
    assert made[-1].closed


async def test_the_enqueue_lane_stands_aside_when_it_cannot_connect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    calls = 0

    async def connect() -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("too many clients")
        return FakeConnection()

    lane = Lane(connect, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="kit.outbox.postgres"):
        assert await lane.take() is None  # the caller takes the pool
    assert any(
        getattr(r, "action", "") == "outbox.enqueue_connection.failed" for r in caplog.records
    )
    now[0] = RETRY_AFTER - 1
    assert await lane.take() is None
    assert calls == 1  # no connect attempt while it stands aside
    now[0] = RETRY_AFTER
    assert await lane.take() is not None
    await lane.give()
    await lane.aclose()


async def test_enqueue_uses_the_pool_when_the_lane_cannot_connect(
    storage: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse() -> Any:
        raise OSError("too many clients")

    assert storage._lane is not None
    monkeypatch.setattr(storage._lane, "_connect", refuse)
    assert [r.duplicate for r in await storage.enqueue([new(1)], now=1.0)] == [False]
    assert [r.duplicate for r in await storage.enqueue([new(1)], now=1.0)] == [True]


class StallingProxy:
    """Forwards TCP to PostgreSQL until ``stall()``; then accepts new connections and never
    answers them, as an address black-holed by a failover does."""

    def __init__(self, dsn: str) -> None:
        self._target = urlsplit(dsn)
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._stalled = False
        self._closed = asyncio.Event()
        self.dsn = dsn

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.dsn = urlunsplit(self._target._replace(netloc=f"postgres@127.0.0.1:{port}"))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        self._closed.set()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()

    def stall(self) -> None:
        self._stalled = True

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self._stalled:
            await self._closed.wait()
            return
        target = (self._target.hostname or "127.0.0.1", self._target.port or 5432)
        up_reader, up_writer = await asyncio.open_connection(*target)
        self._writers.add(up_writer)
        pipes = {
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        }
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            w.transport.abort()
        await asyncio.wait(pipes)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


async def test_a_caller_waits_for_a_connection_at_most_command_timeout(
    pg_dsn: str, pg_schema: str
) -> None:
    """With the pool busy and the server taking no new connections (a black-holed address), a
    one-event enqueue gets StorageUnavailableError within ``command_timeout`` in all: the
    enqueue connection's connect attempt and the wait for a pooled one share that budget."""
    budget = 1.0
    async with StallingProxy(pg_dsn) as proxy:
        s = PostgresStorage(proxy.dsn, schema=pg_schema, max_size=1, command_timeout=budget)
        await s.open()
        try:
            proxy.stall()
            loop = asyncio.get_running_loop()
            async with s.transaction("hold the pool's one connection"):
                started = loop.time()
                with pytest.raises(StorageUnavailableError):
                    await s.enqueue([new(1)], now=1.0)
                waited = loop.time() - started
        finally:
            await s.aclose()
    assert waited < budget * 1.6


async def test_pooled_connections_keep_no_session_state(
    storage: PostgresStorage, conn: asyncpg.Connection[Any], pg_schema: str
) -> None:
    """Why the own pool may skip asyncpg's reset query: nothing the kit does outlives a call."""
    session = (
        "SELECT current_setting('search_path') AS path,"
        " (SELECT count(*) FROM pg_listening_channels()) AS listens,"
        " (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        "  AND pid = pg_backend_pid()) AS locks,"
        " (SELECT count(*) FROM pg_cursors) AS cursors,"
        " (SELECT count(*) FROM pg_class WHERE relpersistence = 't'"
        "  AND pg_table_is_visible(oid)) AS temp_tables,"
        " (SELECT count(*) FROM pg_settings WHERE setting IS DISTINCT FROM reset_val)"
        "  AS settings"
    )
    fresh = dict(await conn.fetchrow(session))  # what a new connection shows
    listener = storage.listen()
    try:
        await asyncio.wait_for(anext(listener), WAIT)
        await storage.migrate()
        await storage.enqueue([new(1)], now=1.0)
        await storage.enqueue([new(i) for i in range(BULK)], now=1.0)
        claimed = await storage.claim(owner="w", limit=2, lease_seconds=30, now=2.0)
        await storage.finish(
            [Completion(c.key, c.attempt, Delivered("e")) for c in claimed], now=3.0
        )
        async for _batch in storage.dump(batch=10):
            pass
        await conn.execute(f'ALTER TABLE "{pg_schema}".attempts ADD CHECK (attempt < 0)')
        claimed = await storage.claim(owner="w", limit=1, lease_seconds=30, now=4.0)
        rec = AttemptRecord(
            attempt=claimed[0].attempt,
            kind=AttemptKind.SEND,
            started_at=4.0,
            duration_ms=1.0,
            outcome="delivered",
            http_status=202,
        )
        with pytest.raises(StorageError):  # fails inside finish()'s transaction
            await storage.finish(
                [Completion(claimed[0].key, claimed[0].attempt, Delivered("e"), rec)], now=5.0
            )
        # Every connection of the pool at once, so each one is inspected.
        async with contextlib.AsyncExitStack() as stack:
            pooled = [await stack.enter_async_context(storage._conn()) for _ in range(4)]
            for c in pooled:
                assert not c.is_in_transaction()
                assert dict(await c.fetchrow(session)) == fresh
    finally:
        await listener.aclose()


# -- finish batches ---------------------------------------------------------------------------


async def test_finish_is_fenced_and_one_transaction(storage: PostgresStorage) -> None:
    await storage.enqueue([new(i) for i in range(3)], now=1.0)
    claimed = await storage.claim(owner="w", limit=3, lease_seconds=30, now=2.0)
    record = AttemptRecord(
        attempt=claimed[0].attempt,
        kind=AttemptKind.SEND,
        started_at=2.0,
        duration_ms=12.5,
        outcome="delivered",
        http_status=202,
    )
    results = await storage.finish(
        [
            Completion(claimed[0].key, claimed[0].attempt, Delivered("evt-0"), record),
            Completion(claimed[0].key, claimed[0].attempt, Delivered("evt-x")),  # repeated
            Completion(claimed[1].key, claimed[1].attempt + 1, Delivered("evt-1")),  # stale
            Completion(claimed[2].key, claimed[2].attempt, Retry(9.0, "HTTP 503")),
        ],
        now=3.0,
    )
    assert results == [True, False, False, True]
    first = await storage.get(claimed[0].key)
    assert first is not None
    assert (first.state, first.event_ref, first.sends) == (State.DELIVERED, "evt-0", 1)
    assert await storage.attempts(claimed[0].key) == [record]
    second = await storage.get(claimed[1].key)
    assert second is not None
    assert second.state == State.SENDING
    third = await storage.get(claimed[2].key)
    assert third is not None
    assert (third.state, third.due_at, third.last_error) == (State.PENDING, 9.0, "HTTP 503")


async def test_finish_keeps_times_and_texts_exactly(storage: PostgresStorage) -> None:
    """What a result writes reads back exactly: every float bit for bit (tiny, huge and
    infinite ones too) and texts with quotes, backslashes and non-ASCII characters."""
    await storage.enqueue([new(i) for i in range(2)], now=1.0)
    claimed = await storage.claim(owner="w", limit=2, lease_seconds=30, now=2.0)
    error = 'HTTP 503: "busy" \\ \u00e9t\u00e9 \U0001f600 \n next line'
    record = AttemptRecord(
        attempt=claimed[0].attempt,
        kind=AttemptKind.SEND,
        started_at=0.1 + 0.2,
        duration_ms=1e-7,
        outcome="retry",
        http_status=503,
        error=error,
    )
    due = 1_764_900_000.123_456_7
    results = await storage.finish(
        [
            Completion(claimed[0].key, claimed[0].attempt, Retry(due, error), record),
            Completion(claimed[1].key, claimed[1].attempt, Retry(float("inf"), "never")),
        ],
        now=3.0,
    )
    assert results == [True, True]
    first = await storage.get(claimed[0].key)
    assert first is not None
    assert (first.due_at, first.last_error, first.sends) == (due, error, 1)
    assert await storage.attempts(claimed[0].key) == [record]
    second = await storage.get(claimed[1].key)
    assert second is not None
    assert (second.due_at, second.sends) == (float("inf"), 0)


# -- index-backed claims ----------------------------------------------------------------------


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_plan_nodes(child))
    return nodes


async def _fill_mixed_backlog(conn: asyncpg.Connection[Any], pg_schema: str, rows: int) -> None:
    """``rows`` entries, mostly pending, some sending, in doubt and delivered; analysed."""
    await conn.execute(
        f"""
        INSERT INTO "{pg_schema}".entries (key, state, event_type, channel_id,
            transaction_reference, payload, due_at, created_at, updated_at, attempt,
            lease_owner, lease_expires_at)
        SELECT 'k-' || g,
               CASE WHEN g % 50 = 0 THEN 'sending' WHEN g % 50 = 1 THEN 'in_doubt'
                    WHEN g % 50 < 10 THEN 'delivered' ELSE 'pending' END,
               'order_shipped', 'chl-1', 'order-' || g, '{{}}', g, g, g,
               CASE WHEN g % 50 IN (0, 1) THEN 1 ELSE 0 END,
               CASE WHEN g % 50 IN (0, 1) THEN 'w' END,
               CASE WHEN g % 50 IN (0, 1) THEN g + 10 END
        FROM generate_series(1, $1) AS g
        """,
        rows,
    )
    await conn.execute(f'ANALYZE "{pg_schema}".entries')


async def test_claim_uses_the_partial_indexes_with_a_large_backlog(
    storage: PostgresStorage, conn: asyncpg.Connection[Any], pg_schema: str
) -> None:
    rows = 50_000
    await _fill_mixed_backlog(conn, pg_schema, rows)
    limit, now = 50, float(rows * 2)  # everything is due, every lease has expired
    tx = conn.transaction()
    await tx.start()
    explained = await conn.fetchval(
        f"EXPLAIN (ANALYZE, FORMAT JSON) {storage._sql.claim_with_holds(limit)}", now, "w2", 30.0
    )
    await tx.rollback()  # EXPLAIN ANALYZE ran the UPDATE; undo it
    plan = json.loads(explained)[0]["Plan"]
    nodes = _plan_nodes(plan)
    scans = {n.get("Index Name"): n for n in nodes if n["Node Type"] == "Index Scan"}
    assert {"entries_claim_pending", "entries_claim_sending", "entries_claim_in_doubt"} <= set(
        scans
    )
    full_reads = {"Seq Scan", "Bitmap Heap Scan"}
    # (the holds and the meta tables hold a row or two: reading them whole is their cheapest)
    entries_read = [n for n in nodes if n.get("Relation Name") == "entries"]
    assert not [n for n in entries_read if n["Node Type"] in full_reads]
    for name in ("entries_claim_pending", "entries_claim_sending", "entries_claim_in_doubt"):
        # Each branch stops after LIMIT rows: the work does not grow with the backlog.
        assert scans[name]["Actual Rows"] <= limit
    # ... and the real claim agrees: oldest due first across the three kinds.
    claimed = await storage.claim(owner="w", limit=5, lease_seconds=30, now=now)
    assert [(c.key, c.mode) for c in claimed] == [
        ("k-1", ClaimMode.RECONCILE),  # in_doubt, due 1
        ("k-10", ClaimMode.SEND),  # pending, due 10
        ("k-11", ClaimMode.SEND),
        ("k-12", ClaimMode.SEND),
        ("k-13", ClaimMode.SEND),
    ]


async def test_claim_plan_is_reused_with_a_large_backlog(
    storage: PostgresStorage, conn: asyncpg.Connection[Any], pg_schema: str
) -> None:
    """A claim is not planned anew each time however large the backlog: after PostgreSQL's
    five trial runs the cached plan serves, so a claim's cost does not grow with the backlog."""
    rows = 50_000
    await _fill_mixed_backlog(conn, pg_schema, rows)
    statement = await conn.prepare(storage._sql.claim_with_holds(16))
    for _ in range(8):
        tx = conn.transaction()
        await tx.start()
        assert len(await statement.fetch(float(rows * 2), "w", 30.0)) == 16
        await tx.rollback()
    generic, custom = await conn.fetchrow(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        storage._sql.claim_with_holds(16),
    )
    assert custom <= 5
    assert generic >= 3


async def test_claim_with_holds_returns_claim_order_and_holds_by_name(
    storage: PostgresStorage, conn: asyncpg.Connection[Any], pg_schema: str
) -> None:
    """The claim's one statement hands out the entries oldest due first across the three kinds
    and every hold in force sorted by name, however many of each it returns."""
    await _fill_mixed_backlog(conn, pg_schema, 200)
    pace = Hold(name="pace", until=1_000.0, reason="429")
    auth = Hold(name="auth", until=1_000.0, reason="401")
    for hold in (pace, Hold(name="gone", until=1.0, reason="expired"), auth):
        await storage.set_hold(hold)
    claimed, holds = await storage.claim_with_holds(owner="w", limit=5, lease_seconds=30, now=400.0)
    assert [(c.key, c.mode) for c in claimed] == [
        ("k-1", ClaimMode.RECONCILE),  # in_doubt, due 1
        ("k-10", ClaimMode.SEND),  # pending, due 10
        ("k-11", ClaimMode.SEND),
        ("k-12", ClaimMode.SEND),
        ("k-13", ClaimMode.SEND),
    ]
    assert holds == [auth, pace]
