"""What the kit logs about a failure: one line per failure event, at the level it deserves.

A token failure is seen by the token provider, the client call that needed the token and the
flusher that made that call; only the provider logs it. The flusher logs what it decides (a
pause), once per pause, and a one-shot run that stops raises instead of logging.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from flusher_doubles import wait_until

from kit.client import ETrustedClient
from kit.errors import AuthenticationError, TokenUnavailableError, UnauthorizedError
from kit.flusher import Flusher, FlusherConfig
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import State
from kit.retry import Backoff
from kit.sandbox import SEEDED_CHANNEL_IDS, Fault, FaultKind, SandboxConfig, SandboxServer
from kit.testing import running_sandbox

TOKEN_PATH = "/oauth/token"
CONFIG = FlusherConfig(
    concurrency=4,
    lease_seconds=60.0,  # more than twice the client's request timeout (15 s)
    poll_interval=0.05,
    backoff=Backoff(base=0.01, cap=0.05),
    auth_pause=3600.0,
    check_event_types=False,
)


def event(i: int) -> dict[str, object]:
    return {
        "type": "order_shipped",
        "customer": {"email": f"buyer{i}@example.com"},
        "channel": {"id": SEEDED_CHANNEL_IDS[0], "type": "etrusted"},
        "transaction": {"reference": f"order-{i}"},
        "system": "tests",
        "systemVersion": "1.0",
    }


def actions(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == action]


def loud(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The kit's WARNING-or-worse lines, by action (the sandbox's own lines left out)."""
    return [
        getattr(r, "action", "?")
        for r in caplog.records
        if r.levelno >= logging.WARNING and not r.name.startswith("kit.sandbox")
    ]


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(seed=3, event_types=("order_shipped",))) as server:
        yield server


async def test_a_failed_refresh_is_one_line_for_all_its_waiters(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Ten calls waiting on one token request that fails: one WARNING, from kit.auth."""
    caplog.set_level(logging.DEBUG)
    server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=503, path=TOKEN_PATH))
    async with ETrustedClient(server.client_config()) as client:
        calls = [client.list_channels() for _ in range(10)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, TokenUnavailableError) for r in results)
    assert server.sandbox.request_count("POST", TOKEN_PATH) == 1
    assert loud(caplog) == ["token_request_failed"]
    (line,) = actions(caplog, "token_request_failed")
    assert line.levelno == logging.WARNING
    assert (line.status, line.kind, line.error) == (503, "retryable", "TokenUnavailableError")  # type: ignore[attr-defined]


async def test_a_401_and_its_refresh_are_one_line(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A rejected token that a refresh replaces is one INFO line, not one per layer."""
    async with ETrustedClient(server.client_config()) as client:
        await client.list_channels()
        server.sandbox.expire_tokens()
        caplog.set_level(logging.DEBUG)
        await client.list_channels()
    assert [
        r.levelno
        for r in caplog.records
        if r.name.startswith(("kit.auth", "kit.client")) and r.levelno >= logging.INFO
    ] == [logging.INFO]
    (line,) = actions(caplog, "token_rejected")
    assert line.operation == "list_channels"  # type: ignore[attr-defined]


async def test_refused_credentials_under_a_flusher_are_logged_once_per_failure(
    server: SandboxServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Workers meeting the same refusal: a line per failed token request, one pause line."""
    async with (
        ETrustedClient(server.client_config()) as client,
        Outbox(SQLiteStorage(tmp_path / "outbox.db")) as outbox,
    ):
        await outbox.enqueue_many([event(i) for i in range(4)])
        await asyncio.wait_for(Flusher(outbox, client, CONFIG).run(until_drained=True), 30)
        await outbox.enqueue_many([event(i) for i in range(4, 12)])
        server.sandbox.expire_tokens()
        server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=401, path=TOKEN_PATH))
        caplog.set_level(logging.DEBUG)
        before = server.sandbox.request_count("POST", TOKEN_PATH)

        flusher = Flusher(outbox, client, CONFIG)
        task = asyncio.create_task(flusher.run())
        await wait_until(lambda: flusher.stats.auth_pauses >= 1)
        flusher.stop()
        await asyncio.wait_for(task, 30)
        refused = server.sandbox.request_count("POST", TOKEN_PATH) - before
        assert (await outbox.stats()).counts[State.DELIVERED] == 4

    assert refused >= 1
    assert len(actions(caplog, "token_request_failed")) == refused
    (paused,) = actions(caplog, "auth_paused")
    assert paused.levelno == logging.ERROR
    assert set(loud(caplog)) == {"token_request_failed", "auth_paused"}


async def test_a_one_shot_run_stopped_by_refused_credentials_raises_without_logging_it(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller reports what run_once raises; the flusher does not log it first."""
    caplog.set_level(logging.DEBUG)
    config = server.client_config(client_secret="wrong")
    async with ETrustedClient(config) as client, Outbox.from_url("sqlite:///:memory:") as outbox:
        await outbox.enqueue(event(1))
        with pytest.raises(AuthenticationError) as stopped:
            await asyncio.wait_for(Flusher(outbox, client, CONFIG).run_once(), 30)
    assert isinstance(stopped.value, UnauthorizedError)
    assert len(actions(caplog, "auth_paused")) == 1
    assert set(loud(caplog)) == {"token_request_failed", "auth_paused"}
