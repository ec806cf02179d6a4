"""Figure 4: whether a 1M backlog slows a flusher down or swells its memory, against 10k."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from kit.bench.config import BenchConfig
from kit.bench.databases import Databases
from kit.bench.measure import per_second, settle
from kit.bench.payloads import bench_entry
from kit.bench.processes import FlusherChild, SandboxProcess
from kit.bench.report import Figure
from kit.client import ETrustedClient
from kit.errors import KitError
from kit.outbox import Outbox
from kit.outbox.types import Completion, Release


async def _fill(
    url: str, count: int, *, start: int = 0, progress: Callable[[str], None] | None = None
) -> None:
    """``count`` pending entries (numbered from ``start``), inserted in large batches."""
    step = 5000
    async with Outbox.from_url(url) as outbox:
        for first in range(start, start + count, step):
            batch = [bench_entry(i) for i in range(first, min(start + count, first + step))]
            await outbox.enqueue_entries(batch, batch_size=step)
            done = first - start
            if progress is not None and done and done % 200_000 == 0:
                progress(f"    ... {done:,} of {count:,}")


async def _claim_ms(small_url: str, large_url: str, samples: int) -> tuple[float, float]:
    """Median time of one claim of 16 entries at each backlog, each given back at once.

    The two sizes take turns, one claim each, so that a passing load on the machine (or the
    cache a fill has just warmed) weighs on both medians alike instead of on one of them.
    """
    times: tuple[list[float], list[float]] = ([], [])
    async with Outbox.from_url(small_url) as small, Outbox.from_url(large_url) as large:
        storages = (small.storage, large.storage)
        for i in range(2 * samples):
            which = (i + i // 2) % 2  # small, large, large, small, small, large, ...
            storage = storages[which]
            now = time.time()
            started = time.perf_counter()
            claimed = await storage.claim(owner="bench", limit=16, lease_seconds=60, now=now)
            times[which].append((time.perf_counter() - started) * 1000)
            await storage.finish(
                [Completion(c.key, c.attempt, Release()) for c in claimed], now=time.time()
            )
    return statistics.median(times[0]), statistics.median(times[1])


async def _drain_child(
    config: BenchConfig, workdir: Path, sandbox: SandboxProcess, url: str, count: int, name: str
) -> dict[str, Any]:
    child = FlusherChild(config, workdir, name)
    spec = {
        "db": url,
        "client": sandbox.client_spec(),
        "concurrency": config.concurrency,
        "poll_interval": config.poll_interval,
        "count": count,
    }
    try:
        await child.start(spec)
        await child.go()
        return await child.result(timeout=600)
    finally:
        await child.stop()


async def figure_backlog(
    config: BenchConfig,
    dbs: Databases,
    workdir: Path,
    sandbox: SandboxProcess,
    admin: ETrustedClient,
    session: aiohttp.ClientSession,
    progress: Callable[[str], None],
) -> tuple[Figure, Figure]:
    sizes = config.effective_sizes
    small_url, large_url = dbs.new("backlog_small"), dbs.new("backlog_large")
    try:
        progress(f"  filling a backlog of {sizes.backlog_small:,} entries")
        await _fill(small_url, sizes.backlog_small)
        progress(f"  filling a backlog of {sizes.backlog_large:,} entries")
        started = time.perf_counter()
        await _fill(large_url, sizes.backlog_large, progress=progress)
        fill_rate = per_second(sizes.backlog_large, time.perf_counter() - started)
        claim_small, claim_large = await _claim_ms(small_url, large_url, sizes.claim_samples)
        results: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
        urls = {"small": small_url, "large": large_url}
        sizes_of = {"small": sizes.backlog_small, "large": sizes.backlog_large}
        for r in range(sizes.rounds):
            order = ("small", "large") if r % 2 == 0 else ("large", "small")
            for which in order:
                await sandbox.reset(admin, session)
                await settle()
                result = await _drain_child(
                    config, workdir, sandbox, urls[which], sizes.backlog_drain, f"drain_{which}_{r}"
                )
                if result["counted"] < sizes.backlog_drain:
                    raise KitError(f"the {which} backlog ran dry: {result}")
                results[which].append(result)
                # Top the backlog up again, so that every round starts from the same size.
                start = sizes_of[which] + r * sizes.backlog_drain
                await _fill(urls[which], sizes.backlog_drain, start=start)
    finally:
        await dbs.drop(small_url)
        await dbs.drop(large_url)
    small_rate = statistics.median(x["rate"] for x in results["small"])
    large_rate = statistics.median(x["rate"] for x in results["large"])
    large = sizes.backlog_large
    large_label = f"{large // 1_000_000}M" if large % 1_000_000 == 0 else f"{large // 1000:,}k"
    rss_mb = max(x["peak_rss_kb"] for x in results["large"]) / 1024
    rss_small_mb = max(x["peak_rss_kb"] for x in results["small"]) / 1024
    note = "--quick: 100k instead of 1M pending entries" if config.quick else ""
    rate = Figure(
        id="backlog_rate",
        title=f"delivery rate, first {sizes.backlog_drain:,} of {large_label} vs 10k pending",
        unit="events/s",
        kit=large_rate,
        baseline=small_rate,
        baseline_label=f"same, {sizes.backlog_small // 1000}k pending",
        target=">= 0.9x the 10k rate",
        met=large_rate >= 0.9 * small_rate,
        details={
            "backlog_small": sizes.backlog_small,
            "backlog_large": sizes.backlog_large,
            "drained_per_round": sizes.backlog_drain,
            "claim_ms_p50_small": round(claim_small, 3),
            "claim_ms_p50_large": round(claim_large, 3),
            "claim_ratio_large_small": round(claim_large / claim_small, 2),
            "fill_rate_large": round(fill_rate),
            "small_rounds": [round(x["rate"], 1) for x in results["small"]],
            "large_rounds": [round(x["rate"], 1) for x in results["large"]],
            "note": note,
        },
    )
    rss = Figure(
        id="backlog_rss",
        title=f"flusher process peak RSS, {large_label} pending",
        unit="MB",
        kit=rss_mb,
        baseline=None,
        baseline_label="",
        target="<= 150 MB",
        met=rss_mb <= 150,
        details={"peak_rss_mb_small_backlog": round(rss_small_mb, 1), "note": note},
    )
    return rate, rss
