"""What the CLI tests share: one command's exit code and output, captured in process, and the
sandbox and outbox around it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import pytest
from builders import event

from kit.cli import cli
from kit.outbox import Outbox
from kit.outbox.types import State
from kit.sandbox import SandboxServer


@attrs.frozen
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Awaitable[Result]]


def capture_runs(capsys: pytest.CaptureFixture[str]) -> Run:
    """``await run("status", "--db", db)``: exit code and exactly this command's output."""

    async def _run(*argv: str) -> Result:
        capsys.readouterr()
        code = await cli(list(argv))
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return _run


def point_at(monkeypatch: pytest.MonkeyPatch, server: SandboxServer, **override: str) -> None:
    """Point the CLI's ``ETRUSTED_*`` variables at ``server``; ``override`` replaces some."""
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
    """Store one event per reference in the outbox at ``db``."""
    async with Outbox.from_url(db) as outbox:
        await outbox.enqueue_many(event(r) for r in refs)


async def counts(db: str) -> dict[State, int]:
    """How many entries of the outbox at ``db`` are in each state."""
    async with Outbox.from_url(db) as outbox:
        return (await outbox.stats()).counts
