"""The ``etrusted-kit`` command line, end to end.

Commands run in-process through :func:`kit.cli.cli` against real SQLite files in ``tmp_path`` and
a real sandbox on loopback (the ``ETRUSTED_*`` variables point at it). The daemon's signal
handling and the ``-v`` traceback run as real ``python -m kit`` processes, because only a real
process has real signals and a real stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import attrs
import builders
import pytest
from builders import EVENT_TYPE
from builders import key as key_of
from cli_helpers import PROCESS_DEADLINE, Run, run_kit

from kit.outbox import Outbox, storage_from_url
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Completion,
    Dead,
    Delivered,
    InDoubt,
    Retry,
    State,
)
from kit.sandbox import SEEDED_CHANNEL_IDS, Fault, FaultKind, SandboxConfig, SandboxServer
from kit.testing import running_sandbox

TEA = {"name": "Tea", "sku": "T-1", "url": "https://shop.example/tea"}
FAST_FLUSH = ["--poll-interval", "0.05", "--backoff-base", "0.01", "--backoff-cap", "0.05"]


def event(ref: str, **kw: Any) -> dict[str, Any]:
    """With a first name and a product: output checks then have customer data to leave out."""
    return builders.event(ref, first_name="Anna", products=[TEA], **kw)


def jsonl(*bodies: Any) -> str:
    return "".join(json.dumps(b) + "\n" for b in bodies)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    config = SandboxConfig(seed=3, event_types=("checkout", EVENT_TYPE))
    async with running_sandbox(config) as server:
        yield server


def sandbox_env(server: SandboxServer) -> dict[str, str]:
    config = server.sandbox.config
    return {
        "ETRUSTED_API_URL": server.url,
        "ETRUSTED_TOKEN_URL": server.token_url,
        "ETRUSTED_CLIENT_ID": config.client_id,
        "ETRUSTED_CLIENT_SECRET": config.client_secret,
    }


@pytest.fixture
def env(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """The sandbox, with the ``ETRUSTED_*`` variables pointing at it."""
    for name, value in sandbox_env(sandbox).items():
        monkeypatch.setenv(name, value)
    return sandbox


async def enqueue(db: str, refs: Iterable[str], **kwargs: Any) -> None:
    async with Outbox.from_url(db) as outbox:
        for ref in refs:
            await outbox.enqueue(event(ref, **kwargs))


async def entries(db: str, state: State | None = None) -> dict[str, Any]:
    async with Outbox.from_url(db) as outbox:
        return {e.key: e for e in await outbox.entries(state=state, limit=10_000)}


async def counts(db: str) -> dict[State, int]:
    async with Outbox.from_url(db) as outbox:
        return (await outbox.stats()).counts


HOUR = 3600.0
DEAD_REASON = "HTTP 400: channel.id is unknown"


async def every_state(db: str) -> float:
    """One outbox with entries in all six states, all created an hour ago; returns that time.

    Built through the storage contract (claim/finish/cancel) with explicit times, so the states
    are exact and nothing depends on a sandbox's timing.
    """
    t0 = time.time() - HOUR
    outbox = Outbox(storage_from_url(db), clock=lambda: t0)
    async with outbox:
        storage = outbox.storage

        async def claim_one(ref: str, at: float) -> Any:
            await outbox.enqueue(event(ref))
            (claimed,) = await storage.claim(owner="test", limit=1, lease_seconds=1e6, now=at)
            assert claimed.key == key_of(ref)
            return claimed

        await outbox.enqueue(event("cancelled-1"))
        assert await outbox.cancel(key_of("cancelled-1"))
        c = await claim_one("delivered-1", t0 + 1)
        await storage.finish([Completion(c.key, c.attempt, Delivered("evt-test-1"))], now=t0 + 1)
        c = await claim_one("in-doubt-1", t0 + 2)
        in_doubt = InDoubt(due_at=t0 + 1e6, error="POST timed out")
        await storage.finish([Completion(c.key, c.attempt, in_doubt)], now=t0 + 2)
        await claim_one("sending-1", t0 + 3)  # stays leased: a POST "under way"
        c = await claim_one("dead-1", t0 + 4)
        await storage.finish([Completion(c.key, c.attempt, Dead(DEAD_REASON))], now=t0 + 5)
        await outbox.enqueue(event("pending-1"))
        await outbox.enqueue(event("pending-2"))
    return t0


async def make_dead(db: str, refs: Iterable[str]) -> None:
    async with Outbox.from_url(db) as outbox:
        for ref in refs:
            await outbox.enqueue(event(ref))
            now = time.time()
            (c,) = await outbox.storage.claim(owner="t", limit=1, lease_seconds=60, now=now)
            outcome = Dead(f"rejected {ref}")
            await outbox.storage.finish([Completion(c.key, c.attempt, outcome)], now=now)


# -- enqueue ---------------------------------------------------------------------------------


async def test_enqueue_counts_and_names_every_bad_line(run: Run, db: str, tmp_path: Path) -> None:
    broken = event("o-2", email="not-an-email")
    del broken["products"][0]["url"]
    del broken["system"]
    lines = [
        json.dumps(event("o-1")),
        json.dumps(broken),
        '{"type": "order_shipped", "customer": ',
        "[1, 2, 3]",
        "",
        json.dumps(event("o-3")),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = await run("enqueue", str(path), "--db", db)

    assert result.code == 1
    assert result.out == "enqueued 2, duplicate 0, invalid 3\n"
    err = result.err.splitlines()
    assert len(err) == 3
    assert err[0].startswith(f"{path}:2: invalid event: ")
    for field in ("customer.email", "products[0].url", "system"):
        assert f"{field}: " in err[0]
    assert "not-an-email" not in err[0]  # offending paths, not the customer's data
    assert err[1].startswith(f"{path}:3: invalid JSON: ")
    assert err[2] == f"{path}:4: not a JSON object"
    stored = await entries(db)
    assert sorted(stored) == [key_of("o-1"), key_of("o-3")]
    assert all(e.state is State.PENDING for e in stored.values())

    again = await run("enqueue", str(path), "--db", db)
    assert again.code == 1
    assert again.out == "enqueued 0, duplicate 2, invalid 3\n"
    assert len(await entries(db)) == 2


async def test_enqueue_all_valid_exits_zero(run: Run, db: str, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(event("a"), event("b"), event("a")), encoding="utf-8")
    result = await run("enqueue", str(path), "--db", db)
    assert (result.code, result.out, result.err) == (0, "enqueued 2, duplicate 1, invalid 0\n", "")


async def test_enqueue_from_stdin(run: Run, db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(jsonl(event("s-1"), {"type": 1}, event("s-2"))))
    result = await run("enqueue", "-", "--db", db)
    assert result.code == 1
    assert result.out == "enqueued 2, duplicate 0, invalid 1\n"
    assert result.err.startswith("-:2: invalid event: type: ")
    assert sorted(await entries(db)) == [key_of("s-1"), key_of("s-2")]


@pytest.mark.parametrize("problem", ["missing", "directory", "not-utf8"])
async def test_enqueue_unreadable_file_is_one_clear_error(
    run: Run, db: str, tmp_path: Path, problem: str
) -> None:
    path = tmp_path / "events.jsonl"
    if problem == "directory":
        path.mkdir()
    elif problem == "not-utf8":
        path.write_bytes(b"\xff\xfe\x00{}\n")
    result = await run("enqueue", str(path), "--db", db)
    assert result.code == 1
    assert result.err.startswith(f"etrusted-kit: error: cannot read {path}: ")
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1
    assert await entries(db) == {}


async def test_enqueue_db_from_env_flag_and_sqlite_url(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(event("e-1")), encoding="utf-8")

    # No flag, no variable: ./etrusted-kit.db
    assert (await run("enqueue", str(path))).code == 0
    assert list(await entries(str(tmp_path / "etrusted-kit.db"))) == [key_of("e-1")]

    env_db = tmp_path / "from-env.db"
    monkeypatch.setenv("ETRUSTED_KIT_DB", str(env_db))
    assert (await run("enqueue", str(path))).code == 0
    assert list(await entries(str(env_db))) == [key_of("e-1")]

    # --db wins over the variable; sqlite:///name is relative to the working directory.
    path.write_text(jsonl(event("e-2")), encoding="utf-8")
    assert (await run("enqueue", str(path), "--db", "sqlite:///flag.db")).code == 0
    assert list(await entries(str(tmp_path / "flag.db"))) == [key_of("e-2")]
    assert list(await entries(str(env_db))) == [key_of("e-1")]

    status = await run("status", "--json")
    assert json.loads(status.out)["counts"]["pending"] == 1  # read from the variable's db


# -- status and entries ------------------------------------------------------------------------


async def test_status_json_counts_every_state(run: Run, db: str) -> None:
    await every_state(db)
    result = await run("status", "--db", db, "--json")
    assert result.code == 0
    data = json.loads(result.out)
    assert data["counts"] == {
        "pending": 2,
        "sending": 1,
        "in_doubt": 1,
        "delivered": 1,
        "dead": 1,
        "cancelled": 1,
    }
    assert HOUR - 5 <= data["oldest_pending_age_seconds"] <= HOUR + 300
    assert data["last_error"] == DEAD_REASON


async def test_status_text(run: Run, db: str) -> None:
    await every_state(db)
    result = await run("status", "--db", db)
    assert result.code == 0
    lines = result.out.splitlines()
    rows = {line.split()[0]: int(line.split()[1]) for line in lines[1:7]}
    assert rows == {
        "pending": 2,
        "sending": 1,
        "in_doubt": 1,
        "delivered": 1,
        "dead": 1,
        "cancelled": 1,
    }
    (age_line,) = [line for line in lines if "oldest pending:" in line]
    age = float(age_line.split(":")[1].removesuffix(" s"))
    assert HOUR - 5 <= age <= HOUR + 300
    assert f"  last error: {DEAD_REASON}" in lines


async def test_status_tells_due_work_from_held_back_work(run: Run, db: str) -> None:
    """An entry held back for a day is the oldest pending one, but nothing is late: the
    figure to alert on, how long due work has waited, says so."""
    now = time.time()
    async with Outbox(storage_from_url(db), clock=lambda: now - 2 * HOUR) as outbox:
        await outbox.enqueue(event("held-1"), send_after=now + 24 * HOUR)
    data = json.loads((await run("status", "--db", db, "--json")).out)
    assert 2 * HOUR - 5 <= data["oldest_pending_age_seconds"] <= 2 * HOUR + 300
    assert data["oldest_due_age_seconds"] is None
    assert "  due and waiting for: -" in (await run("status", "--db", db)).out

    async with Outbox(storage_from_url(db), clock=lambda: now - 600) as outbox:
        await outbox.enqueue(event("due-1"))
    data = json.loads((await run("status", "--db", db, "--json")).out)
    assert 2 * HOUR - 5 <= data["oldest_pending_age_seconds"] <= 2 * HOUR + 300
    assert 595 <= data["oldest_due_age_seconds"] <= 900
    (line,) = [ln for ln in (await run("status", "--db", db)).out.splitlines() if "due and" in ln]
    assert 595 <= float(line.split(":")[1].removesuffix(" s")) <= 900


async def test_status_of_an_empty_outbox(run: Run, db: str) -> None:
    missing = await run("status", "--db", db)
    assert missing.code == 1
    assert "does not exist" in missing.err  # a mistyped --db is not an empty outbox
    assert not Path(db).exists()
    async with SQLiteStorage(db):
        pass
    data = json.loads((await run("status", "--db", db, "--json")).out)
    assert set(data["counts"].values()) == {0}
    assert len(data["counts"]) == 6
    assert data["oldest_pending_age_seconds"] is None
    assert data["oldest_due_age_seconds"] is None
    assert data["last_error"] is None
    text = (await run("status", "--db", db)).out
    assert "  oldest pending: -" in text
    assert "  last error: -" in text


@pytest.mark.parametrize(
    ("state", "refs"),
    [
        ("pending", ["pending-1", "pending-2"]),
        ("delivered", ["delivered-1"]),
        ("in_doubt", ["in-doubt-1"]),
        ("dead", ["dead-1"]),
        ("cancelled", ["cancelled-1"]),
    ],
)
async def test_entries_json_by_state_without_customer_data(
    run: Run, db: str, state: str, refs: list[str]
) -> None:
    await every_state(db)
    result = await run("entries", "--db", db, "--state", state, "--json")
    assert result.code == 0
    rows = json_lines(result.out)
    assert [r["key"] for r in rows] == [key_of(ref) for ref in refs]
    for row in rows:
        assert {"key", "state", "event_ref", "attempts", "last_error"} <= set(row)
        assert row["state"] == state
        assert "payload" not in row
    assert "@" not in result.out  # no e-mail, not even inside another field
    assert "Anna" not in result.out
    if state == "delivered":
        assert rows[0]["event_ref"] == "evt-test-1"
        assert rows[0]["attempts"] == 1
    if state == "dead":
        assert rows[0]["last_error"] == DEAD_REASON
    if state == "in_doubt":
        assert rows[0]["last_error"] == "POST timed out"


async def test_entries_lists_everything_without_state(run: Run, db: str) -> None:
    await every_state(db)
    result = await run("entries", "--db", db)
    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) == 7
    (delivered,) = [line for line in lines if line.startswith("delivered ")]
    assert key_of("delivered-1") in delivered
    assert "ref=evt-test-1" in delivered
    assert "@" not in result.out


# -- dead ------------------------------------------------------------------------------------


async def test_dead_list_retry_and_drop_named_keys(run: Run, db: str) -> None:
    await make_dead(db, ["d-1", "d-2", "d-3"])

    listed = await run("dead", "list", "--db", db)
    assert listed.code == 0
    assert listed.out.splitlines() == [f"{key_of(r)}\trejected {r}" for r in ("d-1", "d-2", "d-3")]
    as_json = json_lines((await run("dead", "list", "--db", db, "--json")).out)
    assert [(r["key"], r["state"]) for r in as_json] == [
        (key_of(r), "dead") for r in ("d-1", "d-2", "d-3")
    ]

    retried = await run("dead", "retry", key_of("d-1"), "--db", db)
    assert (retried.code, retried.out) == (0, "1 dead entries are pending again\n")
    # Named keys that are not dead (any more, or at all) are named with their state and fail
    # the command; the dead ones among them are still retried.
    again = await run("dead", "retry", key_of("d-1"), "no-such-key", key_of("d-3"), "--db", db)
    assert again.code == 1
    assert again.out == "1 dead entries are pending again\n"
    assert again.err.splitlines() == [
        f"etrusted-kit: {key_of('d-1')}: not dead, it is pending",
        "etrusted-kit: no-such-key: unknown key",
    ]

    dropped = await run("dead", "drop", key_of("d-2"), "--db", db)
    assert dropped.code == 0
    assert dropped.out.startswith("1 dead entries dropped")

    stored = await entries(db)
    assert stored[key_of("d-1")].state is State.PENDING
    assert stored[key_of("d-1")].payload is not None
    assert stored[key_of("d-2")].state is State.CANCELLED
    assert stored[key_of("d-2")].payload is None
    assert stored[key_of("d-3")].state is State.PENDING


async def test_dead_retry_names_a_dead_key_whose_payload_is_gone(run: Run, db: str) -> None:
    await make_dead(db, ["d-1"])
    # No command leaves a dead entry without its payload; an outbox written by an older
    # version may hold one.
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE etk_entries SET payload = NULL WHERE key = ?", (key_of("d-1"),))
    result = await run("dead", "retry", key_of("d-1"), "--db", db)
    assert result.code == 1
    assert f"{key_of('d-1')}: dead, but its payload was purged" in result.err
    assert (await counts(db))[State.DEAD] == 1


@pytest.mark.parametrize("action", ["retry", "drop"])
async def test_dead_refuses_without_keys_or_all(run: Run, db: str, action: str) -> None:
    await make_dead(db, ["d-1"])
    result = await run("dead", action, "--db", db)
    assert result.code == 2
    assert "name KEYs or pass --all" in result.err
    assert (await counts(db))[State.DEAD] == 1


@pytest.mark.parametrize("action", ["retry", "drop"])
async def test_dead_refuses_keys_together_with_all(run: Run, db: str, action: str) -> None:
    """Named keys with ``--all`` are a contradiction, not a request for all: nothing changes,
    so a stray ``--all`` cannot drop every dead entry's payload when one key was meant."""
    await make_dead(db, ["d-1", "d-2"])
    result = await run("dead", action, key_of("d-1"), "--all", "--db", db)
    assert result.code == 2
    assert "name KEYs or pass --all, not both" in result.err
    assert (await counts(db))[State.DEAD] == 2


