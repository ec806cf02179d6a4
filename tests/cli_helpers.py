"""What the CLI tests share: one command's exit code and output, captured in process."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import pytest

from kit.cli import cli


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
