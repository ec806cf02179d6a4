"""``etrusted-kit bench``: each performance figure measured beside a raw baseline.

Numbers from one machine say little on their own, so every figure runs the kit and a raw
baseline doing the same job with nothing of the kit in it (aiosqlite / sqlite3 / asyncpg / a bare
aiohttp loop) in the same invocation, in alternating rounds, and reports the ratio. The median of
the rounds counts. The eTrusted stand-in (the sandbox) runs in a separate process so its CPU is
not the kit's; flusher processes for the backlog, RSS and scale-out figures are children started
with ``python -m kit.bench`` (the same :class:`~kit.flusher.Flusher` as ``etrusted-kit flush``).
docs/performance.md describes the method and the results.
"""

from __future__ import annotations

from kit.bench.config import FULL, QUICK, BenchConfig, Sizes
from kit.bench.measure import machine_info, peak_rss_kb, settle
from kit.bench.payloads import bench_body, bench_entry
from kit.bench.report import (
    FIGURE_GROUPS,
    FIGURE_IDS,
    BenchReport,
    Figure,
    format_table,
    percentile,
)
from kit.bench.runner import run_bench

__all__ = [
    "FIGURE_GROUPS",
    "FIGURE_IDS",
    "FULL",
    "QUICK",
    "BenchConfig",
    "BenchReport",
    "Figure",
    "Sizes",
    "bench_body",
    "bench_entry",
    "format_table",
    "machine_info",
    "peak_rss_kb",
    "percentile",
    "run_bench",
    "settle",
]
