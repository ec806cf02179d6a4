"""Moving an outbox between backends: SQLite file -> PostgreSQL -> SQLite file, field by field."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from builders import event, order

from kit.errors import ConfigError, OutboxError, OutboxMovedError
from kit.outbox import Outbox
from kit.outbox import _sqlite_sql as sql
from kit.outbox.migrations import load_migrations
from kit.outbox.move import MigrationReport, migrate_outbox
from kit.outbox.postgres import PostgresStorage
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    ClaimMode,
    Completion,
    Dead,
    Delivered,
    EntryRecord,
    InDoubt,
    NewEntry,
    Outcome,
    Resend,
    Retry,
    State,
)

# Awkward floats on purpose: they must survive both backends bit for bit.
T0 = 1_700_000_000.123456789


def t(seconds: float) -> float:
    return T0 + seconds


def new(name: str, **kw: object) -> NewEntry:
    return NewEntry(
        key=f"k-{name}",
        payload=json.dumps({"type": "order_shipped", "ref": name, "note": "Grüße"}),
        event_type="order_shipped",
        channel_id="chl-1",
        transaction_reference=f"order-{name}",
        **kw,  # type: ignore[arg-type]
    )


def record(attempt: int, kind: AttemptKind, at: float, outcome: str, **kw: object) -> AttemptRecord:
    return AttemptRecord(
        attempt=attempt, kind=kind, started_at=at, duration_ms=123.456, outcome=outcome, **kw
    )  # type: ignore[arg-type]


async def claim_one(s: Storage, key: str, now: float, lease: float = 30.0) -> tuple[int, ClaimMode]:
    claimed = await s.claim(owner="flusher-a", limit=1, lease_seconds=lease, now=now)
    assert [c.key for c in claimed] == [key]
    return claimed[0].attempt, claimed[0].mode


async def end(
    s: Storage, key: str, attempt: int, outcome: Outcome, rec: AttemptRecord, now: float
) -> None:
    assert await s.finish([Completion(key, attempt, outcome, rec)], now=now) == [True]


async def populate(s: Storage) -> None:
    """One entry per interesting situation; at most one is claimable at each step."""
    send, rec = AttemptKind.SEND, AttemptKind.RECONCILE
    # delivered, then its payload purged
    await s.enqueue([new("purged", email_hash="hash-a")], now=t(-2))
    a, _ = await claim_one(s, "k-purged", t(-2))
    await end(
        s,
        "k-purged",
        a,
        Delivered("evt-purged"),
        record(a, send, t(-2), "delivered", http_status=202),
        t(-1.9),
    )
    assert await s.purge(before=t(-1), now=t(-1)) == 1
    # delivered
    await s.enqueue([new("delivered")], now=t(0))
    a, _ = await claim_one(s, "k-delivered", t(0))
    await end(
        s,
        "k-delivered",
        a,
        Delivered("evt-1"),
        record(a, send, t(0), "delivered", http_status=202),
        t(0.25),
    )
    # retry pending, with its error
    await s.enqueue([new("retry")], now=t(1))
    a, _ = await claim_one(s, "k-retry", t(1))
    await end(
        s,
        "k-retry",
        a,
        Retry(t(10_000), "HTTP 503"),
        record(a, send, t(1), "retry", http_status=503, error="HTTP 503"),
        t(1.5),
    )
    # in doubt
    await s.enqueue([new("in-doubt")], now=t(2))
    a, _ = await claim_one(s, "k-in-doubt", t(2))
    await end(
        s,
        "k-in-doubt",
        a,
        InDoubt(t(10_000), "read timeout"),
        record(a, send, t(2), "in_doubt", error="read timeout"),
        t(2.5),
    )
    # in doubt, then adopted by reconciliation
    await s.enqueue([new("adopted")], now=t(3))
    a, _ = await claim_one(s, "k-adopted", t(3))
    await end(
        s,
        "k-adopted",
        a,
        InDoubt(t(4), "disconnect"),
        record(a, send, t(3), "in_doubt", error="disconnect"),
        t(3.5),
    )
    a, mode = await claim_one(s, "k-adopted", t(4))
    assert mode is ClaimMode.RECONCILE
    await end(
        s,
        "k-adopted",
        a,
        Delivered("evt-2", adopted=True),
        record(a, rec, t(4), "adopted", http_status=200),
        t(4.5),
    )
    # in doubt, nothing found: a blind resend, pending again
    await s.enqueue([new("resend")], now=t(5))
    a, _ = await claim_one(s, "k-resend", t(5))
    await end(s, "k-resend", a, InDoubt(t(6), "timeout"), record(a, send, t(5), "in_doubt"), t(5.5))
    a, _ = await claim_one(s, "k-resend", t(6))
    await end(
        s,
        "k-resend",
        a,
        Resend(t(20_000), "not found"),
        record(a, rec, t(6), "not_found_yet"),
        t(6.5),
    )
    # dead
    await s.enqueue([new("dead")], now=t(7))
    a, _ = await claim_one(s, "k-dead", t(7))
    await end(
        s,
        "k-dead",
        a,
        Dead("HTTP 400: customer.email"),
        record(a, send, t(7), "dead", http_status=400, error="HTTP 400"),
        t(7.5),
    )
    # sending: a flusher holds it until t(1009)
    await s.enqueue([new("sending")], now=t(8))
    await claim_one(s, "k-sending", t(8), lease=1001.0)
    # cancelled, forgotten, fresh pending, held back
    await s.enqueue([new("cancelled"), new("forgotten", email_hash="hash-b")], now=t(9))
    assert await s.cancel("k-cancelled", now=t(9.5)) is True
    assert (await s.forget_customer("hash-b", now=t(9.7))).purged == 1
    await s.enqueue([new("pending", email_hash="hash-a")], now=t(10))
    await s.enqueue([new("held", send_after=t(86_400))], now=t(11))


async def everything(s: Storage) -> list[EntryRecord]:
    return [r async for batch in s.dump(batch=4) for r in batch]


@pytest.fixture
async def sqlite_a(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    async with SQLiteStorage(tmp_path / "a.db") as s:
        yield s


@pytest.fixture
async def sqlite_b(tmp_path: Path) -> AsyncIterator[SQLiteStorage]:
    async with SQLiteStorage(tmp_path / "b.db") as s:
        yield s


@pytest.mark.postgres
async def test_sqlite_to_postgres_and_back(
    sqlite_a: SQLiteStorage, sqlite_b: SQLiteStorage, pg_dsn: str, pg_schema: str
) -> None:
    await populate(sqlite_a)
    original = await everything(sqlite_a)
    assert {r.entry.state for r in original} == set(State)
    assert sum(len(r.attempts) for r in original) == 9

    async with PostgresStorage(pg_dsn, schema=pg_schema) as pg:
        report = await migrate_outbox(sqlite_a, pg, batch=3, now=t(5000))
        assert report.copied == len(original) == 12
        assert report.skipped_existing == 0
        assert sum(report.by_state.values()) == 12
        assert report.by_state[State.PENDING] == 4
        assert report.by_state[State.SENDING] == 1
        # Every field of every entry (ids too: both outboxes were empty) and every log line.
        assert await everything(pg) == original
        for r in original:
            assert await pg.attempts(r.entry.key) == list(r.attempts)
        assert await pg.stats() == await sqlite_a.stats()

        again = await migrate_outbox(sqlite_a, pg, now=t(5000))
        assert (again.copied, again.skipped_existing) == (0, 12)

        back = await migrate_outbox(pg, sqlite_b, batch=5, now=t(5000))
        assert back == report
        assert await everything(sqlite_b) == original

        # The moved outbox carries on where it went: the expired lease is reconciled under the
        # next fencing token, and the old flusher's late answer is refused.
        claimed = await sqlite_b.claim(owner="flusher-b", limit=10, lease_seconds=30, now=t(5000))
        assert [(c.key, c.mode, c.attempt) for c in claimed] == [
            ("k-pending", ClaimMode.SEND, 1),  # due since t(10)
            ("k-sending", ClaimMode.RECONCILE, 2),  # due since its lease ran out at t(1009)
        ]
        late = Completion("k-sending", 1, Delivered("evt-zombie"))
        assert await sqlite_b.finish([late], now=t(5001)) == [False]
        # The key ledger moved too: a replayed event stays a duplicate where the outbox went,
        # and the outbox it left takes nothing new and hands nothing out, naming where it went.
        assert [r.duplicate for r in await sqlite_b.enqueue([new("purged")], now=t(5002))] == [True]
        with pytest.raises(OutboxMovedError, match="moved to sqlite:///") as moved:
            await pg.enqueue([new("fresh")], now=t(5002))
        assert moved.value.moved_to == sqlite_b.url
        with pytest.raises(OutboxMovedError):
            await pg.claim(owner="flusher-c", limit=10, lease_seconds=30, now=t(5003))
        assert await pg.moved_to() == sqlite_b.url
        assert await sqlite_a.moved_to() == pg.url


async def test_refuses_a_source_with_live_leases(
    sqlite_a: SQLiteStorage, sqlite_b: SQLiteStorage
) -> None:
    await populate(sqlite_a)
    with pytest.raises(OutboxError, match=r"1 entries .*'k-sending'.*force=True"):
        await migrate_outbox(sqlite_a, sqlite_b, now=t(100))  # the lease runs until t(1009)
    assert await everything(sqlite_b) == []

    assert await sqlite_a.moved_to() is None  # refused before copying: source untouched

    forced = await migrate_outbox(sqlite_a, sqlite_b, now=t(100), force=True)
    assert forced.copied == 12
    assert await sqlite_a.moved_to() == sqlite_b.url
    assert await sqlite_a.holds(now=t(100)) == []  # a state of the outbox, not a brake
    # Repeating the move (as the docs say is safe) must not lift the mark, even when refused.
    with pytest.raises(OutboxError):
        await migrate_outbox(sqlite_a, sqlite_b, now=t(100))
    assert await sqlite_a.moved_to() == sqlite_b.url
    # ... and a second, different target is refused: two databases would deliver the same.
    async with SQLiteStorage(sqlite_b.path + ".other") as other:
        with pytest.raises(OutboxError, match="already moved"):
            await migrate_outbox(sqlite_a, other, now=t(2000))
        assert await everything(other) == []
    moved = await sqlite_b.get("k-sending")
    assert moved is not None
    assert (moved.state, moved.lease_owner, moved.lease_expires_at) == (
        State.SENDING,
        "flusher-a",
        t(1009),
    )


async def test_refuses_a_reconciliation_in_progress(
    sqlite_a: SQLiteStorage, sqlite_b: SQLiteStorage
) -> None:
    await sqlite_a.enqueue([new("x")], now=t(0))
    a, _ = await claim_one(sqlite_a, "k-x", t(0))
    await end(
        sqlite_a,
        "k-x",
        a,
        InDoubt(t(1), "timeout"),
        record(a, AttemptKind.SEND, t(0), "in_doubt"),
        t(0.5),
    )
    await claim_one(sqlite_a, "k-x", t(1))  # reconciling until t(31)
    with pytest.raises(OutboxError, match="k-x"):
        await migrate_outbox(sqlite_a, sqlite_b, now=t(2))
    report = await migrate_outbox(sqlite_a, sqlite_b, now=t(31))  # the lease has run out
    assert report == MigrationReport(
        copied=1, skipped_existing=0, by_state={**dict.fromkeys(State, 0), State.IN_DOUBT: 1}
    )


async def test_bad_arguments(sqlite_a: SQLiteStorage, sqlite_b: SQLiteStorage) -> None:
    with pytest.raises(OutboxError, match="same outbox"):
        await migrate_outbox(sqlite_a, sqlite_a)
    with pytest.raises(ConfigError, match="batch"):
        await migrate_outbox(sqlite_a, sqlite_b, batch=0)


async def test_refuses_a_target_that_was_itself_moved(
    sqlite_a: SQLiteStorage, sqlite_b: SQLiteStorage, tmp_path: Path
) -> None:
    """Entries copied into an outbox that was moved on would never be sent: refused, and the
    source is left as it was."""
    await sqlite_a.enqueue([new("x")], now=t(0))
    async with SQLiteStorage(tmp_path / "c.db") as c:
        await migrate_outbox(sqlite_b, c, now=t(0))
        with pytest.raises(OutboxError, match=r"itself moved to sqlite:///.*c\.db"):
            await migrate_outbox(sqlite_a, sqlite_b, now=t(0))
    assert await sqlite_a.moved_to() is None
    assert [r.duplicate for r in await sqlite_a.enqueue([new("y")], now=t(1))] == [False]


async def test_a_version_1_migrated_hold_becomes_the_moved_state(tmp_path: Path) -> None:
    """An outbox moved by an older kit (a 'migrated' hold until 100 years from then) is, after
    the schema upgrade, moved for good: it names its new home and holds nothing any more."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        (v1,) = [m for m in load_migrations("sqlite") if m.version == 1]
        db.execute("BEGIN")
        db.execute(sql.SCHEMA_TABLE)
        for statement in sql.statements(v1.sql):
            db.execute(statement)
        db.execute(sql.RECORD_VERSION, (1, v1.name, 0.0))
        reason = (
            "the outbox was moved to postgresql://db.example/shop;"
            " run flushers against that database"
        )
        db.execute("INSERT INTO etk_holds VALUES ('migrated', ?, ?)", (t(1e9), reason))
        db.execute("INSERT INTO etk_holds VALUES ('pace', ?, 'kept')", (t(30),))
        db.execute("COMMIT")
    finally:
        db.close()
    async with SQLiteStorage(path) as s:
        assert await s.moved_to() == "postgresql://db.example/shop"
        assert [h.name for h in await s.holds(now=t(0))] == ["pace"]
        with pytest.raises(OutboxMovedError, match=r"moved to postgresql://db\.example/shop"):
            await s.enqueue([new("x")], now=t(0))


