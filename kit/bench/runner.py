"""Runs every figure in turn and collects the report; owns the scratch directory and the sandbox."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from kit.bench.backfill import figure_backfill
from kit.bench.backlog import figure_backlog
from kit.bench.config import BenchConfig
from kit.bench.databases import Databases
from kit.bench.delivery import figure_delivery
from kit.bench.enqueue import figure_enqueue_bulk, figure_enqueue_one
from kit.bench.intake import figure_intake
from kit.bench.latency import figure_latency_cross_process, figure_latency_same_process
from kit.bench.measure import loadavg, machine_info
from kit.bench.processes import SandboxProcess
from kit.bench.report import FIGURE_GROUPS, FIGURE_IDS, BenchReport, Figure
from kit.bench.scale import figure_scale_out
from kit.client import ETrustedClient
from kit.errors import ConfigError


async def run_bench(
    config: BenchConfig, *, progress: Callable[[str], None] | None = None
) -> BenchReport:
    """Measure every figure; the report holds each one beside its baseline."""
    say = progress or (lambda _message: None)
    sizes = config.effective_sizes
    db = config.db
    if db is not None and "://" in db and not config.postgres and not db.startswith("sqlite:"):
        raise ConfigError(f"bench --db must be a SQLite path or postgresql://..., got {db!r}")
    if config.only is not None and config.only not in FIGURE_GROUPS:
        raise ConfigError(
            f"bench has no figure group {config.only!r}; there are {', '.join(FIGURE_GROUPS)}"
        )
    groups = [config.only] if config.only is not None else list(FIGURE_GROUPS)
    machine = machine_info()
    started = time.perf_counter()
    parent = _scratch_parent(config)
    workdir = Path(tempfile.mkdtemp(prefix="etrusted-kit-bench-", dir=parent))
    dbs = Databases(config, workdir)
    figures: dict[str, Figure] = {}
    sandbox = SandboxProcess(config, workdir, "sandbox")
    steps = iter(range(1, len(groups) + 1))

    def step(group: str, what: str) -> bool:
        if group not in groups:
            return False
        say(f"{next(steps)}/{len(groups)} {what}")
        return True

    try:
        if step("enqueue", "enqueue, one per transaction, and enqueue_many in batches of 1,000"):
            figures["enqueue_one"] = await figure_enqueue_one(config, dbs)
            figures["enqueue_bulk"] = await figure_enqueue_bulk(config, dbs)
        if {"delivery", "backlog", "latency", "scale_out"} & set(groups):
            await sandbox.start()
            await _sandbox_figures(config, dbs, workdir, sandbox, figures, step, say)
        if step("intake", "signed Shopify webhooks through the intake over HTTP"):
            figures["intake"] = await figure_intake(config, dbs, workdir)
        if step("backfill", "a Shopify backfill through the cost bucket (SQLite)"):
            figures["backfill"] = await figure_backfill(workdir, orders=sizes.backfill)
    finally:
        await sandbox.stop()
        await dbs.aclose()
        shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_end"] = loadavg()
    return BenchReport(
        backend="postgresql" if config.postgres else "sqlite",
        quick=config.quick,
        sizes=sizes,
        machine=machine,
        elapsed=time.perf_counter() - started,
        figures=tuple(figures[i] for i in FIGURE_IDS if i in figures),
    )


async def _sandbox_figures(
    config: BenchConfig,
    dbs: Databases,
    workdir: Path,
    sandbox: SandboxProcess,
    figures: dict[str, Figure],
    step: Callable[[str, str], bool],
    say: Callable[[str], None],
) -> None:
    """The figures that deliver to the sandbox process."""
    async with (
        aiohttp.ClientSession() as session,
        ETrustedClient(sandbox.client_config()) as admin,
    ):
        if step("delivery", "delivery to the sandbox process"):
            figures["delivery"] = await figure_delivery(config, dbs, sandbox, admin, session)
        if step("backlog", "backlog scaling and flusher memory"):
            rate, rss = await figure_backlog(config, dbs, workdir, sandbox, admin, session, say)
            figures[rate.id], figures[rss.id] = rate, rss
        if step("latency", "enqueue-to-POST latency"):
            figures["latency_same_process"] = await figure_latency_same_process(
                config, dbs, sandbox, admin, session
            )
            figures["latency_cross_process"] = await figure_latency_cross_process(
                config, dbs, workdir, sandbox, admin, session
            )
        skipped = "" if config.postgres else " (skipped: PostgreSQL only)"
        if step("scale_out", "scale-out" + skipped):
            figures["scale_out"] = await figure_scale_out(config, dbs, workdir, session)


def _scratch_parent(config: BenchConfig) -> str | None:
    """SQLite scratch files go next to ``--db`` when one is given (the disk under test)."""
    if config.db is None or config.postgres:
        return None
    path = config.db
    if path.startswith("sqlite:"):
        from kit.outbox.sqlite import sqlite_path_from_url

        path = sqlite_path_from_url(path)
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"the directory of --db {config.db!r} does not exist")
    return str(parent)
