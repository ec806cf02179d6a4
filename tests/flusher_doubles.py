"""What the flusher tests with doubles share: a fast config, a settable clock, a bounded wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kit.flusher import FlusherConfig
from kit.retry import Backoff

T0 = 1_700_000_000.0
CHANNEL = "chl-11111111-2222-3333-4444-555555555555"


def event(i: int, *, email: str | None = None) -> dict[str, Any]:
    return {
        "type": "order_shipped",
        "customer": {"email": email or f"buyer{i}@example.com"},
        "channel": {"id": CHANNEL, "type": "etrusted"},
        "transaction": {"reference": f"order-{i}"},
        "system": "tests",
        "systemVersion": "1.0",
    }


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