async def test_dead_retry_all(run: Run, db: str) -> None:
    await make_dead(db, ["d-1", "d-2"])
    await enqueue(db, ["p-1"])
    result = await run("dead", "retry", "--all", "--db", db)
    assert (result.code, result.out) == (0, "2 dead entries are pending again\n")
    got = await counts(db)
    assert (got[State.PENDING], got[State.DEAD]) == (3, 0)
    assert (await run("dead", "list", "--db", db)).out == ""


async def test_dead_drop_all(run: Run, db: str) -> None:
    await make_dead(db, ["d-1", "d-2"])
    await enqueue(db, ["p-1"])
    result = await run("dead", "drop", "--all", "--db", db)
    assert result.code == 0
    assert result.out.startswith("2 dead entries dropped")
    stored = await entries(db)
    assert {k: e.state for k, e in stored.items()} == {
        key_of("d-1"): State.CANCELLED,
        key_of("d-2"): State.CANCELLED,
        key_of("p-1"): State.PENDING,
    }
    assert stored[key_of("d-1")].payload is None
    assert stored[key_of("p-1")].payload is not None


async def _with_attempt_log(db: str) -> str:
    """One entry that was rate limited once, then delivered: two lines in its attempt log."""
    await enqueue(db, ["a-1"])
    async with Outbox.from_url(db) as outbox:
        now = time.time()
        (c,) = await outbox.storage.claim(owner="t", limit=1, lease_seconds=60, now=now)
        deferred = AttemptRecord(
            attempt=c.attempt,
            kind=AttemptKind.DEFERRED,
            started_at=1_700_000_000.0,
            duration_ms=12.3,
            outcome="deferred",
            http_status=429,
            error="HTTP 429: slow down",
        )
        retry = Completion(c.key, c.attempt, Retry(due_at=now, error="HTTP 429"), deferred)
        await outbox.storage.finish([retry], now=now)
        (c,) = await outbox.storage.claim(owner="t", limit=1, lease_seconds=60, now=now + 1)
        sent = attrs.evolve(
            deferred,
            attempt=c.attempt,
            kind=AttemptKind.SEND,
            outcome="delivered",
            http_status=202,
            error=None,
            started_at=1_700_000_060.0,
        )
        done = Completion(c.key, c.attempt, Delivered("evt-a-1"), sent)
        await outbox.storage.finish([done], now=now + 1)
    return key_of("a-1")


