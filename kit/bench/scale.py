"""Figure 6: 4 flusher processes against 1 on PostgreSQL, with the sandbox answering late."""

from __future__ import annotations

import asyncio
import logging
import statistics
from pathlib import Path

import aiohttp

from kit.bench.config import BenchConfig
from kit.bench.databases import Databases
from kit.bench.measure import interleaved, per_second
from kit.bench.payloads import bench_entry
from kit.bench.processes import FlusherChild, SandboxProcess
from kit.bench.report import Figure
from kit.client import ETrustedClient
from kit.outbox import Outbox

logger = logging.getLogger(__name__)

LATE_ANSWER_FAULT = {"kind": "late_answer", "delay": 0.02, "method": "POST", "path": "/events"}


async def _scale_run(
    config: BenchConfig,
    workdir: Path,
    sandbox: SandboxProcess,
    url: str,
    processes: int,
    tag: str,
) -> float:
    children = [FlusherChild(config, workdir, f"scale_{tag}_{i}") for i in range(processes)]
    spec = {
        "db": url,
        "client": sandbox.client_spec(),
        "concurrency": config.scale_concurrency,
        "poll_interval": config.poll_interval,
        "count": None,
    }
    try:
        await asyncio.gather(*(c.start(spec) for c in children))
        await asyncio.gather(*(c.go() for c in children))
        results = await asyncio.gather(*(c.result(timeout=600) for c in children))
    finally:
        await asyncio.gather(*(c.stop() for c in children))
    delivered = sum(r["delivered"] for r in results)
    span = max(r["ended_at"] for r in results) - min(r["started_at"] for r in results)
    logger.debug(
        "scale-out run: %d processes, %d delivered in %.2f s, CPU %.2f s",
        processes,
        delivered,
        span,
        sum(r["cpu_s"] for r in results),
        extra={"action": "bench_scale_run"},
    )
    return per_second(delivered, span)


async def figure_scale_out(
    config: BenchConfig,
    dbs: Databases,
    workdir: Path,
    admin_session: aiohttp.ClientSession,
) -> Figure:
    sizes = config.effective_sizes
    if not config.postgres:
        return Figure(
            id="scale_out",
            title="1 vs 4 flusher processes, 20 ms per POST",
            unit="events/s",
            target=">= 3x one flusher",
            skipped="PostgreSQL only (--db postgresql://...)",
        )
    sandbox = SandboxProcess(config, workdir, "sandbox_late", faults=[LATE_ANSWER_FAULT])
    await sandbox.start()
    try:
        async with ETrustedClient(sandbox.client_config()) as admin:
            entries = [bench_entry(i) for i in range(sizes.scale_out)]

            async def run(processes: int, r: int) -> float:
                await sandbox.reset(admin, admin_session)
                url = dbs.new(f"scale{processes}")
                try:
                    async with Outbox.from_url(url) as outbox:
                        await outbox.enqueue_entries(entries, batch_size=5000)
                    return await _scale_run(config, workdir, sandbox, url, processes, f"{r}")
                finally:
                    await dbs.drop(url)

            async def four_processes(r: int) -> float:
                return await run(4, r)

            async def one_process(r: int) -> float:
                return await run(1, r)

            fours, ones = await interleaved(sizes.scale_rounds, four_processes, one_process)
    finally:
        await sandbox.stop()
    four, one = statistics.median(fours), statistics.median(ones)
    return Figure(
        id="scale_out",
        title="4 flusher processes vs 1, sandbox answering 20 ms late",
        unit="events/s",
        kit=four,
        baseline=one,
        baseline_label="1 flusher process",
        target=">= 3x one flusher",
        met=four >= 3 * one,
        details={
            "events": sizes.scale_out,
            "concurrency_per_process": config.scale_concurrency,
            "fault": LATE_ANSWER_FAULT,
            "four_rounds": fours,
            "one_rounds": ones,
        },
    )
