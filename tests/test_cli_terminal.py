"""On a terminal the long commands show progress and ``status --watch`` redraws; piped, they
print only their result (a cron job's mail, a pipe into another tool).

Real processes on a pseudo-terminal (the ``pty`` module) and on pipes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import event

from kit.outbox import Outbox

DEADLINE = 60.0


@contextlib.contextmanager
def terminal() -> Iterator[tuple[int, int]]:
    """(main, child) of a 120-column pseudo-terminal (tqdm draws to the width)."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        yield main, child
    finally:
        for fd in (main, child):
            with contextlib.suppress(OSError):
                os.close(fd)


async def spawn(*argv: str, **streams: Any) -> asyncio.subprocess.Process:
    options: dict[str, Any] = {
        "stdin": asyncio.subprocess.DEVNULL,
        "stdout": asyncio.subprocess.PIPE,
        "stderr": asyncio.subprocess.PIPE,
    }
    options.update(streams)
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "kit", *argv, **options)


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    try:
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, (out or b"").decode(), (err or b"").decode()


def read_all(main: int) -> str:
    """What the child wrote to the terminal, once its side is closed."""
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child side is closed and everything was read
            break
        if not chunk:
            break
        shown += chunk
    return shown.decode(errors="replace")


async def read_until(main: int, text: str, count: int) -> str:
    """Read the terminal until ``text`` was drawn ``count`` times."""
    shown = ""
    async with asyncio.timeout(DEADLINE):
        while shown.count(text) < count:
            chunk = await asyncio.to_thread(os.read, main, 65536)
            shown += chunk.decode(errors="replace")
    return shown


@pytest.fixture
async def outbox_db(tmp_path: Path) -> Path:
    db = tmp_path / "outbox.db"
    async with Outbox.from_url(str(db)) as outbox:
        await outbox.enqueue_many(
            [event(f"order-{i}", email=f"b{i}@example.com") for i in range(50)]
        )
    return db


async def _watch_until(outbox_db: Path, text: str) -> tuple[str, int, str]:
    """``status --watch 0.2`` on a terminal until it shows ``text``, then SIGINT (Ctrl-C):
    what the terminal showed, the exit code and stderr."""
    with terminal() as (main, child):
        proc = await spawn("status", "--watch", "0.2", "--db", str(outbox_db), stdout=child)
        os.close(child)
        shown = await read_until(main, text, 2)
        proc.send_signal(signal.SIGINT)
        code, _, err = await finish(proc)
    return shown, code, err


async def test_status_watch_redraws_on_a_terminal_and_ctrl_c_exits_0(outbox_db: Path) -> None:
    """Two redraws at a short interval, then SIGINT (what Ctrl-C sends): exit 0."""
    shown, code, err = await _watch_until(outbox_db, "Ctrl-C to stop")
    assert code == 0, err
    assert "\x1b[H\x1b[2J" in shown
    assert "pending" in shown
    assert "every 0.2 s" in shown
    assert "Traceback" not in err


async def test_status_watch_of_a_moved_outbox_keeps_saying_where_it_went(
    outbox_db: Path,
) -> None:
    """Each redraw clears the screen, so the line naming where the outbox was moved is part
    of every screen rather than printed once on stderr."""
    async with Outbox.from_url(str(outbox_db)) as outbox:
        await outbox.storage.set_moved("postgresql://db.example/shop")
    shown, code, err = await _watch_until(
        outbox_db, "moved this outbox to postgresql://db.example/shop"
    )
    assert code == 0, err
    assert "pending" in shown


async def test_status_watch_refuses_a_pipe(outbox_db: Path) -> None:
    """A redrawn screen in a log is noise: piped, --watch says to poll --json instead."""
    code, out, err = await finish(await spawn("status", "--watch", "--db", str(outbox_db)))
    assert code == 2
    assert out == ""
    assert "--watch needs a terminal" in err
    assert "status --json" in err


async def test_migrate_outbox_shows_progress_on_a_terminal_only(
    outbox_db: Path, tmp_path: Path
) -> None:
    with terminal() as (main, child):
        target = tmp_path / "on-a-terminal.db"
        argv = ("migrate-outbox", "--from", str(outbox_db), "--to", str(target))
        proc = await spawn(*argv, stderr=child)
        os.close(child)
        code, out, _ = await finish(proc)
        shown = read_all(main)
    assert code == 0
    assert "migrate-outbox" in shown
    assert "100%|" in shown
    assert "50/50" in shown
    assert out.startswith("copied 50 entries")

    # The source is marked as moved now; a second copy to another file is refused by design,
    # so the piped run copies a fresh outbox.
    piped_source = tmp_path / "piped.db"
    async with Outbox.from_url(str(piped_source)) as outbox:
        await outbox.enqueue_many([event(f"order-{i}") for i in range(5)])
    argv = ("migrate-outbox", "--from", str(piped_source), "--to", str(tmp_path / "t2.db"))
    code, out, err = await finish(await spawn(*argv))
    assert code == 0, err
    assert "%|" not in err
    assert "migrate-outbox" not in err
    assert out.startswith("copied 5 entries")


async def test_purge_shows_progress_on_a_terminal_only(outbox_db: Path) -> None:
    argv = ("purge", "--older-than-days", "30", "--db", str(outbox_db))
    with terminal() as (main, child):
        proc = await spawn(*argv, stderr=child)
        os.close(child)
        code, out, _ = await finish(proc)
        shown = read_all(main)
    assert code == 0
    assert "purge" in shown
    assert out.startswith("payloads removed from 0 finished entries")

    code, out, err = await finish(await spawn(*argv))
    assert code == 0
    assert err == ""
    assert out.startswith("payloads removed from 0 finished entries")