async def test_entries_attempts_shows_one_entrys_log(run: Run, db: str) -> None:
    """An operator reads why an entry took long: every attempt, its status and error."""
    key = await _with_attempt_log(db)
    text = await run("entries", "--attempts", key, "--db", db)
    assert text.code == 0
    header, first, second = text.out.splitlines()
    assert header.split() == ["attempt", "kind", "started_at", "ms", "outcome", "http", "error"]
    assert first.split()[:6] == ["1", "deferred", "2023-11-14T22:13:20Z", "12", "deferred", "429"]
    assert first.endswith("HTTP 429: slow down")
    assert second.split() == ["2", "send", "2023-11-14T22:14:20Z", "12", "delivered", "202"]

    as_json = json_lines((await run("entries", "--attempts", key, "--json", "--db", db)).out)
    assert [(r["attempt"], r["kind"], r["outcome"], r["http_status"]) for r in as_json] == [
        (1, "deferred", "deferred", 429),
        (2, "send", "delivered", 202),
    ]
    assert as_json[0]["error"] == "HTTP 429: slow down"
    assert as_json[0]["started_at"] == 1_700_000_000.0


async def test_entries_attempts_of_an_unknown_key_fails(run: Run, db: str) -> None:
    await enqueue(db, ["a-1"])
    result = await run("entries", "--attempts", "no-such-key", "--db", db)
    assert result.code == 1
    assert "no outbox entry with key 'no-such-key'" in result.err


