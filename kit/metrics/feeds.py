"""How long ago each polled feed was last polled, by any replica: read from the feed's poll
checkpoint in the database (saved after every page, an empty one included), so a replica on
standby reports the same lag as the one that polls."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import attrs
from prometheus_client.core import GaugeMetricFamily

from kit.feeds.checkpoint import CheckpointStore, MemoryCheckpoints, Run

PREFIX = "etrusted_kit"


@attrs.frozen
class FeedHealth:
    """What a poller of this process says about itself (``failed``: it stopped for good)."""

    source: str
    failed: bool


class FeedWatch:
    """The polled feeds, their intervals (seconds), and the last poll time read per source."""

    def __init__(
        self,
        checkpoints: CheckpointStore,
        intervals: Mapping[str, float],
        health: Callable[[], Iterable[FeedHealth]],
        started_at: float,
    ) -> None:
        self._checkpoints = checkpoints
        self._intervals = dict(intervals)
        self._health = health
        self._started_at = started_at
        self._last: dict[str, float] = {}

    async def refresh(self) -> None:
        for source in self._intervals:
            saved = await self._checkpoints.load(source, Run.POLL)
            if saved is not None and saved.saved_at:
                self._last[source] = saved.saved_at

    def families(self, now: float) -> Iterator[GaugeMetricFamily]:
        seconds = GaugeMetricFamily(
            f"{PREFIX}_feed_poll_lag_seconds",
            "Seconds since any replica last saved a poll of this source's feed (since this "
            "process started, if never).",
            labels=["source"],
        )
        intervals = GaugeMetricFamily(
            f"{PREFIX}_feed_poll_lag_intervals",
            "The same lag in poll intervals: 3 or more means polls are being missed.",
            labels=["source"],
        )
        failed = GaugeMetricFamily(
            f"{PREFIX}_feed_poller_failed",
            "1 when this process's poller of the source stopped (refused credentials).",
            labels=["source"],
        )
        for source, interval in self._intervals.items():
            lag = max(0.0, now - self._last.get(source, self._started_at))
            seconds.add_metric([source], lag)
            intervals.add_metric([source], lag / interval)
        for health in self._health():
            failed.add_metric([health.source], float(health.failed))
        yield seconds
        yield intervals
        yield failed


def empty_feed_families() -> Iterator[GaugeMetricFamily]:
    """The feed families without samples: named on every scrape, also with no feed polled."""
    return FeedWatch(MemoryCheckpoints(), {}, tuple, 0.0).families(0.0)


__all__ = ["FeedHealth", "FeedWatch", "empty_feed_families"]