@pytest.mark.postgres
async def test_a_version_1_migrated_hold_becomes_the_moved_state_on_postgres(
    pg_dsn: str, pg_schema: str
) -> None:
    """The same upgrade on PostgreSQL; a hold whose reason another kit wrote is kept whole."""
    import asyncpg

    (v1,) = [m for m in load_migrations("postgres") if m.version == 1]
    conn = await asyncpg.connect(pg_dsn)
    try:
        async with conn.transaction():
            await conn.execute(f'CREATE SCHEMA "{pg_schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{pg_schema}"')
            await conn.execute(
                "CREATE TABLE schema_version (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await conn.execute(v1.sql)
            await conn.execute("INSERT INTO schema_version (version, name) VALUES (1, $1)", v1.name)
            await conn.execute(
                "INSERT INTO holds VALUES ('migrated', $1, 'moved to sqlite:///elsewhere.db')",
                t(1e9),
            )
    finally:
        await conn.close()
    async with PostgresStorage(pg_dsn, schema=pg_schema) as pg:
        assert await pg.moved_to() == "moved to sqlite:///elsewhere.db"
        assert await pg.holds(now=t(0)) == []
        with pytest.raises(OutboxMovedError):
            await pg.claim(owner="w", limit=5, lease_seconds=30, now=t(0))


# -- the source of a move takes nothing new ----------------------------------------------------


async def test_an_outbox_that_was_moved_refuses_new_events(
    tmp_path: Path,
) -> None:
    """After migrate-outbox the source refuses new events with OutboxMovedError naming the new
    outbox, so an application instance (or a cron'd ``etrusted-kit enqueue``) not switched to
    it yet cannot store an event no flusher will send."""

    old, new = tmp_path / "old.db", tmp_path / "new.db"
    async with Outbox.from_url(str(old)) as app:
        await app.enqueue(event("o-1", email="a@example.org"))
    async with SQLiteStorage(old) as source, SQLiteStorage(new) as target:
        report = await migrate_outbox(source, target)
        assert report.copied == 1
    async with Outbox.from_url(str(old)) as late_app:
        with pytest.raises(OutboxMovedError, match=r"was moved to sqlite:///.*new\.db"):
            await late_app.enqueue(event("o-2", email="b@example.org"))


async def test_migrating_an_outbox_onto_itself_is_refused(tmp_path: Path) -> None:
    """Two storage objects on the same database (the CLI's --from and --to naming one file) are
    refused as the same outbox, and the only outbox is not marked as moved."""

    path = tmp_path / "outbox.db"
    async with Outbox.from_url(str(path)) as app:
        await app.enqueue(event("o-1", email="a@example.org"))
    async with SQLiteStorage(path) as source, SQLiteStorage(f"sqlite:///{path}") as target:
        with pytest.raises(OutboxError, match="source and target are the same outbox"):
            await migrate_outbox(source, target)
        assert await source.holds(now=0.0) == []  # the probe is gone
        assert await source.moved_to() is None


@pytest.mark.postgres
async def test_an_enqueue_in_transaction_spanning_the_move_is_refused_or_copied(
    pg_dsn: str, pg_schema: str
) -> None:
    """An ``enqueue_in`` whose transaction is open while migrate-outbox runs ends up in the new
    outbox: the move waits for writers under way before it copies, so an event committed
    after the move started is copied, never left behind in the moved-away outbox."""
    import asyncpg

    source = PostgresStorage(pg_dsn, schema=pg_schema)
    target = PostgresStorage(pg_dsn, schema=pg_schema + "_to")
    conn = await asyncpg.connect(pg_dsn, server_settings={"application_name": "etk-test-writer"})
    try:
        async with source, target:
            old = Outbox(source)
            tx = conn.transaction()
            await tx.start()
            result = await old.enqueue_in(conn, order(1))
            assert not result.duplicate
            move = asyncio.create_task(migrate_outbox(source, target))

            async def migrate_waits_for_the_writer() -> bool:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE NOT l.granted AND c.relname = 'entries' AND n.nspname = $1",
                    pg_schema,
                )
                return bool(waiting)

            async with asyncio.timeout(30):  # the move must wait for our transaction
                while not await migrate_waits_for_the_writer():
                    assert not move.done(), "the move finished while a write was under way"
                    await asyncio.sleep(0.01)
            await tx.commit()
            report = await asyncio.wait_for(move, 30)

            in_source = {e.key for e in await source.entries()}
            in_target = {e.key for e in await target.entries()}
            assert in_source == in_target, (
                f"enqueue_in committed after the move (copied {report.copied}): "
                f"{sorted(in_source - in_target)} only in the moved-away outbox"
            )
    finally:
        await conn.close()
        cleanup = await asyncpg.connect(pg_dsn)
        try:
            await cleanup.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}_to" CASCADE')
        finally:
            await cleanup.close()