# -- flush -----------------------------------------------------------------------------------


async def test_flush_once_delivers_and_records_the_sandboxs_refs(
    run: Run, db: str, env: SandboxServer
) -> None:
    refs = [f"f-{i}" for i in range(12)]
    await enqueue(db, refs)

    result = await run("flush", "--once", "--db", db, *FAST_FLUSH)

    assert result.code == 0, result.err
    stats = json.loads(result.err.splitlines()[-1])
    assert stats["delivered"] == 12
    rows = json_lines((await run("entries", "--db", db, "--json")).out)
    assert {r["state"] for r in rows} == {"delivered"}
    accepted = env.sandbox.accepted_events()
    assert len(accepted) == 12
    assert {r["event_ref"] for r in rows} == {a.event_ref for a in accepted}
    by_reference = {a.transaction_reference: a.event_ref for a in accepted}
    assert {r["transaction_reference"]: r["event_ref"] for r in rows} == by_reference


async def test_flush_drain_waits_through_retries(run: Run, db: str, env: SandboxServer) -> None:
    await enqueue(db, ["r-1", "r-2"])
    env.sandbox.add_fault(Fault(kind=FaultKind.STATUS, method="POST", path="/events", times=2))
    result = await run("flush", "--drain", "--db", db, *FAST_FLUSH)
    assert result.code == 0, result.err
    got = await counts(db)
    assert got[State.DELIVERED] == 2
    assert json.loads(result.err.splitlines()[-1])["retried"] == 2
    assert len(env.sandbox.accepted_events()) == 2


