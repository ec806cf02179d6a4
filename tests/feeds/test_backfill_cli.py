"""``etrusted-kit backfill`` as a user runs it: a real process killed with SIGKILL mid-way and
resumed delivers each order exactly once; a dry run writes nothing; the progress bar shows on
a terminal only; the summary and the notes say what happened."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import pty
import signal
import sqlite3
import struct
import sys
import termios
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from journal.deliveries import CHANNEL, SECRET, SHOP

from kit.testing.shopify_orders import ShopifyOrdersStandIn, ShopifyServer, synthetic_order

from .orders import TOKEN

# Orders of the last weeks: max_age (180 days) counts back from the real clock here.
DAY = datetime.combine(datetime.now(UTC).date() - timedelta(days=20), datetime.min.time(), UTC)
SINCE = DAY.date().isoformat()
DEADLINE = 120.0  # generous: only a hung process gets anywhere near it
OVERLAP = 5 * 60


def _config(path: Path, server: ShopifyServer, db: Path) -> Path:
    path.write_text(
        f"""
[outbox]
url = "{db}"

[[sources]]
name = "my-shop"
adapter = "shopify"
shop_domain = "{SHOP}"
webhook_secrets = ["{SECRET}"]
channel_id = "{CHANNEL}"
admin_access_token = {{ env = "SHOPIFY_ADMIN_TOKEN" }}
api_base_url = "{server.url}"

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
delay = "3d"
""",
        encoding="utf-8",
    )
    return path


def _orders(count: int, start: datetime) -> list[dict[str, Any]]:
    """One order changed a minute, each fulfilled a minute before it changed."""
    out = []
    for n in range(1, count + 1):
        at = start + timedelta(minutes=n)
        out.append(synthetic_order(n, updated_at=at, fulfilled_at=at - timedelta(minutes=1)))
    return out


@pytest.fixture
def stand_in() -> ShopifyOrdersStandIn:
    # A generous bucket: these tests are about resuming and output, not about pacing.
    return ShopifyOrdersStandIn(token=TOKEN, maximum=100_000, restore_rate=1_000_000)


@pytest.fixture
async def server(stand_in: ShopifyOrdersStandIn) -> AsyncIterator[ShopifyServer]:
    async with ShopifyServer(stand_in) as running:
        yield running


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("SHOPIFY_ADMIN_TOKEN", TOKEN)
    return dict(os.environ)


async def _spawn(*argv: str, env: dict[str, str], **streams: Any) -> asyncio.subprocess.Process:
    options: dict[str, Any] = {
        "stdin": asyncio.subprocess.DEVNULL,
        "stdout": asyncio.subprocess.PIPE,
        "stderr": asyncio.subprocess.PIPE,
    }
    options.update(streams)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kit", "backfill", *argv, env=env, **options
    )


async def _finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    try:
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, (out or b"").decode(), (err or b"").decode()


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


async def test_a_killed_backfill_resumes_and_enqueues_each_order_once(
    tmp_path: Path, stand_in: ShopifyOrdersStandIn, server: ShopifyServer, env: dict[str, str]
) -> None:
    """2,000 orders; the process is killed with SIGKILL after 60 pages and started again.
    Every order is enqueued exactly once, and the only orders the stand-in served twice are
    those of the overlap window before the last committed page, and the page in flight."""
    orders = _orders(2000, DAY)
    stand_in.put(*orders)
    db = tmp_path / "outbox.db"
    config = _config(tmp_path / "kit.toml", server, db)
    argv = ("my-shop", "--since", SINCE, "--config", str(config), "--json")

    first = await _spawn(*argv, env=env)
    try:
        async with asyncio.timeout(DEADLINE):
            await stand_in.wait_pages(60)
    finally:
        first.send_signal(signal.SIGKILL)
        await first.wait()
    assert first.returncode == -signal.SIGKILL
    ((high_water, done),) = _rows(
        db, "SELECT high_water, done FROM etk_feed_checkpoints WHERE source = 'my-shop'"
    )
    assert not done
    assert high_water is not None
    served_before = sum(stand_in.served.values())
    assert served_before < len(orders)

    code, out, err = await _finish(await _spawn(*argv, env=env))

    assert code == 0, err
    summary = json.loads(out)
    assert summary["resumed"] is True
    keys = _rows(db, "SELECT key FROM etk_entries")
    assert len(keys) == len({k for (k,) in keys}) == 2000
    doubled = _rows(
        db,
        "SELECT key FROM etk_journal_decisions WHERE kind = 'enqueue' "
        "GROUP BY key HAVING count(*) > 1",
    )
    assert doubled == []
    twice = [gid for gid, count in stand_in.served.items() if count > 1]
    changed = {o["id"]: datetime.fromisoformat(o["updatedAt"]).timestamp() for o in orders}
    assert all(changed[gid] >= high_water - OVERLAP for gid in twice)
    page = summary["orders"] // summary["pages"] + 1
    assert len(twice) <= OVERLAP // 60 + 1 + 2 * page  # the overlap, and what was in flight
    assert stand_in.served.total() == len(orders) + len(twice)


async def test_a_dry_run_writes_nothing(
    tmp_path: Path,
    stand_in: ShopifyOrdersStandIn,
    server: ShopifyServer,
    env: dict[str, str],
) -> None:
    """The database file is byte for byte what it was; the summary says what would happen."""
    stand_in.put(*_orders(30, DAY))
    stand_in.put(
        synthetic_order(
            31,
            updated_at=DAY + timedelta(days=1),
            test=True,
            fulfilled_at=DAY + timedelta(days=1),
        )
    )
    db = tmp_path / "outbox.db"
    config = _config(tmp_path / "kit.toml", server, db)
    code, _, err = await _finish(
        await _spawn(
            "my-shop",
            "--since",
            "2025-02-01",
            "--until",
            "2025-02-02",
            "--config",
            str(config),
            env=env,
        )
    )
    assert code == 0, err  # an empty window: creates and migrates the database
    before = hashlib.sha256(db.read_bytes()).hexdigest()

    code, out, err = await _finish(
        await _spawn("my-shop", "--since", SINCE, "--dry-run", "--config", str(config), env=env)
    )

    assert code == 0, err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert "dry run: backfill of my-shop" in out
    assert "30 invites would be enqueued" in out
    assert "1 skipped: test_order" in out
    assert "would enqueue #1 (order 5560000000001): order_shipped, due " in out
    assert "would skip #31 (order 5560000000031): test_order" in out
    assert "nothing was written" in out
    assert _rows(db, "SELECT count(*) FROM etk_entries") == [(0,)]


async def test_progress_shows_on_a_terminal_only(
    tmp_path: Path, stand_in: ShopifyOrdersStandIn, server: ShopifyServer, env: dict[str, str]
) -> None:
    """With stderr on a pseudo-terminal the tqdm bar is drawn there, a retry's warning on a
    line of its own; piped, stderr stays quiet and stdout carries the summary alone."""
    stand_in.put(*_orders(20, DAY))
    stand_in.fail_next(503)
    config = _config(tmp_path / "kit.toml", server, tmp_path / "outbox.db")
    argv = ("my-shop", "--since", SINCE, "--config", str(config))

    main, child = pty.openpty()
    # A terminal of 120 columns (a new pseudo-terminal has none, and tqdm draws to the width).
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        proc = await _spawn(*argv, env=env, stderr=child)
        os.close(child)
        code, out, _ = await _finish(proc)
        terminal = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the child side is closed and everything was read
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(main)
    assert code == 0
    shown = terminal.decode(errors="replace")
    assert "backfill" in shown
    assert "100%|" in shown
    assert "orders=20" in shown
    assert "budget=" in shown
    assert "reading the page again" in shown
    assert "backfill of my-shop" in out

    code, out, err = await _finish(
        await _spawn("my-shop", "--since", SINCE, "--config", str(config), env=env)
    )
    assert code == 0
    assert "%|" not in err
    assert out.startswith("backfill of my-shop")
    assert "20 order versions already journaled" in out


async def test_a_window_beyond_sixty_days_is_noted(
    tmp_path: Path, stand_in: ShopifyOrdersStandIn, server: ShopifyServer, env: dict[str, str]
) -> None:
    """Without read_all_orders Shopify lists only 60 days: the command says so; the JSON
    summary carries the notes too."""
    config = _config(tmp_path / "kit.toml", server, tmp_path / "outbox.db")
    since = (datetime.now(UTC) - timedelta(days=100)).date().isoformat()
    code, out, err = await _finish(
        await _spawn("my-shop", "--since", since, "--config", str(config), "--json", env=env)
    )
    assert code == 0, err
    assert "read_all_orders" in err
    report = json.loads(out)
    assert any("read_all_orders" in note for note in report["notes"])
    assert report["orders"] == 0


async def test_an_expired_token_stops_with_a_clear_error(
    tmp_path: Path, stand_in: ShopifyOrdersStandIn, server: ShopifyServer, env: dict[str, str]
) -> None:
    stand_in.token = "rotated"
    config = _config(tmp_path / "kit.toml", server, tmp_path / "outbox.db")
    code, _, err = await _finish(
        await _spawn("my-shop", "--since", SINCE, "--config", str(config), env=env)
    )
    assert code == 1
    assert "admin_access_token" in err
    assert TOKEN not in err
    assert stand_in.requests == 1


async def test_a_dry_run_creates_no_database(
    tmp_path: Path, stand_in: ShopifyOrdersStandIn, server: ShopifyServer, env: dict[str, str]
) -> None:
    """Without an outbox there is no journal to read: the dry run says so and leaves no file
    behind."""
    db = tmp_path / "outbox.db"
    config = _config(tmp_path / "kit.toml", server, db)
    code, _, err = await _finish(
        await _spawn("my-shop", "--since", SINCE, "--dry-run", "--config", str(config), env=env)
    )
    assert code == 1
    assert "there is no outbox at" in err
    assert not db.exists()
    assert stand_in.requests == 0
