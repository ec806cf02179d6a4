"""Entry counts by state over the last hours, for the operator page.

A small ring in the admin app's memory, sampled on a fixed interval: no table, no migration,
and nothing to clean up. A restart starts it anew; Prometheus keeps the long history.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping

import attrs
from aiohttp import web

from kit.outbox import Outbox
from kit.outbox.types import State

log = logging.getLogger("kit.admin.trend")

INTERVAL = 300.0  # one sample every five minutes ...
CAPACITY = 72  # ... for the last six hours


@attrs.frozen
class Sample:
    at: float
    counts: tuple[tuple[str, int], ...]  # (state, count) in State's order


class CountsTrend:
    """The newest ``capacity`` samples, oldest first."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._samples: collections.deque[Sample] = collections.deque(maxlen=capacity)

    def record(self, at: float, counts: Mapping[State, int]) -> None:
        self._samples.append(Sample(at, tuple((s.value, counts.get(s, 0)) for s in State)))

    @property
    def samples(self) -> tuple[Sample, ...]:
        return tuple(self._samples)


def sampling(
    trend: CountsTrend,
    outbox: Callable[[], Outbox | None],
    *,
    interval: float = INTERVAL,
    clock: Callable[[], float] = time.time,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context that samples while the app runs (first sample at start)."""

    async def sample_forever() -> None:
        while True:
            opened = outbox()
            if opened is not None:
                try:
                    trend.record(clock(), (await opened.stats()).counts)
                except Exception as exc:  # noqa: BLE001 - a gap in the trend, not a crash
                    log.info("trend sample skipped: %s", type(exc).__name__)
            await asyncio.sleep(interval)

    async def context(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sample_forever())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return context


__all__ = ["CAPACITY", "INTERVAL", "CountsTrend", "Sample", "sampling"]