@pytest.mark.parametrize(
    ("lease", "timeout"),
    [("10", "5"), ("20", None), ("4", "3")],
    ids=["equal-half", "default-timeout", "above-half"],
)
async def test_flush_refuses_a_lease_too_short_for_the_request_timeout(
    run: Run, db: str, env: SandboxServer, lease: str, timeout: str | None
) -> None:
    argv = ["flush", "--once", "--db", db, "--lease-seconds", lease]
    if timeout is not None:
        argv += ["--request-timeout", timeout]
    result = await run(*argv)
    assert result.code == 1
    assert result.err.startswith(f"etrusted-kit: error: --lease-seconds ({lease}) must be more")
    assert "twice the request timeout" in result.err
    assert not Path(db).exists()  # refused before anything was opened
    assert env.sandbox.request_count("*", "/") == 0


async def test_flush_accepts_a_lease_just_over_twice_the_timeout(
    run: Run, db: str, env: SandboxServer
) -> None:
    await enqueue(db, ["l-1"])
    result = await run(
        "flush", "--once", "--db", db, "--lease-seconds", "10.5", "--request-timeout", "5"
    )
    assert result.code == 0, result.err
    assert (await counts(db))[State.DELIVERED] == 1


@pytest.mark.parametrize(
    ("present", "missing"),
    [
        ({}, "ETRUSTED_CLIENT_ID and ETRUSTED_CLIENT_SECRET"),
        ({"ETRUSTED_CLIENT_ID": "someone"}, "ETRUSTED_CLIENT_SECRET"),
        ({"ETRUSTED_CLIENT_SECRET": "s3cr3t-value"}, "ETRUSTED_CLIENT_ID"),
    ],
    ids=["both", "secret", "id"],
)
@pytest.mark.parametrize("command", [["flush", "--once"], ["channels", "list"]])
async def test_missing_credentials_are_named(
    run: Run,
    db: str,
    monkeypatch: pytest.MonkeyPatch,
    present: dict[str, str],
    missing: str,
    command: list[str],
) -> None:
    for name, value in present.items():
        monkeypatch.setenv(name, value)
    argv = [*command, "--db", db] if command[0] == "flush" else command
    result = await run(*argv)
    assert result.code == 1
    assert result.err.startswith(f"etrusted-kit: error: missing {missing}: ")
    assert result.err.count("\n") == 1
    assert "s3cr3t-value" not in result.err


def _subprocess_env(server: SandboxServer, db: str) -> dict[str, str]:
    return {**os.environ, **sandbox_env(server), "ETRUSTED_KIT_DB": db}


async def _wait_for_delivery(db: str, proc: asyncio.subprocess.Process, err: Path) -> None:
    """Poll the outbox until the flusher process has delivered something (or fail)."""
    async with Outbox.from_url(db) as outbox:
        async with asyncio.timeout(PROCESS_DEADLINE):
            while (await outbox.stats()).counts[State.DELIVERED] == 0:
                if proc.returncode is not None:
                    pytest.fail(f"flush exited early with {proc.returncode}: {err.read_text()}")
                await asyncio.sleep(0.02)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_flush_process_stops_gracefully_on_signal(
    db: str, tmp_path: Path, sandbox: SandboxServer, signum: signal.Signals
) -> None:
    await enqueue(db, [f"s-{i}" for i in range(150)])
    # Every answer takes 0.1 s: draining would take over 7 s, so the signal lands mid-work,
    # with POSTs in flight that a graceful stop must let finish (well inside --grace-period).
    slow = Fault(kind=FaultKind.LATE_ANSWER, method="POST", path="/events", delay=0.1)
    sandbox.sandbox.add_fault(slow)
    err_path = tmp_path / "flush.stderr"
    with err_path.open("wb") as err_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kit",
            "flush",
            "--concurrency",
            "2",
            *FAST_FLUSH,
            env=_subprocess_env(sandbox, db),
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err_file,
        )
        try:
            await _wait_for_delivery(db, proc, err_path)
            proc.send_signal(signum)
            async with asyncio.timeout(PROCESS_DEADLINE):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    stderr = err_path.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    stats = json.loads(stderr.splitlines()[-1])  # printed only after a graceful stop
    assert stats["flusher"]
    got = await counts(db)
    # Nothing left half-done: no lease held, nothing in doubt, every POST's answer recorded.
    assert got[State.SENDING] == 0
    assert got[State.IN_DOUBT] == 0
    assert got[State.DELIVERED] == stats["delivered"] >= 1
    assert got[State.DELIVERED] + got[State.PENDING] == 150
    assert got[State.PENDING] > 0  # it stopped; it did not drain first
    assert stats["in_doubt"] == 0
    delivered = await entries(db, State.DELIVERED)
    accepted = sandbox.sandbox.accepted_events()
    assert {e.event_ref for e in delivered.values()} == {a.event_ref for a in accepted}
    assert len(accepted) == len(delivered)


