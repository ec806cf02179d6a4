"""``serve`` with an admin listener, as a real process: where it listens, and its metrics read
back through the Prometheus client's own parser."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import attrs
from prometheus_client.parser import text_string_to_metric_families
from serve.serve_helpers import ServeProcess, write_config

from kit.sandbox import SandboxServer

ADMIN = re.compile(r"^admin (?P<url>http://\S+): /healthz /readyz /metrics$")
# Long enough for a late sandbox answer to stay in flight until the test has sent its signal.
ARGS = (
    "--concurrency", "4", "--lease-seconds", "30", "--request-timeout", "10",
    "--poll-interval", "0.05", "--reconcile-delay", "0", "--reconcile-interval", "0.1",
    "--grace-period", "10", "--backoff-base", "0.05", "--backoff-cap", "0.2",
)  # fmt: skip


def admin_config(path: Path, *, db: str, sandbox: SandboxServer) -> Path:
    """serve's configuration with an ``[admin]`` table on a free port."""
    write_config(path, db=db, sandbox=sandbox)
    path.write_text(path.read_text() + "\n[admin]\nport = 0\n", encoding="utf-8")
    return path


@attrs.define
class Admin:
    served: ServeProcess
    url: str

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as resp:
            return resp.status, await resp.text()

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample, keyed by (name, sorted labels), parsed by prometheus_client."""
        status, text = await self.get("/metrics")
        assert status == 200, text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    async def ready(self) -> tuple[int, dict[str, Any]]:
        import json

        status, text = await self.get("/readyz")
        return status, json.loads(text)


@contextlib.asynccontextmanager
async def serving_admin(
    config: Path, *, env: Mapping[str, str], stderr_path: Path
) -> AsyncIterator[Admin]:
    served = await ServeProcess.start(config, env=env, stderr_path=stderr_path, args=ARGS)
    try:
        assert served.proc.stdout is not None
        async with asyncio.timeout(10):
            line = (await served.proc.stdout.readline()).decode().strip()
        match = ADMIN.match(line)
        assert match is not None, f"no admin line: {line!r}\n{served.stderr}"
        yield Admin(served, match["url"])
    finally:
        await served.kill()


def value(
    samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
