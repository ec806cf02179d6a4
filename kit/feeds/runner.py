"""The kit's loop around a feed adapter: read page after page, journal every order, checkpoint.

One :class:`FeedRunner` serves one source. :meth:`FeedRunner.backfill` reads a window once
(``etrusted-kit backfill``); :meth:`FeedRunner.poll` reads what changed since the last poll;
:meth:`FeedRunner.run_forever` polls every ``interval`` until told to stop (what ``serve``
starts per source). Each page goes the same way:

1. read it, paced and retried (:mod:`kit.feeds.pacing`);
2. take each order in through :meth:`kit.journal.Intake.ingest`, one transaction each: the
   journal records an order version once, so the overlap and a resumed run's re-read are
   duplicates; an order placed before ``max_age`` is journaled as skipped ``too_old``, and
   an order whose data the adapter refuses (:class:`~kit.feeds.ListedOrder`) as skipped
   ``unreadable_order``, so that one bad order never holds up the rest of the source;
3. save the checkpoint (:mod:`kit.feeds.checkpoint`): the newest change time on the page.

A run starts ``overlap`` before its checkpoint, because a platform's listing can lag behind its
writes (an order saved a moment before the last poll may only show up now). A dry run decides
each order in memory (:mod:`kit.journal.preview`) and writes nothing, not even a checkpoint.
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

from kit.adapters import DeliveryIdentity, ParseResult, load_plugin
from kit.configfile.model import SourceConfig
from kit.domain import Skip, SkipReason, order_of
from kit.errors import FeedAuthError, KitError, PayloadError
from kit.feeds.checkpoint import Checkpoint, CheckpointStore, Run
from kit.feeds.contract import (
    Budget,
    FeedAdapter,
    FeedOrder,
    FeedPlugin,
    FeedWindow,
    ListedOrder,
    load_feed,
)
from kit.feeds.pacing import Pacer, RequestStats, RetryPolicy, Sleep, read_with_retries
from kit.journal import Intake, IntakeSource, Outcome
from kit.journal.preview import Preview, preview
from kit.journal.records import IngestStatus
from kit.policy import Decision, Enqueue, Skipped
from kit.redact import mask_emails

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
        """The source's feed; :class:`~kit.errors.ConfigError` if its adapter has none."""
        plugin = load_feed(config.adapter)
        return cls(
            name=config.name,
            feed=plugin.create_feed(source=config.name, config=config.adapter_config),
            intake=IntakeSource.from_config(config),
        )

    @classmethod
    def polled(cls, config: SourceConfig) -> FeedSource | None:
        """The source's feed if ``serve`` should poll it: its adapter has a feed and the
        feed's ``poll_interval`` is set (Shopify: and an ``admin_access_token``)."""
        plugin = load_plugin(config.adapter)
        if not isinstance(plugin, FeedPlugin):
            return None
        source = cls.from_config(config)
        return source if source.feed.poll_interval is not None else None


@attrs.frozen(kw_only=True)
class Verdict:
    """What a dry run found for one order: ``outcome`` is ``enqueue``, ``skipped``,
    ``duplicate``, ``nothing_to_do`` or another decision's kind; ``detail`` the event type and
    due time, or the reason. No customer data: the merchant-facing reference and the stream."""

    stream: str
    reference: str | None
    outcome: str
    detail: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return attrs.asdict(self)


