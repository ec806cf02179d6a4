"""Reading a feed page by page without running the platform's budget dry or giving up early.

:class:`Pacer` remembers the budget the last page reported and, before the next request, waits
until the budget (refilling at its restore rate since then) covers what a page costs, so the
platform never has to throttle a paced reader. :func:`read_with_retries` makes one page request
survive what passes: throttling waits for what the platform asked (or for the restore time),
a 5xx or a broken connection backs off with full jitter (:class:`kit.retry.Backoff`); a refused
token raises at once, since no wait mends it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

import attrs

from kit.errors import FeedError, FeedThrottledError, FeedUnavailableError
from kit.feeds.contract import Budget, FeedPage
from kit.retry import Backoff

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
MARGIN = 1.0  # budget units kept in hand beyond a page's cost


@attrs.define
class Pacer:
    """Waits, before each request, for the budget one page needs."""

    monotonic: Callable[[], float] = time.monotonic
    budget: Budget | None = None
    seen_at: float = 0.0
    waited: float = 0.0  # seconds spent waiting for the budget, for the report

    def observe(self, budget: Budget | None) -> None:
        if budget is not None:
            self.budget = budget
            self.seen_at = self.monotonic()

    def available(self) -> float | None:
        """The budget now, refilled since it was reported; None when the platform gives none."""
        b = self.budget
        if b is None:
            return None
        elapsed = max(0.0, self.monotonic() - self.seen_at)
        return min(b.maximum, b.available + b.restore_rate * elapsed)

    def wait_needed(self) -> float:
        """Seconds until the budget covers the next page (estimated as the last page's cost),
        with one unit to spare for the platform's rounding of what it reports."""
        b = self.budget
        now = self.available()
        if b is None or now is None or b.restore_rate <= 0:
            return 0.0
        need = min(b.maximum, b.cost + MARGIN)
        return max(0.0, need - now) / b.restore_rate


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How long a page request keeps trying: ``attempts`` failures in a row that pass (5xx,
    network) and ``throttles`` throttled answers in a row, before the run gives up."""

    backoff: Backoff = attrs.field(factory=lambda: Backoff(base=1.0, cap=60.0))
    attempts: int = 8
    throttles: int = 30


@attrs.define
class RequestStats:
    requests: int = 0
    throttled: int = 0
    failures: int = 0


async def read_with_retries(
    request: Callable[[], Awaitable[FeedPage]],
    *,
    pacer: Pacer,
    policy: RetryPolicy,
    stats: RequestStats,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
    source: str = "",
) -> FeedPage:
    """One page, paced and retried (see the module); the last error once the policy is spent."""
    failures = 0
    throttles = 0
    while True:
        wait = pacer.wait_needed()
        if wait > 0:
            pacer.waited += wait
            await sleep(wait)
        stats.requests += 1
        try:
            page = await request()
        except FeedThrottledError as exc:
            stats.throttled += 1
            throttles += 1
            if throttles >= policy.throttles:
                raise
            delay = policy.backoff.delay(throttles, retry_after=exc.retry_after, rng=rng)
            _log_retry(source, "throttled", delay, exc)
            await sleep(delay)
            continue
        except FeedUnavailableError as exc:
            stats.failures += 1
            failures += 1
            if failures >= policy.attempts:
                raise
            delay = policy.backoff.delay(failures, rng=rng)
            _log_retry(source, "unavailable", delay, exc)
            await sleep(delay)
            continue
        pacer.observe(page.budget)
        return page


def _log_retry(source: str, why: str, delay: float, exc: FeedError) -> None:
    logger.warning(
        "feed of %s %s, reading the page again in %.1fs: %s",
        source,
        why,
        delay,
        exc,
        extra={"action": "feed.retry", "source": source, "reason": why, "delay": delay},
    )


__all__ = ["Pacer", "RequestStats", "RetryPolicy", "Sleep", "read_with_retries"]
