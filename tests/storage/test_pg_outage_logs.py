"""A PostgreSQL outage under a running flusher is weather, and logs like it.

The outage is real (the flusher's connections go through a TCP proxy the test cuts and
restores; the shared server keeps running): every failed try is one WARNING that says when the
next comes, its end is one INFO line, and no record carries a traceback or sits at ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import attrs
import pytest
from flusher_doubles import wait_until

from kit import logformat
from kit.client import ETrustedClient
from kit.flusher import Flusher, FlusherConfig
from kit.outbox import Outbox
from kit.outbox.postgres import PostgresStorage
from kit.outbox.types import State
from kit.retry import Backoff
from kit.sandbox import SEEDED_CHANNEL_IDS, SandboxConfig
from kit.testing import running_sandbox

pytestmark = pytest.mark.postgres

CONFIG = FlusherConfig(
    concurrency=4,
    lease_seconds=60.0,
    poll_interval=0.05,
    backoff=Backoff(base=0.01, cap=0.05),
    check_event_types=False,
)


class CuttableProxy:
    """Forwards TCP to PostgreSQL; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.upstream_ports: set[int] = set()  # our side of each connection to PostgreSQL
        self._server: asyncio.Server | None = None
        self.up = True
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        port = up_writer.get_extra_info("sockname")[1]
        self.upstream_ports.add(port)
        self._writers |= {writer, up_writer}
        pipes = {
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        }
        self._pipes |= pipes
        # One side closed: close both.
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_writer):
            w.transport.abort()
            self._writers.discard(w)
        self._pipes -= pipes
        self.upstream_ports.discard(port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    def cut(self) -> None:
        self.up = False
        for writer in list(self._writers):
            writer.transport.abort()

    async def terminate(self, dsn: str) -> None:
        """As a server restart does: PostgreSQL ends each of our sessions (FATAL 57P01, "the
        administrator") and new connections are refused. Only this proxy's sessions: the
        server is shared."""
        self.up = False
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE client_port = ANY($1::int[]) AND pid <> pg_backend_pid()",
                sorted(self.upstream_ports),
            )
        finally:
            await conn.close()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        for task in list(self._pipes):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
def cli_logging() -> Iterator[None]:
    """The levels ``etrusted-kit -vv`` sets (pytest's capture handler stays the only one)."""
    names = ("kit", "asyncpg.pool")
    saved = {name: logging.getLogger(name).level for name in names}
    logformat.configure(2, logformat.LogFormat.JSON)
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[CuttableProxy]:
    parts = urlsplit(pg_dsn)
    proxy = CuttableProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.close()


def through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


def event(i: int) -> dict[str, object]:
    return {
        "type": "order_shipped",
        "customer": {"email": f"buyer{i}@example.com"},
        "channel": {"id": SEEDED_CHANNEL_IDS[0], "type": "etrusted"},
        "transaction": {"reference": f"order-{i}"},
        "system": "tests",
        "systemVersion": "1.0",
    }


async def delivered(outbox: Outbox, count: int, limit: float = 30) -> None:
    """Wait until ``count`` results are written (the flusher's own count is taken earlier)."""
    async with asyncio.timeout(limit):
        while (await outbox.stats()).counts[State.DELIVERED] < count:
            await asyncio.sleep(0.02)


def with_action(caplog: pytest.LogCaptureFixture, *names: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) in names]


