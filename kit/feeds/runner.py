"""The kit's loop around a feed adapter: read page after page, journal every order, checkpoint.

One :class:`FeedRunner` serves one source. :meth:`FeedRunner.backfill` reads a window once
(``etrusted-kit backfill``); :meth:`FeedRunner.poll` reads what changed since the last poll;
:meth:`FeedRunner.run_forever` polls every ``interval`` until told to stop (what ``serve``
starts per source). Each page goes the same way:

1. read it, paced and retried (:mod:`kit.feeds.pacing`);
2. take each order in through :meth:`kit.journal.Intake.ingest`, one transaction each: the
   journal records an order version once, so the overlap and a resumed run's re-read are
   duplicates; an order placed before ``max_age`` is journaled as skipped ``too_old``;
3. save the checkpoint (:mod:`kit.feeds.checkpoint`): the newest change time on the page.

A run starts ``overlap`` before its checkpoint, because a platform's listing can lag behind its
writes (an order saved a moment before the last poll may only show up now). A dry run decides
each order in memory (:mod:`kit.feeds.preview`) and writes nothing, not even a checkpoint.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import attrs

from kit.configfile.model import SourceConfig
from kit.domain import Skip, SkipReason
from kit.errors import FeedAuthError, KitError
from kit.feeds.checkpoint import Checkpoint, CheckpointStore, Run
from kit.feeds.contract import Budget, FeedAdapter, FeedOrder, FeedWindow, load_feed
from kit.feeds.pacing import Pacer, RequestStats, RetryPolicy, Sleep, read_with_retries
from kit.feeds.preview import preview
from kit.journal import Intake, IntakeSource, Outcome
from kit.journal.records import IngestStatus
from kit.policy import Enqueue, Skipped

logger = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)
FIRST_POLL_LOOKBACK = timedelta(days=1)


@attrs.frozen(kw_only=True)
class FeedSource:
    """A configured source with a feed: its feed adapter, and the intake side (policy)."""

    name: str
    feed: FeedAdapter
    intake: IntakeSource

    @classmethod
    def from_config(cls, config: SourceConfig) -> FeedSource:
        plugin = load_feed(config.adapter)
        return cls(
            name=config.name,
            feed=plugin.create_feed(source=config.name, config=config.adapter_config),
            intake=IntakeSource.from_config(config),
        )


@attrs.define
class Tally:
    """What a run did so far; shown as progress and as the summary."""

    run: Run
    dry_run: bool = False
    resumed: bool = False
    since: datetime | None = None  # where reading started (checkpoint minus overlap)
    pages: int = 0
    orders: int = 0
    enqueued: int = 0  # entries written (a dry run: entries that would be written)
    duplicates: int = 0  # order versions the journal already held
    skipped: collections.Counter[str] = attrs.Factory(collections.Counter)  # reason -> orders
    other: collections.Counter[str] = attrs.Factory(collections.Counter)  # decision kind -> n
    high_water: datetime | None = None
    budget: Budget | None = None
    stats: RequestStats = attrs.Factory(RequestStats)
    waited: float = 0.0  # seconds spent pacing

    def as_dict(self) -> dict[str, object]:
        return {
            "run": self.run.value,
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "since": self.since.isoformat() if self.since else None,
            "pages": self.pages,
            "orders": self.orders,
            "enqueued": self.enqueued,
            "duplicates": self.duplicates,
            "skipped": dict(sorted(self.skipped.items())),
            "other": dict(sorted(self.other.items())),
            "high_water": self.high_water.isoformat() if self.high_water else None,
            "requests": self.stats.requests,
            "throttled": self.stats.throttled,
            "failures": self.stats.failures,
            "paced_seconds": round(self.waited, 3),
        }


Progress = Callable[[Tally], None]


def _ts(value: datetime) -> float:
    return value.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class FeedRunner:
    """Reads one source's feed into the journal (see the module docstring)."""

    def __init__(
        self,
        source: FeedSource,
        *,
        intake: Intake,
        checkpoints: CheckpointStore,
        session: aiohttp.ClientSession,
        overlap: timedelta = OVERLAP,
        retry: RetryPolicy | None = None,
        first_poll_lookback: timedelta = FIRST_POLL_LOOKBACK,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._source = source
        self._intake = intake
        self._checkpoints = checkpoints
        self._session = session
        self._overlap = overlap
        self._retry = retry if retry is not None else RetryPolicy()
        self._lookback = first_poll_lookback
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._rng = rng

    @property
    def source(self) -> FeedSource:
        return self._source

    async def backfill(
        self, window: FeedWindow, *, dry_run: bool = False, progress: Progress | None = None
    ) -> Tally:
        """Read ``window`` once, resuming an interrupted backfill of the same window."""
        since, until = _ts(window.since), None if window.until is None else _ts(window.until)
        saved = await self._checkpoints.load(self._source.name, Run.BACKFILL)
        resume = (
            saved is not None
            and not saved.done
            and saved.high_water is not None
            and (saved.since, saved.until) == (since, until)
        )
        if resume:
            assert saved is not None
            assert saved.high_water is not None
            start = max(since, saved.high_water - self._overlap.total_seconds())
            base = saved
        else:
            start = since
            base = Checkpoint(source=self._source.name, run=Run.BACKFILL, since=since, until=until)
        tally = Tally(run=Run.BACKFILL, dry_run=dry_run, resumed=resume)
        return await self._read(base, start, until, tally, dry_run=dry_run, progress=progress)

    async def poll(self, *, progress: Progress | None = None) -> Tally:
        """Read what changed since the last poll (minus the overlap); the first poll reads
        ``first_poll_lookback`` back."""
        now = self._clock()
        saved = await self._checkpoints.load(self._source.name, Run.POLL)
        if saved is not None and saved.high_water is not None:
            start = saved.high_water - self._overlap.total_seconds()
            base = saved
        else:
            start = now - self._lookback.total_seconds()
            base = Checkpoint(source=self._source.name, run=Run.POLL, since=start)
        tally = Tally(run=Run.POLL)
        return await self._read(base, start, None, tally, dry_run=False, progress=progress)

    async def run_forever(self, interval: timedelta, *, stop: asyncio.Event) -> None:
        """Poll every ``interval`` until ``stop`` is set. A failure that passes (the platform
        down past the retries, the database away) is logged and the next poll tries again; a
        refused token ends the loop with :class:`~kit.errors.FeedAuthError`."""
        seconds = interval.total_seconds()
        while not stop.is_set():
            try:
                await self.poll()
            except FeedAuthError:
                raise
            except KitError as exc:
                logger.error(
                    "poll of %s failed, trying again in %.0fs: %s",
                    self._source.name,
                    seconds,
                    exc,
                    extra={"action": "feed.poll_failed", "source": self._source.name},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=seconds)

    # -- the loop ---------------------------------------------------------------------------

    async def _read(
        self,
        base: Checkpoint,
        start: float,
        until: float | None,
        tally: Tally,
        *,
        dry_run: bool,
        progress: Progress | None,
    ) -> Tally:
        feed = self._source.feed
        window = FeedWindow(since=_dt(start), until=None if until is None else _dt(until))
        tally.since = window.since
        high = base.high_water
        pacer = Pacer(monotonic=self._monotonic)
        cursor: str | None = None
        while True:
            page = await read_with_retries(
                functools.partial(feed.read_page, self._session, window, cursor),
                pacer=pacer,
                policy=self._retry,
                stats=tally.stats,
                sleep=self._sleep,
                rng=self._rng,
                source=self._source.name,
            )
            for order in page.orders:
                await self._take(order, tally, dry_run=dry_run)
            if page.orders:
                newest = max(_ts(o.updated_at) for o in page.orders)
                high = newest if high is None else max(high, newest)
            tally.pages += 1
            tally.orders += len(page.orders)
            tally.high_water = None if high is None else _dt(high)
            tally.budget = page.budget or tally.budget
            tally.waited = pacer.waited
            done = page.next_page is None
            if not dry_run:
                await self._checkpoints.save(
                    attrs.evolve(
                        base,
                        since=base.since if base.run is Run.BACKFILL else start,
                        high_water=high,
                        pages=base.pages + tally.pages,
                        orders=base.orders + tally.orders,
                        done=done,
                        saved_at=self._clock(),
                    )
                )
            if progress is not None:
                progress(tally)
            if done:
                break
            cursor = page.next_page
        _log_run(self._source.name, tally)
        return tally

    async def _take(self, order: FeedOrder, tally: Tally, *, dry_run: bool) -> None:
        now = self._clock()
        parsed = order.parsed
        max_age = self._source.feed.max_age
        if order.placed_at is not None and _ts(order.placed_at) < now - max_age.total_seconds():
            parsed = Skip(
                SkipReason.TOO_OLD,
                f"placed {order.placed_at.date().isoformat()}, max_age {max_age.days}d",
            )
        if dry_run:
            seen = await preview(
                self._intake.journal,
                self._source.name,
                self._source.intake.policy,
                attrs.evolve(order, parsed=parsed),
            )
            if seen.duplicate:
                tally.duplicates += 1
            elif seen.skip is not None:
                tally.skipped[seen.skip.reason.value] += 1
            for decision in seen.decisions:
                _count_decision(tally, decision, enqueued=isinstance(decision, Enqueue))
            return
        result = await self._intake.ingest(
            self._source.intake, order.identity, parsed, received_at=now
        )
        if result.status is IngestStatus.DUPLICATE:
            tally.duplicates += 1
        elif result.status is IngestStatus.SKIPPED and result.skip is not None:
            tally.skipped[result.skip.reason.value] += 1
        for journaled in result.decisions:
            _count_decision(
                tally, journaled.decision, enqueued=journaled.outcome is Outcome.ENQUEUED
            )


def _count_decision(tally: Tally, decision: object, *, enqueued: bool) -> None:
    if enqueued:
        tally.enqueued += 1
    elif isinstance(decision, Skipped):
        tally.skipped[decision.reason.value] += 1
    else:
        tally.other[str(getattr(decision, "kind", "?"))] += 1


def _log_run(source: str, tally: Tally) -> None:
    logger.info(
        "%s of %s: %d pages, %d orders, %d enqueued, %d already journaled",
        tally.run.value,
        source,
        tally.pages,
        tally.orders,
        tally.enqueued,
        tally.duplicates,
        extra={"action": f"feed.{tally.run.value}", "source": source, **tally.as_dict()},
    )


__all__ = ["FIRST_POLL_LOOKBACK", "OVERLAP", "FeedRunner", "FeedSource", "Progress", "Tally"]
