"""``etrusted-kit enqueue``: bad input is counted, not a traceback, and customer data stays out
of the log. The ``-vv`` check runs a real ``python -m kit`` process, since only a real process
has a real stderr.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from builders import event
from cli_helpers import Run, counts

from kit.outbox.types import State

DEADLINE = 30.0  # only a hung process gets anywhere near it


async def test_enqueue_counts_a_deeply_nested_line_as_invalid_and_keeps_the_rest(
    run: Run, db: str, tmp_path: Path
) -> None:
    """A JSON line nested too deeply to parse counts as one invalid line, named by file and line,
    and the valid lines are stored all the same."""
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps(event("ok-1")) + "\n" + "[" * 100_000 + "]" * 100_000 + "\n")
    result = await run("enqueue", str(path), "--db", db)
    assert result.code == 1
    assert f"{path}:2: invalid JSON: nested too deeply" in result.err
    assert "enqueued 1, duplicate 0, invalid 1" in result.out
    assert (await counts(db))[State.PENDING] == 1


async def test_enqueue_vv_keeps_customer_emails_out_of_the_log(tmp_path: Path) -> None:
    """Even at ``-vv`` no customer e-mail reaches the log (stderr, journald under systemd)."""
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
