"""What the CLI tests share: one command's exit code and output, captured in process, and the
sandbox and outbox around it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

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

PROCESS_DEADLINE = 30.0  # generous: only a hung process gets anywhere near it


async def run_kit(*argv: str, cwd: Path) -> Result:
    """``python -m kit ARGV`` as a real process with its output piped, as a service manager
    or a container runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kit",
        *argv,
        cwd=cwd,
        env=dict(os.environ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(PROCESS_DEADLINE):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


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
