"""Regression tests for defects an independent review found at the user-facing edges: the CLI,
the daemon, the sandbox and the demo. Each docstring says how the code went wrong before the fix.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Run, minimal_event

from kit.errors import ConfigError, ValidationError
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.outbox.types import State
from kit.sandbox import SEEDED_CHANNEL_IDS, Sandbox, SandboxConfig, SandboxServer
from kit.testing import running_sandbox

CHANNEL = SEEDED_CHANNEL_IDS[0]
EVENT_TYPE = "order_shipped"
DEADLINE = 30.0  # only a hung process gets anywhere near it


event = minimal_event


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(seed=5, event_types=("checkout", EVENT_TYPE))) as s:
        yield s


def point_at(monkeypatch: pytest.MonkeyPatch, server: SandboxServer, **override: str) -> None:
    values = {
        "ETRUSTED_API_URL": server.url,
        "ETRUSTED_TOKEN_URL": server.token_url,
        "ETRUSTED_CLIENT_ID": server.sandbox.config.client_id,
        "ETRUSTED_CLIENT_SECRET": server.sandbox.config.client_secret,
        **override,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


async def enqueue(db: str, refs: list[str]) -> None:
    async with Outbox.from_url(db) as outbox:
        await outbox.enqueue_many(event(r) for r in refs)


async def counts(db: str) -> dict[State, int]:
    async with Outbox.from_url(db) as outbox:
        return (await outbox.stats()).counts


# -- 1. a malformed API URL is refused before anything is claimed ---------------------------


@pytest.mark.parametrize("api_url", ["http://:8625", "https://api.etrusted.com:443x"])
async def test_flush_refuses_a_malformed_api_url_before_claiming(
    run: Run, db: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, api_url: str
) -> None:
    """ClientConfig only checked the http(s):// prefix. The client then raised ConfigError (not
    an ETrustedError) from the event-type check, each worker task died, its claim was never
    completed and the error was swallowed: exit 0, entries left 'sending'. (Any such error in a
    worker now also stops the flusher loudly; see test_flusher_review.py.)"""
    point_at(monkeypatch, sandbox, ETRUSTED_API_URL=api_url)
    await enqueue(db, ["u-1", "u-2", "u-3"])

    result = await run("flush", "--once", "--db", db)

    got = await counts(db)
    assert got[State.SENDING] == 0, f"stranded in 'sending': {got}; stderr={result.err!r}"
    assert got[State.PENDING] == 3
    assert result.code == 1
    assert "api_url" in result.err


# -- 2. flush --once fails when eTrusted refuses the credentials ------------------------------


async def test_flush_once_exits_1_when_the_credentials_are_refused(
    run: Run, db: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a wrong secret the one-shot run logged 'nothing more is sent in this run' and still
    exited 0, so cron or CI reported success while nothing was delivered."""
    point_at(monkeypatch, sandbox, ETRUSTED_CLIENT_SECRET="wrong-secret")
    await enqueue(db, ["c-1"])

    result = await run("flush", "--once", "--db", db)

    assert (await counts(db))[State.PENDING] == 1  # nothing was delivered
    assert result.code == 1, result.err
    assert "refuses the credentials" in result.err
    assert '"auth_pauses": 1' in result.err  # the counters are printed all the same


