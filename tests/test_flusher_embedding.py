"""Running a flusher inside an application: its failures are visible, its outages waited out.

A broken setup (a missing table) stops the flusher with one error that the application sees
through ``Flusher.running()``; a database that is briefly unreachable is waited out.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from builders import EVENT_TYPE, order
from cli_helpers import Run, point_at
from flusher_doubles import CONFIG, wait_until

from kit.client import ETrustedClient
from kit.errors import KitError, MigrationError, StorageUnavailableError
from kit.flusher import Flusher, RunningFlusher
from kit.outbox import Outbox, State
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import Claimed, Hold, OutboxStats
from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import FakeDeliveryClient, running_sandbox

FLUSHER = web.AppKey("flusher", RunningFlusher)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(seed=1, event_types=(EVENT_TYPE,))) as server:
        yield server


def drop_tables(path: Path) -> None:
    """What a wrong database URL or a half-restored backup looks like to the flusher."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (name,) in rows:
            if name.startswith("etk_") and not name.startswith("etk_schema"):
                db.execute(f"DROP TABLE {name}")


async def health(request: web.Request) -> web.Response:
    handle = request.app[FLUSHER]
    if handle.healthy:
        return web.json_response({"flusher": "running"})
    return web.json_response({"flusher": f"stopped: {handle.failure}"}, status=503)


async def get_health(port: int) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/health") as response,
    ):
        return response.status, await response.json()


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1]


async def test_a_failing_flusher_is_visible_to_the_app(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An app's health check sees a flusher that stopped, with the reason; leaving the
    block raises it. The error is logged once, without a traceback (it is no bug)."""
    path = tmp_path / "shop.db"
    raised: list[BaseException] = []

    async def etrusted(app: web.Application) -> AsyncIterator[None]:
        async with (
            Outbox.from_url(f"sqlite:///{path}") as outbox,
            ETrustedClient(sandbox.client_config()) as client,
        ):
            drop_tables(path)
            try:
                async with Flusher(outbox, client, CONFIG).running() as handle:
                    app[FLUSHER] = handle
                    yield
            except MigrationError as exc:
                raised.append(exc)

    app = web.Application()
    app.cleanup_ctx.append(etrusted)
    runner, port = await serve(app)
    try:
        handle = app[FLUSHER]
        await wait_until(lambda: not handle.healthy)
        status, body = await get_health(port)
        assert status == 503
        assert "etk_" in body["flusher"]
        assert isinstance(handle.failure, MigrationError)
    finally:
        await runner.cleanup()
    assert len(raised) == 1
    stops = [r for r in caplog.records if getattr(r, "action", None) == "flusher_failed"]
    assert len(stops) == 1
    assert stops[0].exc_info is None
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("kit.")]


async def test_a_healthy_flusher_delivers_and_stops_cleanly(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    async with (
        Outbox.from_url(f"sqlite:///{tmp_path / 'shop.db'}") as outbox,
        ETrustedClient(sandbox.client_config()) as client,
    ):
        async with Flusher(outbox, client, CONFIG).running() as handle:
            result = await outbox.enqueue(order(1))

            async def delivered() -> bool:
                return (await outbox.get(result.key)).state is State.DELIVERED

            while not await delivered():
                await wait_until(lambda: handle.stats.delivered >= 1)
            assert handle.healthy
            assert handle.failure is None
        assert not handle.healthy
        assert handle.failure is None


async def test_leaving_the_block_at_once_stops_a_flusher_that_ran_before(tmp_path: Path) -> None:
    """A flusher may be supervised again after an earlier run (a scheduled ``run_once()``, a
    restart after a failure). Leaving the block stops it even when the block ended before the
    flusher had begun: the application is never left waiting on a flusher nothing stops."""
    async with Outbox(SQLiteStorage(tmp_path / "shop.db")) as outbox:
        flusher = Flusher(outbox, FakeDeliveryClient(), CONFIG)
        await flusher.run_once()

        async def leave_at_once() -> None:
            async with flusher.running():
                pass

        await asyncio.wait_for(leave_at_once(), 10)
        await asyncio.wait_for(flusher.run_once(), 10)  # it has ended: it can run again


class BuggyFinish(SQLiteStorage):
    """A backend whose result writes hit a bug (an error no database answers with)."""

    async def finish(self, completions: Any, *, now: float) -> list[bool]:
        raise RuntimeError("a bug in finish")


async def test_a_flusher_that_can_record_no_result_is_seen_to_stop(tmp_path: Path) -> None:
    """When results cannot be recorded because of a bug (not an outage), the flusher stops and
    the application's handle shows it, instead of looking healthy while it sends on and
    records nothing."""
    async with BuggyFinish(tmp_path / "shop.db") as storage:
        outbox = Outbox(storage, owns_storage=False)
        await outbox.enqueue_many([order(i) for i in range(3)])
        flusher = Flusher(outbox, FakeDeliveryClient(), CONFIG)
        with pytest.raises(KitError, match="a bug in finish"):
            async with flusher.running() as handle:
                await wait_until(lambda: not handle.healthy)


async def test_a_missing_table_stops_run_once(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """run() raises the setup error instead of logging it every poll interval forever."""
    path = tmp_path / "shop.db"
    async with (
        Outbox.from_url(f"sqlite:///{path}") as outbox,
        ETrustedClient(sandbox.client_config()) as client,
    ):
        await outbox.enqueue(order(1))
        drop_tables(path)
        flusher = Flusher(outbox, client, CONFIG)
        with pytest.raises(MigrationError):
            await flusher.run()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1


class BrieflyUnavailable(SQLiteStorage):
    """A database that cannot be reached for its first claims (a failover, a restart)."""

    failures = 3

    async def claim_with_holds(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> tuple[list[Claimed], list[Hold]]:
        if self.failures:
            self.failures -= 1
            raise StorageUnavailableError("connection refused")
        return await super().claim_with_holds(
            owner=owner, limit=limit, lease_seconds=lease_seconds, now=now
        )


async def test_a_briefly_unavailable_database_is_waited_out(
    sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Each failed try is one warning naming the wait; one info line says it is over."""
    caplog.set_level(logging.INFO, logger="kit.flusher")
    async with BrieflyUnavailable(tmp_path / "shop.db") as storage:
        outbox = Outbox(storage, owns_storage=False)
        await outbox.enqueue_many([order(i) for i in range(3)])
        async with ETrustedClient(sandbox.client_config()) as client:
            await Flusher(outbox, client, CONFIG).run(until_drained=True)
        assert (await outbox.stats()).counts[State.DELIVERED] == 3
    tries = [r for r in caplog.records if getattr(r, "action", None) == "claim_failed"]
    assert len(tries) == 3
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in tries)
    assert all("trying again in" in r.getMessage() for r in tries)
    over = [r for r in caplog.records if getattr(r, "action", None) == "claim_recovered"]
    assert len(over) == 1


