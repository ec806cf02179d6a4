"""``etrusted-kit serve`` as a real process: its configuration file, its readiness line, its
signals and exit, and the signed Shopify deliveries posted to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from journal.deliveries import CHANNEL, SECRET, SHOP, fulfilled_order, signed

from kit.journal import StreamHistory, journal_for
from kit.outbox import Outbox
from kit.sandbox import SandboxServer

SOURCE = "my-shop"
ROUTE = f"/webhooks/{SOURCE}"
SECRET_VARIABLE = "SHOPIFY_WEBHOOK_SECRET"
# Short windows, so a test's flusher claims, retries and reconciles within a second or two.
FLUSH_ARGS = (
    "--concurrency", "4", "--lease-seconds", "4", "--request-timeout", "1",
    "--poll-interval", "0.05", "--reconcile-delay", "0", "--reconcile-interval", "0.1",
    "--reconcile-window", "1", "--grace-period", "2",
    "--backoff-base", "0.02", "--backoff-cap", "0.2",
)  # fmt: skip
READY = re.compile(r"^serving (?P<url>http://\S+): (?P<routes>.+)$")
START_TIMEOUT = 30.0

SHOPIFY_SOURCE = f"""
[[sources]]
name = "{SOURCE}"
adapter = "shopify"
shop_domain = "{SHOP}"
webhook_secrets = [{{ env = "{SECRET_VARIABLE}" }}]
channel_id = "{CHANNEL}"

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
"""


def write_config(
    path: Path,
    *,
    db: str,
    sandbox: SandboxServer | None,
    sources: str = SHOPIFY_SOURCE,
) -> Path:
    """A configuration file for serve: the outbox, the sandbox's credentials (none without a
    sandbox: the environment gives them), the sources."""
    etrusted = ""
    if sandbox is not None:
        config = sandbox.sandbox.config
        etrusted = f"""
[etrusted]
client_id = {json.dumps(config.client_id)}
client_secret = {json.dumps(config.client_secret)}
api_url = {json.dumps(sandbox.url)}
token_url = {json.dumps(sandbox.token_url)}
"""
    path.write_text(f"[outbox]\nurl = {json.dumps(db)}\n{etrusted}{sources}", encoding="utf-8")
    return path


def serve_env(**extra: str) -> dict[str, str]:
    """The test's environment (the kit's own variables already removed) plus the secret."""
    env = dict(os.environ)
    env[SECRET_VARIABLE] = SECRET
    env.update(extra)
    return env


def order(order_id: str) -> dict[str, Any]:
    """A fulfilled order whose transaction reference is its own (the fixture's is shared)."""
    body = fulfilled_order(order_id, email=f"buyer-{order_id}@example.org")
    body["name"] = f"#{order_id}"
    return body


def fulfilment(order_id: str, webhook_id: str | None = None) -> tuple[dict[str, str], bytes]:
    """A signed ``orders/fulfilled`` delivery; a retry of it repeats the same webhook id."""
    return signed(order(order_id), "orders/fulfilled", webhook_id=webhook_id or f"w-{order_id}")


def key_of(order_id: str) -> str:
    return f"shopify:{SHOP}:{order_id}:order_shipped"


@attrs.define
class ServeProcess:
    """One ``etrusted-kit serve`` process, started and read through its readiness line."""

    proc: asyncio.subprocess.Process
    stderr_path: Path
    url: str = ""
    routes: str = ""

    @classmethod
    async def start(
        cls,
        config: Path,
        *extra: str,
        env: Mapping[str, str],
        stderr_path: Path,
        args: Sequence[str] = FLUSH_ARGS,
        verbose: bool = False,
    ) -> ServeProcess:
        """Start serve on a free port and wait for the line that says where it listens
        (``verbose``: INFO lines in its log too)."""
        with stderr_path.open("ab") as stderr:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "kit", *(["-v"] if verbose else []), "serve",
                "--config", str(config), "--port", "0",
                *args, *extra,
                stdout=asyncio.subprocess.PIPE, stderr=stderr, env=dict(env),
            )  # fmt: skip
        served = cls(proc, stderr_path)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                assert proc.stdout is not None
                line = (await proc.stdout.readline()).decode().strip()
            match = READY.match(line)
            if match is None:
                code = await served.wait()
                raise AssertionError(
                    f"serve printed {line!r} and exited {code}; stderr:\n{served.stderr}"
                )
        except BaseException:
            await served.kill()
            raise
        served.url, served.routes = match["url"], match["routes"]
        return served

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        async with asyncio.timeout(timeout):
            return await self.proc.wait()

    async def kill(self) -> None:
        """SIGKILL (if still running) and reap it."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


@contextlib.asynccontextmanager
async def serving(
    config: Path, *extra: str, env: Mapping[str, str], stderr_path: Path
) -> AsyncIterator[ServeProcess]:
    """A serve process for the block; killed afterwards if the test left it running."""
    served = await ServeProcess.start(config, *extra, env=env, stderr_path=stderr_path)
    try:
        yield served
    finally:
        await served.kill()


async def stop(served: ServeProcess, sig: int = signal.SIGTERM) -> int:
    served.send_signal(sig)
    return await served.wait()


async def post(
    session: aiohttp.ClientSession, url: str, delivery: tuple[dict[str, str], bytes]
) -> tuple[int, dict[str, Any]]:
    headers, raw = delivery
    async with session.post(url + ROUTE, data=raw, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def histories(
    db: str, order_ids: Sequence[str], *, source: str = SOURCE
) -> dict[str, StreamHistory]:
    """Each order's journal stream, read through a connection of the test's own."""
    async with Outbox.from_url(db) as outbox:
        journal = journal_for(outbox)
        return {oid: await journal.history(source, oid) for oid in order_ids}


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 30.0, every: float = 0.02
) -> None:
    """Poll an async ``predicate()`` until it is true; fail after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(every)