async def test_flush_once_succeeds_once_the_credentials_are_fixed(
    run: Run, db: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused credentials pause only the run they belong to: nothing is stored for the fleet
    and the refused entry stays due, so the next run with the secret fixed sends everything
    at once."""
    await enqueue(db, ["c-1"])
    point_at(monkeypatch, sandbox, ETRUSTED_CLIENT_SECRET="wrong-secret")
    assert (await run("flush", "--once", "--db", db)).code == 1
    point_at(monkeypatch, sandbox)  # the operator fixes the secret
    await enqueue(db, ["c-2"])
    fixed = await run("flush", "--once", "--db", db)
    assert fixed.code == 0, fixed.err
    assert (await counts(db))[State.DELIVERED] == 2
    assert json.loads((await run("status", "--db", db, "--json")).out)["holds"] == []


# -- 3. the demo refuses an outbox that already holds entries -------------------------------


async def test_demo_refuses_a_db_that_already_holds_entries(run: Run, tmp_path: Path) -> None:
    """A second demo on the same --db used to verify the first run's entries against its own
    fresh sandbox and report 'exactly once FAILED'. It now refuses, and leaves the file be."""
    path = str(tmp_path / "demo.db")
    first = await run("demo", "--db", path, "--events", "10")
    assert first.code == 0, first.out
    before = await counts(path)

    second = await run("demo", "--db", path, "--events", "10")

    assert second.code == 1
    assert "the demo needs an empty outbox" in second.err
    assert "FAILED" not in second.out
    assert await counts(path) == before


# -- 4. -vv keeps customer e-mails and payloads out of the log -------------------------------


async def test_enqueue_vv_keeps_customer_emails_out_of_the_log(tmp_path: Path) -> None:
    """`-vv` set the root logger to DEBUG, so aiosqlite logged each INSERT with its parameters:
    the whole event body, e-mail included, went to stderr (journald under systemd)."""
    email = "ada.lovelace@example.com"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kit",
        "-vv",
        "enqueue",
        "-",
        "--db",
        str(tmp_path / "o.db"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("ETRUSTED")},
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await proc.communicate((json.dumps(event("v-1", email=email)) + "\n").encode())
    assert proc.returncode == 0, err.decode()
    assert b"enqueued 1" in out
    assert email.encode() not in err, err.decode()[-600:]


# -- 5. `entries | head` ends quietly --------------------------------------------------------


async def test_entries_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    db = str(tmp_path / "big.db")
    await enqueue(db, [f"p-{i}" for i in range(3000)])  # far more than a pipe buffer of JSON
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kit",
        "entries",
        "--json",
        "--db",
        db,
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("ETRUSTED")},
    )
    os.close(write_end)
    assert proc.stderr is not None
    async with asyncio.timeout(DEADLINE):
        first = await asyncio.to_thread(os.read, read_end, 4096)  # what `| head -1` reads,
        assert first.startswith(b"{")
        os.close(read_end)  # ... before it exits
        err = await proc.stderr.read()
        await proc.wait()
    assert b"Traceback" not in err, err.decode()[-800:]


# -- 6. the sandbox seeds only event types the real API could have --------------------------


@pytest.mark.parametrize("name", ["OrderShipped", "order shipped", "all", "ab"])
def test_sandbox_refuses_to_seed_names_etrusted_refuses(name: str) -> None:
    """POST /event-types (sandbox and client alike) enforces the documented name pattern, but
    SandboxConfig.event_types / `etrusted-kit sandbox --event-type` seeded any string: a test
    suite seeded with 'OrderShipped' passed against the sandbox, while the type can never be
    created in eTrusted."""
    with pytest.raises(ConfigError, match="must be 3-255 characters"):
        Sandbox(SandboxConfig(event_types=("checkout", name)))


# -- 7. a deeply nested JSON line is an invalid line, not a traceback ------------------------


async def test_enqueue_counts_a_deeply_nested_line_as_invalid_and_keeps_the_rest(
    run: Run, db: str, tmp_path: Path
) -> None:
    """json.loads raises RecursionError (not JSONDecodeError) on deep nesting; it used to escape
    with a traceback, and the valid lines read before it were never written."""
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event("ok-1")) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    result = await run("enqueue", str(path), "--db", db)
    assert result.code == 1
    assert f"{path}:2: invalid JSON: nested too deeply" in result.err
    assert "enqueued 1, duplicate 0, invalid 1" in result.out
    assert (await counts(db))[State.PENDING] == 1


def test_an_event_nested_too_deeply_to_encode_is_a_validation_error() -> None:
    """Unknown top-level fields pass validation; one nested thousands deep made prepare()
    raise RecursionError from the encoder instead of the ValidationError callers handle."""
    body = event("deep-1")
    deep: list[Any] = []
    node = deep
    for _ in range(5000):
        node.append([])
        node = node[0]
    body["extra"] = deep
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        Outbox(InMemoryStorage()).prepare(body)


# -- 8. read-only commands refuse a PostgreSQL schema without an outbox ----------------------


@pytest.mark.postgres
async def test_status_on_a_mistyped_postgres_schema_refuses_and_creates_nothing(
    run: Run, pg_dsn: str, pg_schema: str
) -> None:
    """open_outbox() refused a missing SQLite file ('a mistyped --db must not answer all zeros
    from a database it just created'), but for PostgreSQL the read-only commands created the
    schema and its tables, and answered zeros."""
    import asyncpg

    result = await run("status", "--db", f"{pg_dsn}?schema={pg_schema}")

    conn = await asyncpg.connect(pg_dsn)
    try:
        created = await conn.fetchval(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", pg_schema
        )
    finally:
        await conn.close()
    assert created == 0, f"status created schema {pg_schema}: {result.out!r}"
    assert result.code == 1
    assert f"there is no outbox in schema {pg_schema!r}" in result.err


# -- 9. NaN is refused like any other non-positive number ---------------------------------


@pytest.mark.parametrize("flag", ["--lease-seconds", "--request-timeout"])
async def test_flush_refuses_nan_for_its_lease_and_timeout(
    run: Run, db: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    """`positive` (value <= 0) and the 'lease > 2 x timeout' check were both False for NaN, so
    `flush --lease-seconds nan` started; with a NaN lease a fast, accepted POST was recorded as
    'in_doubt: POST outlived its lease budget'."""
    point_at(monkeypatch, sandbox)
    result = await run("flush", "--once", "--db", db, flag, "nan")
    assert result.code == 1, result.err
    assert "must be a finite number > 0, got nan" in result.err
