"""Tools every figure shares: rates, a quiet disk before each round, alternation, the machine."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import resource
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from kit import jsonenc


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "aiohttp": aiohttp.__version__,
        "json_encoder": jsonenc.ENCODER,
        "loadavg_start": loadavg(),
    }


def peak_rss_kb() -> int:
    """This process's peak resident set size (VmHWM; ru_maxrss where /proc is missing)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def settle() -> None:
    """Let the previous run's dirty pages reach the disk and its garbage go, before timing.

    Without this, SQLite's checkpoint fsyncs in one run wait for the write-back of the run
    before it, and whichever side runs second looks several times slower.
    """
    await asyncio.to_thread(os.sync)
    gc.collect()


async def interleaved(
    rounds: int,
    kit: Callable[[int], Awaitable[float]],
    baseline: Callable[[int], Awaitable[float]],
) -> tuple[list[float], list[float]]:
    """Run kit and baseline rounds alternately (who goes first alternates too)."""
    kits: list[float] = []
    bases: list[float] = []
    for r in range(rounds):
        for which in ("kit", "baseline") if r % 2 == 0 else ("baseline", "kit"):
            await settle()
            if which == "kit":
                kits.append(await kit(r))
            else:
                bases.append(await baseline(r))
    return kits, bases
