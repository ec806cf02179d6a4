"""What the CLI tests share: one command's exit code and output, captured in process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from kit.cli import cli
from kit.sandbox import SEEDED_CHANNEL_IDS


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


def minimal_event(
    ref: str, *, email: str | None = None, type_: str = "order_shipped"
) -> dict[str, Any]:
    """The smallest valid event body, for the first seeded channel."""
    return {
        "type": type_,
        "customer": {"email": email or f"{ref}@example.com"},
        "channel": {"id": SEEDED_CHANNEL_IDS[0]},
        "transaction": {"reference": ref},
        "system": "my-shop",
        "systemVersion": "1.0",
    }
