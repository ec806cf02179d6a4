"""What the flusher tests with doubles share: a fast config, a settable clock, a bounded wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from builders import T0

from kit.flusher import FlusherConfig
from kit.retry import Backoff

CONFIG = FlusherConfig(
    owner="under-test",
    concurrency=2,
    lease_seconds=10.0,
    poll_interval=0.01,
    max_sends=5,
    backoff=Backoff(base=0.01, cap=0.05),
    reconcile_delay=0.0,
    reconcile_interval=1.0,
    reconcile_window=5.0,
    grace_period=5.0,
    check_event_types=False,
)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def wait_until(predicate: Callable[[], Any], limit: float = 10.0) -> None:
    """Wait for a condition the code under test makes true (bounded; not a timing bet)."""
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.005)


class LoopTime:
    """The running event loop's clock, ``ahead`` seconds ahead of the real one: moving it on
    fires the timers due by then at the loop's next turn, without waiting for real time."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        self._real = loop.time
        self.ahead = 0.0
        monkeypatch.setattr(loop, "time", self)

    def __call__(self) -> float:
        return self._real() + self.ahead
