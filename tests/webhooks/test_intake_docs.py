"""docs/intake.md's embedding examples run as written and take signed deliveries over HTTP.

Each example (aiohttp's ``install``, FastAPI and Starlette with ``ingest_stream``) is written to
a fresh directory beside the page's ``shop.toml``, started with the command the page shows
under it, sent deliveries on loopback, and stopped with SIGTERM. Then the outbox and the journal
it wrote are read. FastAPI, Starlette and uvicorn come with the ``test`` extra; without them
these tests skip outside CI and fail in it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ci import unavailable
from journal.deliveries import ORDER_ID, fulfilled_order
from test_docs import BAD_STDERR, ROOT, Block, extract

from kit.journal import Intake
from kit.outbox import Outbox, State

from .conftest import delivery

PAGE = ROOT / "docs" / "intake.md"
SECRET = "shpss_docs_example_secret"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


def _blocks() -> list[Block]:
    return extract(PAGE)


def example(filename: str) -> str:
    """The page's Python block that starts with ``# {filename}``."""
    (found,) = [b for b in _blocks() if b.lang == "python" and b.code.startswith(f"# {filename}")]
    return found.code


def shop_toml() -> str:
    (found,) = [b for b in _blocks() if b.lang == "toml"]
    return found.code


def command(filename: str) -> list[str]:
    """The command the page shows under the example, without its variables."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"# {filename}")
    line = next(ln for ln in lines[start:] if "SHOPIFY_WEBHOOK_SECRET=..." in ln)
    return line.split("SHOPIFY_WEBHOOK_SECRET=... ", 1)[1].split()


def _argv(filename: str, port: int) -> list[str]:
    argv = command(filename)
    if argv[0] == "python":
        argv = [sys.executable, "-W", "always::ResourceWarning", *argv[1:]]
    elif argv[0] == "uvicorn":
        argv = [sys.executable, "-W", "always::ResourceWarning", "-m", "uvicorn", *argv[1:]]
    return [str(port) if word == "8080" else word for word in argv]


@asynccontextmanager
async def running(
    argv: list[str], *, cwd: Path, env: dict[str, str], port: int
) -> AsyncIterator[Path]:
    """Run the server until the block ends, then SIGTERM it; yields its log file."""
    log = cwd / "server.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        await _listening(proc, port, log)
        yield log
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            pytest.fail(f"{argv} did not stop within {STOP_TIMEOUT:g} s of SIGTERM")
    text = log.read_text(errors="replace")
    # uvicorn re-raises the signal once its graceful shutdown is done: killed by SIGTERM, then.
    assert proc.returncode in (0, -signal.SIGTERM), f"{argv} exited {proc.returncode}\n{text}"
    bad = [marker for marker in BAD_STDERR if marker in text]
    assert not bad, f"the server's output shows {bad}\n{text}"


async def _listening(proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
    """Wait until the server accepts connections (or exits, or the time is up)."""
    async with asyncio.timeout(START_TIMEOUT):
        while True:
            if proc.returncode is not None:
                pytest.fail(f"the server exited {proc.returncode}:\n{log.read_text()}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def chunked(raw: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), 256 * 1024):
        yield raw[start : start + 256 * 1024]


async def post(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], body: Any
) -> tuple[int, Any]:
    async with http.post(url, headers=headers, data=body) as response:
        if response.content_type != "application/json":
            return response.status, None
        return response.status, await response.json()


EXAMPLES = [
    pytest.param("shop_app.py", (), id="aiohttp"),
    pytest.param("fastapi_app.py", ("fastapi", "uvicorn"), id="fastapi"),
    pytest.param("starlette_app.py", ("starlette", "uvicorn"), id="starlette"),
]


@pytest.mark.parametrize(("filename", "needs"), EXAMPLES)
async def test_the_embedding_example_takes_signed_deliveries(
    filename: str, needs: tuple[str, ...], tmp_path: Path, unused_port: int
) -> None:
    """A signed fulfilment is stored and answered 200, its retry is a duplicate, a forged one
    401, a chunked body over the cap 413; after a clean SIGTERM the outbox holds one invite."""
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        unavailable(
            f"{', '.join(missing)} not installed (pip install -e '.[test]')",
            what="the docs' embedding examples",
        )
    (tmp_path / filename).write_text(example(filename), encoding="utf-8")
    (tmp_path / "shop.toml").write_text(shop_toml(), encoding="utf-8")
    source = tomllib.loads(shop_toml())["sources"][0]
    env = dict(os.environ, SHOPIFY_WEBHOOK_SECRET=SECRET, PORT=str(unused_port))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1", secret=SECRET)
    headers["X-Shopify-Shop-Domain"] = source["shop_domain"]
    forged = dict(headers, **{"X-Shopify-Hmac-Sha256": "AAAA" + headers["X-Shopify-Hmac-Sha256"]})
    url = f"http://127.0.0.1:{unused_port}/webhooks/{source['name']}"

    argv = _argv(filename, unused_port)
    async with (
        running(argv, cwd=tmp_path, env=env, port=unused_port),
        aiohttp.ClientSession() as http,
    ):
        first = await post(http, url, headers, raw)
        again = await post(http, url, headers, raw)
        bad = await post(http, url, forged, raw)
        huge = await post(http, url, headers, chunked(b" " * (3 * 1024 * 1024)))
        elsewhere = await post(http, url.replace(source["name"], "no-such-shop"), headers, raw)

    assert first == (200, {"status": "accepted", "delivery_id": "w-1"})
    assert again == (200, {"status": "duplicate", "delivery_id": "w-1"})
    assert bad == (401, {"error": "bad_signature"})
    assert huge == (413, {"error": "body_too_large"})
    assert elsewhere[0] == 404
    key = f"shopify:{source['shop_domain']}:{ORDER_ID}:order_shipped"
    async with Outbox.from_url(f"sqlite:///{tmp_path / 'etrusted-kit.db'}") as outbox:
        entries = await outbox.entries()
        assert [(e.key, e.state) for e in entries] == [(key, State.PENDING)]
        history = await Intake(outbox).journal.history(source["name"], ORDER_ID)
        assert [(d.kind, d.outcome.value) for d in history.decisions] == [("enqueue", "enqueued")]