# -- account setup -----------------------------------------------------------------------------


async def test_event_types_list_table_and_json(run: Run, env: SandboxServer) -> None:
    table = await run("event-types", "list")
    assert table.code == 0
    header, *rows = table.out.splitlines()
    assert header.split() == ["id", "name", "active"]
    assert sorted((r.split()[1], r.split()[2]) for r in rows) == [
        ("checkout", "True"),
        (EVENT_TYPE, "True"),
    ]

    as_json = json_lines((await run("event-types", "list", "--json")).out)
    by_name = {r["name"]: r for r in as_json}
    assert set(by_name) == {"checkout", EVENT_TYPE}
    state = env.sandbox.state
    assert by_name[EVENT_TYPE]["id"] == state.event_type_by_name[EVENT_TYPE]


async def test_event_types_create_activate_deactivate(run: Run, env: SandboxServer) -> None:
    state = env.sandbox.state
    created = await run("event-types", "create", "newsletter_signup")
    assert created.code == 0, created.err
    type_id = state.event_type_by_name["newsletter_signup"]
    assert state.event_types[type_id].active
    assert created.out.splitlines()[1].split() == [type_id, "newsletter_signup", "True"]

    again = await run("event-types", "create", "newsletter_signup")
    assert again.code == 1
    assert again.err.startswith("etrusted-kit: error: ")
    assert "409" in again.err

    off = await run("event-types", "deactivate", "newsletter_signup")
    assert off.code == 0
    assert not state.event_types[type_id].active
    assert off.out.splitlines()[1].split() == [type_id, "newsletter_signup", "False"]

    on = await run("event-types", "activate", "newsletter_signup")
    assert on.code == 0
    assert state.event_types[type_id].active

    missing = await run("event-types", "deactivate", "no_such_type")
    assert missing.code == 1
    assert missing.err == "etrusted-kit: error: no event type named 'no_such_type'\n"


async def test_invite_settings_list_for_an_event_type(run: Run, env: SandboxServer) -> None:
    type_id = env.sandbox.state.event_type_by_name[EVENT_TYPE]
    result = await run("invite-settings", "list", "--event-type", EVENT_TYPE, "--json")
    assert result.code == 0, result.err
    rows = json_lines(result.out)
    assert sorted(r["channelId"] for r in rows) == sorted(SEEDED_CHANNEL_IDS)
    assert {r["eventTypeId"] for r in rows} == {type_id}

    table = await run("invite-settings", "list", "--event-type", EVENT_TYPE)
    header, *lines = table.out.splitlines()
    assert header.split() == ["id", "channelId", "eventTypeId", "enabled"]
    assert sorted(line.split()[1] for line in lines) == sorted(SEEDED_CHANNEL_IDS)

    everything = json_lines((await run("invite-settings", "list", "--json")).out)
    assert len(everything) == 2 * len(SEEDED_CHANNEL_IDS)  # checkout and ours

    unknown = await run("invite-settings", "list", "--event-type", "no_such_type")
    assert unknown.code == 1
    assert "no event type named 'no_such_type'" in unknown.err


async def test_invite_settings_enable_and_disable(run: Run, env: SandboxServer) -> None:
    """A type created through the API starts with invites off in every channel."""
    assert (await run("event-types", "create", "review_request")).code == 0
    state = env.sandbox.state
    type_id = state.event_type_by_name["review_request"]

    def enabled() -> dict[str, bool]:
        return {
            s.channel_id: s.enabled for s in state.settings.values() if s.event_type_id == type_id
        }

    assert enabled() == dict.fromkeys(SEEDED_CHANNEL_IDS, False)
    on = await run("invite-settings", "enable", "review_request")
    assert on.code == 0, on.err
    assert enabled() == dict.fromkeys(SEEDED_CHANNEL_IDS, True)
    assert sorted(line.split()[3] for line in on.out.splitlines()[1:]) == ["True", "True"]

    first, second = SEEDED_CHANNEL_IDS
    off = await run("invite-settings", "disable", "review_request", "--channel-id", second)
    assert off.code == 0, off.err
    assert enabled() == {first: True, second: False}

    missing = await run("invite-settings", "enable", "no_such_type")
    assert missing.code == 1
    assert missing.err == "etrusted-kit: error: no event type named 'no_such_type'\n"


