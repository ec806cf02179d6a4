"""Moving an outbox between backends: SQLite file -> PostgreSQL -> SQLite file, field by field."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kit.errors import ConfigError, OutboxError
from kit.outbox.migrate import MigrationReport, migrate_outbox
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

        # The moved outbox carries on: the expired lease is reconciled under the next fencing
        # token, and the old flusher's late answer is refused.
        claimed = await pg.claim(owner="flusher-b", limit=10, lease_seconds=30, now=t(5000))
        assert [(c.key, c.mode, c.attempt) for c in claimed] == [
            ("k-pending", ClaimMode.SEND, 1),  # due since t(10)
            ("k-sending", ClaimMode.RECONCILE, 2),  # due since its lease ran out at t(1009)
        ]
        late = Completion("k-sending", 1, Delivered("evt-zombie"))
        assert await pg.finish([late], now=t(5001)) == [False]
        # The key ledger moved too: a replayed event stays a duplicate where the outbox went,
        # and the outbox it left takes nothing new.
        assert [r.duplicate for r in await sqlite_b.enqueue([new("purged")], now=t(5002))] == [True]
        with pytest.raises(OutboxError, match="takes no new entries"):
            await pg.enqueue([new("fresh")], now=t(5002))


async def test_refuses_a_source_with_live_leases(
    sqlite_a: SQLiteStorage, sqlite_b: SQLiteStorage
) -> None:
    await populate(sqlite_a)
    with pytest.raises(OutboxError, match=r"1 entries .*'k-sending'.*force=True"):
        await migrate_outbox(sqlite_a, sqlite_b, now=t(100))  # the lease runs until t(1009)
    assert await everything(sqlite_b) == []

    assert await sqlite_a.holds(now=t(100)) == []  # refused before copying: source untouched

    forced = await migrate_outbox(sqlite_a, sqlite_b, now=t(100), force=True)
    assert forced.copied == 12
    (hold,) = await sqlite_a.holds(now=t(100))
    assert hold.name == "migrated"
    # Repeating the move (as the docs say is safe) must not lift the hold, even when refused.
    with pytest.raises(OutboxError):
        await migrate_outbox(sqlite_a, sqlite_b, now=t(100))
    assert [h.name for h in await sqlite_a.holds(now=t(100))] == ["migrated"]
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
