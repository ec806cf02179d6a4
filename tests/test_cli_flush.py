"""``etrusted-kit flush``: what it refuses before it claims anything, and its exit code.

One-shot runs against a real sandbox on loopback and a SQLite file: cron and CI read the exit
code, so a run that delivered nothing must not exit 0, and a fixed setup must not fail.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from builders import EVENT_TYPE
from cli_helpers import Run, counts, enqueue, point_at

from kit.outbox.types import State
from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import running_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(seed=5, event_types=("checkout", EVENT_TYPE))) as s:
        yield s


# -- refused before anything is claimed ------------------------------------------------


@pytest.mark.parametrize("api_url", ["http://:8625", "https://api.etrusted.com:443x"])
async def test_flush_refuses_a_malformed_api_url_before_claiming(
    run: Run, db: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, api_url: str
) -> None:
    """A malformed API URL is refused before anything is claimed: exit 1 with the setting named,
    and every entry still pending (none stranded in 'sending')."""
    point_at(monkeypatch, sandbox, ETRUSTED_API_URL=api_url)
    await enqueue(db, ["u-1", "u-2", "u-3"])

    result = await run("flush", "--once", "--db", db)

    got = await counts(db)
    assert got[State.SENDING] == 0, f"stranded in 'sending': {got}; stderr={result.err!r}"
    assert got[State.PENDING] == 3
    assert result.code == 1
    assert "api_url" in result.err


@pytest.mark.parametrize("flag", ["--lease-seconds", "--request-timeout"])
async def test_flush_refuses_nan_for_its_lease_and_timeout(
    run: Run, db: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, flag: str
) -> None:
    """NaN is refused like any other number that is not finite and > 0, so a run never starts
    with a lease or timeout no comparison can check."""
    point_at(monkeypatch, sandbox)
    result = await run("flush", "--once", "--db", db, flag, "nan")
    assert result.code == 1, result.err
    assert "must be a finite number > 0, got nan" in result.err


# -- the exit code of a one-shot run ---------------------------------------------------


async def test_flush_once_exits_1_when_the_credentials_are_refused(
    run: Run, db: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-shot run whose credentials eTrusted refuses exits 1 (cron and CI see a failure),
    names the problem and still prints its counters."""
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
