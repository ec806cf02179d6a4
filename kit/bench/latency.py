"""Figure 5: enqueue-to-POST latency, with the flusher in the same process and in another."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from kit.bench.config import BenchConfig
from kit.bench.databases import Databases
from kit.bench.payloads import bench_body
from kit.bench.processes import Child, SandboxProcess, child_env
from kit.bench.report import Figure, percentile
from kit.bench.watched import WatchedClient
from kit.client import ETrustedClient
from kit.flusher import Flusher, FlusherConfig
from kit.outbox import Outbox, default_key
from kit.outbox.types import State


def _reference(body: bytes | str) -> str:
    reference: str = json.loads(body)["transaction"]["reference"]
    return reference


async def _attempt_latencies(outbox: Outbox, keys: Sequence[str]) -> list[float]:
    """Enqueue-to-POST from the outbox's own records: first send's ``started_at - created_at``."""
    latencies = []
    for key in keys:
        entry = await outbox.get(key)
        sends = [a for a in await outbox.attempts(key) if a.kind.value == "send"]
        if sends:
            latencies.append((sends[0].started_at - entry.created_at) * 1000)
    return latencies


def _latency_details(values: Sequence[float]) -> dict[str, Any]:
    return {
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
        "samples": len(values),
    }


async def figure_latency_same_process(
    config: BenchConfig,
    dbs: Databases,
    sandbox: SandboxProcess,
    admin: ETrustedClient,
    session: aiohttp.ClientSession,
) -> Figure:
    sizes = config.effective_sizes
    await sandbox.reset(admin, session)
    url = dbs.new("latency")
    bodies = [bench_body(i) for i in range(sizes.latency_events)]
    enqueued_at: dict[str, float] = {}
    try:
        async with (
            Outbox.from_url(url) as outbox,
            ETrustedClient(sandbox.client_config()) as client,
        ):
            watched = WatchedClient(client, target=len(bodies) + 1)
            flusher = Flusher(
                outbox,
                watched,
                FlusherConfig(concurrency=config.concurrency, poll_interval=config.poll_interval),
            )
            run = asyncio.create_task(flusher.run())
            try:
                # One event first, so the token and the event-type list are fetched already.
                await outbox.enqueue(bench_body(10**8))
                for body in bodies:
                    await asyncio.sleep(sizes.latency_interval)
                    enqueued_at[body["transaction"]["reference"]] = time.time()
                    await outbox.enqueue(body)
                async with asyncio.timeout(120):
                    await watched.reached.wait()
            finally:
                flusher.stop()
                await run
            posted = {_reference(body): at for at, body in watched.started}
            latencies = [(posted[ref] - at) * 1000 for ref, at in enqueued_at.items()]
            logged = await _attempt_latencies(outbox, [default_key(b) for b in bodies])
    finally:
        await dbs.drop(url)
    p50 = percentile(latencies, 50)
    return Figure(
        id="latency_same_process",
        title="enqueue-to-POST latency, flusher in the same process",
        unit="ms",
        kit=p50,
        target="p50 <= 5 ms",
        met=p50 <= 5.0,
        details={
            **_latency_details(latencies),
            "rate_per_s": round(1 / sizes.latency_interval),
            "measured": "enqueue() called -> post_event_json() called",
            "attempt_log": _latency_details(logged),
        },
    )


async def figure_latency_cross_process(
    config: BenchConfig,
    dbs: Databases,
    workdir: Path,
    sandbox: SandboxProcess,
    admin: ETrustedClient,
    session: aiohttp.ClientSession,
) -> Figure:
    sizes = config.effective_sizes
    await sandbox.reset(admin, session)
    url = dbs.new("latency_cross")
    bodies = [bench_body(i) for i in range(sizes.cross_events)]
    child = Child("flush_cross", workdir)
    argv = [config.python, "-m", "kit", "flush", "--db", url]
    argv += ["--concurrency", str(config.concurrency), "--poll-interval", str(config.poll_interval)]
    try:
        async with Outbox.from_url(url) as outbox:
            await child.start(argv, child_env(config, sandbox, url))
            # Wait for the child to deliver a first event: it is running and warmed up then.
            warm = await outbox.enqueue(bench_body(10**8))
            await _wait_delivered(outbox, [warm.key], child, timeout=60)
            for body in bodies:
                await asyncio.sleep(sizes.cross_interval)
                await outbox.enqueue(body)
            keys = [default_key(b) for b in bodies]
            await _wait_delivered(outbox, keys, child, timeout=60 + 2 * len(keys))
            latencies = await _attempt_latencies(outbox, keys)
    finally:
        await child.stop()
        await dbs.drop(url)
    mechanism = "LISTEN/NOTIFY wake-up" if config.postgres else "polling"
    return Figure(
        id="latency_cross_process",
        title="enqueue-to-POST latency, flusher in another process",
        unit="ms",
        kit=percentile(latencies, 50),
        target=(
            "none (woken by NOTIFY)"
            if config.postgres
            else f"none (bound: the {config.poll_interval:g} s poll)"
        ),
        met=None,
        details={
            **_latency_details(latencies),
            "rate_per_s": round(1 / sizes.cross_interval),
            "poll_interval_s": config.poll_interval,
            "wake_up": mechanism,
            "measured": "attempt log: first send started_at - created_at",
        },
    )


async def _wait_delivered(
    outbox: Outbox,
    keys: Sequence[str],
    child: Child,
    timeout: float,  # noqa: ASYNC109 (a bound)
) -> None:
    async with asyncio.timeout(timeout):
        for key in keys:
            while (await outbox.get(key)).state is not State.DELIVERED:
                if child.proc is not None and child.proc.returncode is not None:
                    raise child.failed("exited while events were pending")
                await asyncio.sleep(0.02)