@attrs.define
class Tally:
    """What a run did so far; shown as progress and as the summary."""

    run: Run
    dry_run: bool = False
    resumed: bool = False
    done: bool = False  # the window's last page was read
    since: datetime | None = None  # where reading started (checkpoint minus overlap)
    pages: int = 0
    orders: int = 0
    enqueued: int = 0  # entries written (a dry run: entries that would be written)
    duplicates: int = 0  # order versions the journal already held
    skipped: collections.Counter[str] = attrs.Factory(collections.Counter)  # reason -> count
    # decision kind (cancel, amend, throttled) -> count; nothing_to_do: orders that changed
    # nothing (no trigger fired yet, or it fired before)
    other: collections.Counter[str] = attrs.Factory(collections.Counter)
    high_water: datetime | None = None
    budget: Budget | None = None
    stats: RequestStats = attrs.Factory(RequestStats)
    waited: float = 0.0  # seconds spent pacing
    verdicts: list[Verdict] = attrs.Factory(list)  # a dry run's, one per order

    def as_dict(self) -> dict[str, object]:
        return {
            "run": self.run.value,
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "done": self.done,
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

    async def run_forever(
        self,
        interval: timedelta,
        *,
        stop: asyncio.Event,
        on_poll: Callable[[Tally], None] | None = None,
    ) -> None:
        """Poll every ``interval`` until ``stop`` is set; ``on_poll`` gets each completed
        poll's tally. A failure that passes (the platform down past the retries, the database
        away) is logged and the next poll tries again; a refused token ends the loop with
        :class:`~kit.errors.FeedAuthError`."""
        seconds = interval.total_seconds()
        while not stop.is_set():
            try:
                tally = await self.poll()
                if on_poll is not None:
                    on_poll(tally)
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
            read = []
            for entry in page.orders:
                order = await self._read_order(entry, tally, dry_run=dry_run)
                if order is not None:
                    await self._take(order, tally, dry_run=dry_run)
                    read.append(order)
            if read:
                newest = max(_ts(o.updated_at) for o in read)
                high = newest if high is None else max(high, newest)
            tally.pages += 1
            tally.orders += len(page.orders)
            tally.high_water = None if high is None else _dt(high)
            tally.budget = page.budget or tally.budget
            tally.waited = pacer.waited
            done = tally.done = page.next_page is None
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

    async def _read_order(
        self, entry: FeedOrder | ListedOrder, tally: Tally, *, dry_run: bool
    ) -> FeedOrder | None:
        """The entry's order, or ``None`` once an unreadable one is journaled as skipped."""
        if isinstance(entry, FeedOrder):
            return entry
        try:
            return entry.read()
        except PayloadError as exc:
            problem = mask_emails(str(exc))[:_MAX_PROBLEM]
        order_id = entry.order_id[:_MAX_ID]
        logger.warning(
            "%s: order %s is unreadable, journaled as skipped: %s",
            self._source.name,
            order_id,
            problem,
            extra={
                "action": "feed.unreadable_order",
                "source": self._source.name,
                "order_id": order_id,
                "version": entry.version[:_MAX_ID],
            },
        )
        identity = DeliveryIdentity(f"unreadable:{order_id}@{entry.version[:_MAX_ID]}")
        skip = Skip(SkipReason.UNREADABLE_ORDER, problem)
        await self._journal(identity, skip, tally, dry_run=dry_run, stream=order_id)
        return None

    async def _take(self, order: FeedOrder, tally: Tally, *, dry_run: bool) -> None:
        now = self._clock()
        parsed = order.parsed
        max_age = self._source.feed.max_age
        if order.placed_at is not None and _ts(order.placed_at) < now - max_age.total_seconds():
            parsed = Skip(
                SkipReason.TOO_OLD,
                f"placed {order.placed_at.date().isoformat()}, max_age {max_age.days}d",
            )
        await self._journal(
            order.identity, parsed, tally, dry_run=dry_run, stream=order.stream, read=order.parsed
        )

    async def _journal(
        self,
        identity: DeliveryIdentity,
        parsed: ParseResult,
        tally: Tally,
        *,
        dry_run: bool,
        stream: str,
        read: ParseResult | None = None,
    ) -> None:
        """Take one order in (a dry run: decide it in memory) and count what it did; ``read``
        is what the order's data said (a dry run's verdict names its reference)."""
        if dry_run:
            seen = await preview(
                self._intake.journal,
                self._source.name,
                self._source.intake.policy,
                identity,
                parsed,
            )
            if seen.duplicate:
                tally.duplicates += 1
            elif seen.skip is not None:
                tally.skipped[seen.skip.reason.value] += 1
            else:
                _count_order(tally, [(d, isinstance(d, Enqueue)) for d in seen.decisions])
            tally.verdicts.extend(_verdicts(stream, _reference(read), seen))
            return
        result = await self._intake.ingest(
            self._source.intake, identity, parsed, received_at=self._clock()
        )
        if result.status is IngestStatus.DUPLICATE:
            tally.duplicates += 1
        elif result.status is IngestStatus.SKIPPED and result.skip is not None:
            tally.skipped[result.skip.reason.value] += 1
        else:
            _count_order(
                tally, [(j.decision, j.outcome is Outcome.ENQUEUED) for j in result.decisions]
            )


_QUIET = frozenset({"recorded", "stale"})  # decisions that change nothing
_MAX_PROBLEM = 200  # characters of an unreadable order's error kept in the log and journal
_MAX_ID = 64  # characters of a listed order's id and version: the platform's, unvalidated


def _reference(read: ParseResult | None) -> str | None:
    if read is None or isinstance(read, Skip):
        return None
    facts = next((f for f in map(order_of, read) if f is not None), None)
    return None if facts is None else facts.reference


def _verdicts(stream: str, reference: str | None, seen: Preview) -> list[Verdict]:
    def verdict(outcome: str, detail: str | None = None) -> Verdict:
        return Verdict(stream=stream, reference=reference, outcome=outcome, detail=detail)

    if seen.duplicate:
        return [verdict("duplicate")]
    if seen.skip is not None:
        return [verdict("skipped", seen.skip.reason.value)]
    out = []
    for decision in seen.decisions:
        if isinstance(decision, Enqueue):
            due = decision.send_after.isoformat()
            out.append(verdict("enqueue", f"{decision.event_type}, due {due}"))
        elif isinstance(decision, Skipped):
            out.append(verdict("skipped", decision.reason.value))
        elif decision.kind not in _QUIET:
            out.append(verdict(decision.kind))
    return out or [verdict("nothing_to_do")]


def _count_order(tally: Tally, decisions: list[tuple[Decision, bool]]) -> None:
    """One order's decisions into the tally: its entries, its skips with their reasons, what
    else it changed, or ``nothing_to_do`` when it changed nothing."""
    changed = False
    for decision, enqueued in decisions:
        if enqueued:
            tally.enqueued += 1
        elif isinstance(decision, Skipped):
            tally.skipped[decision.reason.value] += 1
        elif decision.kind in _QUIET:
            continue
        else:
            tally.other[decision.kind] += 1
        changed = True
    if not changed:
        tally.other["nothing_to_do"] += 1


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


__all__ = [
    "FIRST_POLL_LOOKBACK",
    "OVERLAP",
    "FeedRunner",
    "FeedSource",
    "Progress",
    "Tally",
    "Verdict",
]
