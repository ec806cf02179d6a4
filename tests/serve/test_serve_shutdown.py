"""How ``serve`` stops: gracefully on a signal, as a whole when a part fails."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cli_helpers import Run
from journal.deliveries import SECRET

from kit.outbox import Outbox, State, storage_from_url
from kit.outbox.move import migrate_outbox
from kit.sandbox import SandboxServer

from .serve_helpers import (
    ROUTE,
    SECRET_VARIABLE,
    fulfilment,
    histories,
    key_of,
    serve_env,
    serving,
    wait_until,
    write_config,
)


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port


async def _refuses_connections(host: str, port: int) -> bool:
    """Whether the listener is closed. A probe that was queued just as it closed is reset
    rather than refused: that says nothing yet, so the caller asks again."""
    try:
        _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False
    writer.close()
    with contextlib.suppress(ConnectionResetError):
        await writer.wait_closed()
    return False


async def test_sigterm_lets_the_request_in_flight_finish(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """SIGTERM while a delivery is in flight: the listener closes first (new connections are
    refused), the delivery in flight is still answered 200 and its entry is in the outbox,
    then the flusher stops cleanly and serve exits 0."""
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    async with serving(config, env=serve_env(), stderr_path=tmp_path / "serve.err") as served:
        host, port = _host_port(served.url)
        headers, raw = fulfilment("2001")
        reader, writer = await asyncio.open_connection(host, port)
        try:
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            writer.write(
                f"POST {ROUTE} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Length: {len(raw)}\r\nExpect: 100-continue\r\n{head}\r\n".encode()
            )
            await writer.drain()
            # "100 Continue" comes once the request is routed to its handler, which now waits
            # for the body: the request is in flight.
            async with asyncio.timeout(10):
                interim = await reader.readuntil(b"\r\n\r\n")
            assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
            served.send_signal(signal.SIGTERM)
            await wait_until(lambda: _refuses_connections(host, port))
            writer.write(raw)
            await writer.drain()
            async with asyncio.timeout(10):
                response = await reader.read()  # until serve closes the connection
        finally:
            writer.close()
        code = await served.wait()

    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", response
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body == {"status": "accepted", "delivery_id": "w-2001"}
    assert code == 0, served.stderr
    # The flusher stopped cleanly: its counters were printed, and it left no entry claimed.
    stats = json.loads(served.stderr.strip().splitlines()[-1])
    assert "flusher" in stats
    assert "Traceback" not in served.stderr
    async with Outbox.from_url(db) as outbox:
        entry = await outbox.get(key_of("2001"))
        assert entry.state in (State.PENDING, State.DELIVERED)
        assert (await outbox.stats()).counts[State.SENDING] == 0
    (history,) = (await histories(db, ["2001"])).values()
    assert [d.outcome for d in history.decisions] == ["enqueued"]


async def test_a_failed_flusher_stops_serve_with_exit_1(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """The outbox is moved to another database under a running serve: its flusher stops (a
    broken setup), and serve does not go on taking webhooks nothing would send. It closes the
    listener too and exits 1, saying which part failed and why."""
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    async with serving(config, env=serve_env(), stderr_path=tmp_path / "serve.err") as served:
        host, port = _host_port(served.url)
        source = storage_from_url(db)
        await source.open(migrate=False)
        try:
            async with storage_from_url(f"sqlite:///{tmp_path / 'moved.db'}") as target:
                await migrate_outbox(source, target)
        finally:
            await source.aclose()
        code = await served.wait()
    assert code == 1
    assert "etrusted-kit: error: serve stopped because the flusher failed: the outbox at" in (
        served.stderr
    )
    assert "was moved to" in served.stderr
    assert await _refuses_connections(host, port)


async def test_a_port_already_taken_is_exit_1_with_the_address(
    run: Run, tmp_path: Path, sandbox: SandboxServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener that cannot bind fails the start: exit 1, naming the address."""
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await run("serve", "--config", str(config), "--port", str(port))
    assert result.code == 1
    assert f"etrusted-kit: error: cannot listen on 127.0.0.1:{port}" in result.err
    assert result.out == ""  # never announced as listening
