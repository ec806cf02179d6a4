"""``etrusted-kit bench``: the performance figures of docs/performance.md, on this machine."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from kit.bench import FIGURE_GROUPS, BenchConfig, run_bench
from kit.bench.budget import run_budget
from kit.errors import ConfigError
from kit.signals import on_stop_signals


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def cmd_bench(args: argparse.Namespace) -> int:
    if args.budget:
        return await _budget(args)
    config = BenchConfig(db=args.db, quick=args.quick, only=args.figure, environ=dict(os.environ))
    task = asyncio.ensure_future(run_bench(config, progress=_progress))
    interrupted = False

    def interrupt() -> None:
        # Cancelling the run stops its child processes and removes its scratch databases
        # (gigabytes, with a million-entry backlog) on the way out.
        nonlocal interrupted
        interrupted = True
        task.cancel()

    with on_stop_signals(interrupt):
        try:
            report = await task
        except asyncio.CancelledError:
            if not interrupted:
                raise
            print("etrusted-kit bench: interrupted; cleaned up", file=sys.stderr)
            return 130
    print(report.table())
    if args.json is not None:
        path: Path = args.json
        text = json.dumps(report.to_json(), indent=2) + "\n"
        await asyncio.to_thread(path.write_text, text)
        print(f"results written to {path}", file=sys.stderr)
    return 0


async def _budget(args: argparse.Namespace) -> int:
    if args.db is not None:
        raise ConfigError("bench --budget measures SQLite in a temporary directory; drop --db")
    with tempfile.TemporaryDirectory(prefix="etrusted-kit-budget-") as workdir:
        budget = await run_budget(Path(workdir), quick=args.quick)
    print(budget.table())
    if args.json is not None:
        await asyncio.to_thread(args.json.write_text, json.dumps(budget.to_json(), indent=2) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure enqueue, delivery, backlog, latency, scale-out and intake against raw "
        "baselines",
        description=(
            "Run each performance figure beside a raw baseline on this machine and print a "
            "table (see docs/performance.md). Uses a sandbox in a separate process and scratch "
            "databases that are removed afterwards; never touches an existing outbox."
        ),
    )
    p.add_argument(
        "figure",
        nargs="?",
        choices=list(FIGURE_GROUPS),
        default=None,
        help="measure only this group of figures (default: all)",
    )
    p.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="postgresql://...[?schema=BASE] to measure PostgreSQL (scratch schemas BASE_*, "
        "dropped afterwards); a SQLite path puts the scratch files in its directory "
        "(default: SQLite in a temporary directory)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes everywhere and a 100k instead of 1M backlog (under a minute)",
    )
    p.add_argument(
        "--budget",
        action="store_true",
        help="instead of the figures: the kit's own cost per event, part by part (SQLite; "
        "validation, encoding, the row write, delivery bookkeeping without HTTP)",
    )
    p.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write JSON here")
    p.set_defaults(func=cmd_bench)