class UnavailableWhenAsked(SQLiteStorage):
    """A database that cannot be reached when asked what is left (a failover, a restart)."""

    failures = 2

    async def stats(self) -> OutboxStats:
        if self.failures:
            self.failures -= 1
            raise StorageUnavailableError("connection refused")
        return await super().stats()


async def test_a_draining_run_waits_out_an_outage_when_it_asks_what_is_left(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    """``run(until_drained=True)`` (``flush --drain``) asks the database whether anything is
    left to send; an outage at that moment is waited out like any other, not the end of the
    run with an error."""
    async with UnavailableWhenAsked(tmp_path / "shop.db") as storage:
        outbox = Outbox(storage, owns_storage=False)
        await outbox.enqueue_many([order(i) for i in range(3)])
        async with ETrustedClient(sandbox.client_config()) as client:
            await asyncio.wait_for(Flusher(outbox, client, CONFIG).run(until_drained=True), 30)
        assert storage.failures == 0
        assert (await outbox.stats()).counts[State.DELIVERED] == 3


async def test_the_flush_command_exits_1_with_the_setup_error(
    sandbox: SandboxServer, tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shop.db"
    async with Outbox.from_url(f"sqlite:///{path}") as outbox:
        await outbox.enqueue(order(1))
    drop_tables(path)
    point_at(monkeypatch, sandbox)
    result = await asyncio.wait_for(run("flush", "--db", str(path)), 30)
    assert result.code == 1
    assert "etrusted-kit: error:" in result.err
    assert "etk_" in result.err
    assert "Traceback" not in result.err