async def test_channels_list_table_and_json(run: Run, env: SandboxServer) -> None:
    table = await run("channels", "list")
    assert table.code == 0
    header, *lines = table.out.splitlines()
    assert header.split() == ["id", "name", "locale", "url"]
    assert [line.split()[0] for line in lines] == list(SEEDED_CHANNEL_IDS)
    rows = json_lines((await run("channels", "list", "--json")).out)
    assert [r["id"] for r in rows] == list(SEEDED_CHANNEL_IDS)
    assert all(r["url"].startswith("https://") for r in rows)


# -- customer data ---------------------------------------------------------------------------


async def test_purge_keeps_keys_and_refs(run: Run, db: str, env: SandboxServer) -> None:
    await enqueue(db, ["p-1", "p-2", "p-3"])
    assert (await run("flush", "--once", "--db", db, *FAST_FLUSH)).code == 0
    await enqueue(db, ["p-4"])  # still pending: its payload is what will be sent

    young = await run("purge", "--older-than-days", "1", "--db", db)
    assert young.code == 0
    assert young.out.startswith("payloads removed from 0 finished entries")
    result = await run("purge", "--older-than-days", "0", "--db", db)
    assert result.code == 0
    assert result.out.startswith("payloads removed from 3 finished entries")

    stored = await entries(db)
    refs = {a.transaction_reference: a.event_ref for a in env.sandbox.accepted_events()}
    for ref in ("p-1", "p-2", "p-3"):
        assert stored[key_of(ref)].payload is None
        assert stored[key_of(ref)].event_ref == refs[ref]
    assert stored[key_of("p-4")].payload is not None
    rows = json_lines((await run("entries", "--db", db, "--state", "delivered", "--json")).out)
    assert {r["key"]: r["event_ref"] for r in rows} == {key_of(r): refs[r] for r in refs}


async def test_forget_removes_one_customers_payloads(run: Run, db: str) -> None:
    anna = "Anna.Schmidt@example.com"
    await enqueue(db, ["a-1"], email=anna)
    async with Outbox.from_url(db) as outbox:  # a-1 delivered
        now = time.time()
        (c,) = await outbox.storage.claim(owner="t", limit=1, lease_seconds=60, now=now)
        await outbox.storage.finish([Completion(c.key, c.attempt, Delivered("evt-a"))], now=now)
    await enqueue(db, ["a-2"], email=anna)
    await enqueue(db, ["b-1"], email="ben@example.com")

    result = await run("forget", "  anna.schmidt@EXAMPLE.com ", "--db", db)
    assert result.code == 0
    assert result.out == "payloads removed: 2; still sending (run again): 0\n"
    stored = await entries(db)
    assert stored[key_of("a-1")].state is State.DELIVERED
    assert stored[key_of("a-1")].event_ref == "evt-a"
    assert stored[key_of("a-1")].payload is None
    assert stored[key_of("a-2")].state is State.CANCELLED
    assert stored[key_of("a-2")].payload is None
    assert stored[key_of("b-1")].state is State.PENDING
    assert stored[key_of("b-1")].payload is not None


async def test_forget_while_sending_asks_to_run_again(run: Run, db: str) -> None:
    await enqueue(db, ["b-1"], email="ben@example.com")
    async with Outbox.from_url(db) as outbox:
        await outbox.storage.claim(owner="t", limit=1, lease_seconds=60, now=time.time())
    result = await run("forget", "ben@example.com", "--db", db)
    assert result.code == 1
    assert result.out == "payloads removed: 0; still sending (run again): 1\n"
    assert (await entries(db))[key_of("b-1")].payload is not None


# -- demo and migration ----------------------------------------------------------------------


async def test_demo(run: Run, tmp_path: Path) -> None:
    demo_db = str(tmp_path / "demo.db")
    kit_level = logging.getLogger("kit").level
    result = await run("demo", "--events", "40", "--db", demo_db)
    assert logging.getLogger("kit").level == kit_level  # no leak into the calling process
    assert result.code == 0, result.out + result.err
    assert "  exactly once      OK" in result.out
    # 40 events enqueued directly, and 3 invites from the Shopify webhooks (kit.demo_webhooks).
    assert "  sandbox accepted  43 events" in result.out
    assert "and 4 through the Shopify intake" in result.out
    status = json.loads((await run("status", "--db", demo_db, "--json")).out)
    assert status["counts"]["delivered"] == 43
    assert status["counts"]["dead"] == 3  # the events of the type switched off mid-run
    assert status["counts"]["cancelled"] == 1  # the order cancelled within the hold-back
    assert status["counts"]["pending"] == status["counts"]["in_doubt"] == 0
    # What each Shopify webhook became: its HTTP status, the journal's decision, the entry's state.
    webhooks = [" ".join(line.split()) for line in result.out.splitlines() if "    #10" in line]
    assert webhooks == [
        "#1001 fulfilled 200 accepted enqueue -> enqueued; entry delivered",
        "#1002 fulfilled 200 accepted enqueue -> enqueued; entry delivered",
        "#1003 fulfilled 200 accepted enqueue -> enqueued; entry delivered",
        "#1001 again (a retry) 200 duplicate nothing new in the journal",
        "#1004 altered after signing 401 bad_signature nothing new in the journal",
        "#1005 fulfilled, a test order 200 accepted skipped -> recorded (test_order)",
        "#1006 fulfilled 200 accepted enqueue -> enqueued; entry cancelled",
        "#1006 cancelled in the hold-back 200 accepted cancel -> cancelled (cancelled); entry"
        " cancelled",
    ]


