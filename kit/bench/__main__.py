"""``python -m kit.bench``: one flusher child that starts on "go" and reports rate and memory."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping
from typing import Any

from kit.bench.measure import peak_rss_kb, per_second
from kit.bench.processes import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from kit.bench.watched import WatchedClient
from kit.client import ETrustedClient
from kit.config import ClientConfig
from kit.flusher import Flusher, FlusherConfig
from kit.outbox import Outbox


async def _child(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run one flusher as ``etrusted-kit flush`` would; report rate and peak memory."""
    client_config = ClientConfig(
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        api_url=spec["client"]["api_url"],
        token_url=spec["client"]["token_url"],
    )
    count = spec.get("count")
    async with (
        Outbox.from_url(spec["db"]) as outbox,
        ETrustedClient(client_config) as client,
    ):
        watched = WatchedClient(client, target=count, record=False)
        flusher = Flusher(
            outbox,
            watched,
            FlusherConfig(concurrency=spec["concurrency"], poll_interval=spec["poll_interval"]),
        )
        print(json.dumps({"ready": True}), flush=True)
        go = await asyncio.to_thread(sys.stdin.readline)
        if go.strip() != "go":
            return {"error": f"expected go, got {go!r}"}
        started_at = time.time()
        started = time.perf_counter()
        cpu = time.process_time()
        # Until idle in both modes: a backlog that runs dry ends the run instead of hanging it.
        run = asyncio.create_task(flusher.run(until_idle=True))
        if count is not None:
            reached = asyncio.create_task(watched.reached.wait())
            await asyncio.wait({run, reached}, return_when=asyncio.FIRST_COMPLETED)
            reached.cancel()
            flusher.stop()
        stats = await run
        ended = watched.reached_at if watched.reached_at is not None else time.perf_counter()
        cpu = time.process_time() - cpu
    elapsed = ended - started
    done = count if count is not None and watched.reached_at is not None else stats.delivered
    return {
        "delivered": stats.delivered,
        "counted": done,
        "elapsed": elapsed,
        "rate": per_second(done, elapsed),
        "started_at": started_at,
        "ended_at": started_at + elapsed,
        "cpu_s": cpu,
        "peak_rss_kb": peak_rss_kb(),
    }


def _child_main() -> None:
    spec = json.loads(sys.stdin.readline())
    result = asyncio.run(_child(spec))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    _child_main()