@pytest.mark.parametrize("how", ["connections_reset", "sessions_terminated"])
async def test_a_database_outage_is_one_warning_per_try_and_one_line_when_over(
    how: str,
    proxy: CuttableProxy,
    pg_dsn: str,
    pg_schema: str,
    caplog: pytest.LogCaptureFixture,
    cli_logging: None,
) -> None:
    """Cut PostgreSQL away mid-run: WARNINGs with the wait, an INFO at the end, no traceback,
    nothing at ERROR, and every event delivered exactly once."""
    storage = PostgresStorage(through(pg_dsn, proxy.port), schema=pg_schema, command_timeout=5)
    async with (
        running_sandbox(SandboxConfig(seed=5, event_types=("order_shipped",))) as server,
        ETrustedClient(server.client_config()) as client,
        Outbox(storage) as outbox,
    ):
        await outbox.enqueue_many([event(i) for i in range(20)])
        flusher = Flusher(outbox, client, CONFIG)
        task = asyncio.create_task(flusher.run())
        await delivered(outbox, 20)
        outage_starts = len(caplog.records)

        if how == "connections_reset":
            proxy.cut()
        else:
            await proxy.terminate(pg_dsn)
        await wait_until(lambda: len(with_action(caplog, "claim_failed")) >= 3, 30)
        proxy.restore()
        await wait_until(lambda: with_action(caplog, "claim_recovered"), 30)

        await outbox.enqueue_many([event(i) for i in range(20, 30)])
        await delivered(outbox, 30)
        flusher.stop()
        await asyncio.wait_for(task, 30)
        assert (await outbox.stats()).counts[State.DELIVERED] == 30
        assert server.sandbox.request_count("POST", "/events") == 30

    during = caplog.records[outage_starts:]
    assert [r.getMessage() for r in during if r.exc_info is not None] == []
    assert [r.getMessage() for r in during if r.levelno >= logging.ERROR] == []
    warnings = [r for r in during if r.levelno == logging.WARNING]
    assert warnings
    # Each try says when the next comes; the holds' line is once per outage, by design.
    once = {"holds_failed"}
    assert [
        r.getMessage()
        for r in warnings
        if getattr(r, "action", None) not in once and "trying again in" not in r.getMessage()
    ] == []
    tries = with_action(caplog, "claim_failed")
    assert all(r.levelno == logging.WARNING for r in tries)
    assert all("trying again in" in r.getMessage() for r in tries)
    (over,) = with_action(caplog, "claim_recovered")
    assert over.levelno == logging.INFO
    assert f"after {len(tries)} failed tries" in over.getMessage()


@pytest.mark.parametrize("how", ["connections_reset", "sessions_terminated"])
async def test_an_outage_in_the_middle_of_deliveries_loses_and_doubles_nothing_quietly(
    how: str,
    proxy: CuttableProxy,
    pg_dsn: str,
    pg_schema: str,
    caplog: pytest.LogCaptureFixture,
    cli_logging: None,
) -> None:
    """Cut while results are being written: the writer and the claims each log a WARNING per
    try and one INFO line when over, nothing at ERROR (a result whose commit went through
    while its answer was lost is not "fenced off"), and each event is accepted once."""
    storage = PostgresStorage(through(pg_dsn, proxy.port), schema=pg_schema, command_timeout=5)
    async with (
        running_sandbox(SandboxConfig(seed=6, event_types=("order_shipped",))) as server,
        ETrustedClient(server.client_config(request_timeout=5)) as client,
        Outbox(storage) as outbox,
    ):
        await outbox.enqueue_many([event(i) for i in range(300)])
        # A claim whose answer was lost with the connection waits for its lease to expire, and
        # is then reconciled for a window before it is sent: both short here.
        config = attrs.evolve(
            CONFIG,
            lease_seconds=12.0,
            reconcile_delay=0.1,
            reconcile_interval=0.2,
            reconcile_window=1.0,
        )
        flusher = Flusher(outbox, client, config)
        task = asyncio.create_task(flusher.run())
        await wait_until(lambda: flusher.stats.delivered >= 60, 30)
        outage_starts = len(caplog.records)
        if how == "connections_reset":
            proxy.cut()
        else:
            await proxy.terminate(pg_dsn)
        failed = ("claim_failed", "finish_failed")
        await wait_until(lambda: len(with_action(caplog, *failed)) >= 3, 30)
        proxy.restore()
        await delivered(outbox, 300, limit=90)
        flusher.stop()
        await asyncio.wait_for(task, 30)
        assert server.sandbox.request_count("POST", "/events") == 300

    during = caplog.records[outage_starts:]
    assert [r.getMessage() for r in during if r.exc_info is not None] == []
    assert [r.getMessage() for r in during if r.levelno >= logging.ERROR] == []
    for kind in ("claim", "finish"):
        tries = with_action(caplog, f"{kind}_failed")
        assert all("trying again in" in r.getMessage() for r in tries)
        assert len(with_action(caplog, f"{kind}_recovered")) == (1 if tries else 0), kind