async def test_migrate_outbox(run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    await every_state("sqlite:///a.db")

    # ``sending-1`` holds a live lease: a flusher seems to be at work on the source.
    refused = await run("migrate-outbox", "--from", "sqlite:///a.db", "--to", "sqlite:///b.db")
    assert refused.code == 1
    assert "leased by a running flusher" in refused.err
    assert key_of("sending-1") in refused.err

    argv = ["migrate-outbox", "--from", "sqlite:///a.db", "--to", "sqlite:///b.db", "--force"]
    result = await run(*argv)
    assert result.code == 0, result.err
    assert result.out == (
        "copied 7 entries (cancelled=1, dead=1, delivered=1, in_doubt=1, pending=2, sending=1);"
        " 0 already present in the target; 0 journal rows and 0 feed checkpoints copied\n"
    )
    source, target = await entries(str(tmp_path / "a.db")), await entries(str(tmp_path / "b.db"))
    assert {k: (e.state, e.event_ref, e.attempt, e.payload) for k, e in target.items()} == {
        k: (e.state, e.event_ref, e.attempt, e.payload) for k, e in source.items()
    }

    again = await run(*argv)
    assert again.code == 0
    assert again.out.startswith("copied 0 entries (")
    assert again.out.endswith(
        "; 7 already present in the target; 0 journal rows and 0 feed checkpoints copied\n"
    )


# -- errors and -v -----------------------------------------------------------------------------


async def test_traceback_only_with_verbose(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    unopenable = str(tmp_path / "no-such-dir" / "x.db")
    events = tmp_path / "events.jsonl"
    events.write_text("", encoding="utf-8")
    plain, verbose, chained, chained_verbose = await asyncio.gather(
        run_kit("flush", "--once", "--db", db, cwd=tmp_path),
        run_kit("-v", "flush", "--once", "--db", db, cwd=tmp_path),
        run_kit("enqueue", str(events), "--db", unopenable, cwd=tmp_path),
        run_kit("-v", "enqueue", str(events), "--db", unopenable, cwd=tmp_path),
    )
    error = "etrusted-kit: error: missing ETRUSTED_CLIENT_ID and ETRUSTED_CLIENT_SECRET: "
    assert plain.code == 1
    assert plain.err.startswith(error)
    assert plain.err.count("\n") == 1  # one line, no traceback

    assert verbose.code == 1
    assert "Traceback (most recent call last)" in verbose.err
    assert "kit.errors.ConfigError: missing ETRUSTED_CLIENT_ID" in verbose.err
    assert error in verbose.err

    # A driver error is named by its cause, still without a traceback unless -v.
    assert chained.code == 1
    assert chained.err.startswith(f"etrusted-kit: error: cannot open SQLite database {unopenable}")
    assert "\n  caused by: OperationalError: " in chained.err
    assert "Traceback" not in chained.err
    assert chained_verbose.code == 1
    assert "Traceback (most recent call last)" in chained_verbose.err
    assert "sqlite3.OperationalError" in chained_verbose.err


async def test_durability_reaches_the_sqlite_backend(
    run: Run, db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kit.outbox.sqlite import SQLiteStorage

    seen: list[str] = []
    original = SQLiteStorage.__init__

    def spy(self: SQLiteStorage, target: Any, **options: Any) -> None:
        seen.append(options.get("durability", "normal"))
        original(self, target, **options)

    monkeypatch.setattr(SQLiteStorage, "__init__", spy)
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(event("e-1")), encoding="utf-8")
    assert (await run("enqueue", str(path), "--db", db, "--durability", "full")).code == 0
    assert (await run("enqueue", str(path), "--db", db)).code == 0
    assert seen == ["full", "normal"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--db", "postgresql://nobody@127.0.0.1:1/x", "--durability", "full"], "SQLite"),
        (["--pool-size", "3"], "PostgreSQL"),
    ],
)
async def test_storage_options_for_the_wrong_backend_are_refused(
    run: Run, db: str, tmp_path: Path, argv: list[str], message: str
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(event("e-1")), encoding="utf-8")
    args = argv if "--db" in argv else ["--db", db, *argv]
    result = await run("enqueue", str(path), *args)
    assert result.code == 1
    assert f"applies to {message} outboxes only" in result.err


# -- demo: refuses an outbox in use ---------------------------------------------------------


async def test_demo_refuses_a_db_that_already_holds_entries(run: Run, tmp_path: Path) -> None:
    """The demo refuses an outbox that already holds entries (its check would compare them with a
    fresh sandbox) and leaves the file as it was."""
    path = str(tmp_path / "demo.db")
    first = await run("demo", "--db", path, "--events", "10")
    assert first.code == 0, first.out
    before = await counts(path)

    second = await run("demo", "--db", path, "--events", "10")

    assert second.code == 1
    assert "the demo needs an empty outbox" in second.err
    assert "FAILED" not in second.out
    assert await counts(path) == before
