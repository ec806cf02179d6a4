"""The kit's metrics in a Prometheus registry of its own, readable with or without HTTP.

Two kinds of figures:

- Counted as they happen, through the observer hooks of the flusher
  (:class:`~kit.flusher.FlusherObserver`), of the webhook routes
  (:class:`~kit.webhooks.WebhookObserver`: answers, answer times) and of the intake
  (:class:`~kit.journal.ingest.IngestObserver`: events and decisions, pushed or polled).
- Read when asked (:meth:`Metrics.refresh`, then a custom collector): the outbox's entries by
  state and its ages, the flusher's counters, whether it runs or is paused. The outbox is read
  with one ``stats()`` query per scrape, not per change.

The registry is the one handed in, or a new one: never the global default registry, so an
application that embeds the kit keeps its own metrics apart (or hands its registry in to get
both on one page).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from kit.feeds.checkpoint import CheckpointStore
from kit.flusher import Flusher
from kit.flusher.decisions import Decision
from kit.journal.records import IngestResult, IngestStatus
from kit.metrics import labels
from kit.metrics.feeds import FeedHealth, FeedWatch, empty_feed_families
from kit.outbox import Outbox
from kit.outbox.types import AttemptKind, Claimed, Delivered, OutboxStats, State
from kit.webhooks.answer import WebhookAnswer

PREFIX = "etrusted_kit"

# Seconds; a delivery normally takes well under one, an outage minutes to hours.
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
# A platform gives up on a webhook after a few seconds (Shopify after 5).
_ANSWER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# FlusherStats field -> (metric name without _total, help). This process's counts.
_FLUSHER_COUNTERS = {
    "delivered": ("delivered", "Entries eTrusted accepted (a 202), sent by this process."),
    "adopted": ("adopted", "In-doubt entries found in eTrusted by reconciliation (adopted)."),
    "dead": ("dead", "Entries parked as dead for an operator."),
    "blind_resends": ("blind_resends", "In-doubt entries sent again without proof."),
    "retried": ("retries", "Failed sends put back to try again later."),
    "in_doubt": ("in_doubt", "Sends whose outcome is unknown (timeout after the POST left)."),
    "rate_limited": ("rate_limited", "429 answers from eTrusted."),
    "auth_pauses": ("auth_pauses", "Pauses because eTrusted refused the credentials."),
}


class Metrics:
    """The kit's metrics: hand it to a :class:`~kit.serve.Service` (or to a
    :class:`~kit.flusher.Flusher`, :class:`~kit.webhooks.Webhooks` and
    :class:`~kit.journal.Intake` as their ``observer``),
    :meth:`watch` the outbox and the flusher, then :meth:`refresh` and read :meth:`snapshot`
    or :meth:`text`. ``sources`` are the configured source names, the only ones used as
    label values.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        sources: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.sources = frozenset(sources)
        self._clock = clock
        self._outbox: Outbox | None = None
        self._flusher: Flusher | None = None
        self._running: Callable[[], bool] = lambda: False
        self._stats: OutboxStats | None = None
        self._stats_at = 0.0
        self._stats_ok = False
        self._feeds: FeedWatch | None = None
        r = self.registry
        self.webhooks = Counter(
            f"{PREFIX}_webhooks",
            "Webhook deliveries answered, by source and answer (accepted, duplicate, skipped "
            "or the refusal's word).",
            ["source", "answer"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            f"{PREFIX}_webhook_answer_seconds",
            "Time from a delivery's arrival to its answer.",
            ["source"],
            buckets=_ANSWER_BUCKETS,
            registry=r,
        )
        self.skipped = Counter(
            f"{PREFIX}_skipped_deliveries",
            "Deliveries an adapter skipped on purpose, by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.events = Counter(
            f"{PREFIX}_domain_events",
            "Domain events journaled from webhook deliveries, by source and event kind.",
            ["source", "event_kind"],
            registry=r,
        )
        self.decisions = Counter(
            f"{PREFIX}_decisions",
            "Policy decisions carried out, by source, outcome and skip reason.",
            ["source", "outcome", "reason"],
            registry=r,
        )
        self.enqueued = Counter(
            f"{PREFIX}_enqueued", "Outbox entries created by the intake.", ["source"], registry=r
        )
        self.cancelled = Counter(
            f"{PREFIX}_cancelled",
            "Waiting outbox entries withdrawn by a later event.",
            ["source"],
            registry=r,
        )
        self.attempts = Counter(
            f"{PREFIX}_http_attempts",
            "Requests to eTrusted for outbox entries, by kind and status class (none: no "
            "answer, as on a timeout or a refused connection).",
            ["kind", "status_class"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_delivery_latency_seconds",
            "From an entry's first claim to eTrusted accepting it (waiting before the first "
            "claim shows in etrusted_kit_oldest_due_age_seconds).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        r.register(_ReadCollector(self))
        # Every known series at 0 from the start: a rate() over a counter that appears only at
        # its first increment misses that increment.
        for name in self.sources:
            for word in labels.ANSWERS:
                self.webhooks.labels(name, word)
            self.enqueued.labels(name)
            self.cancelled.labels(name)
        for kind in AttemptKind:
            for status in labels.STATUS_CLASSES:
                self.attempts.labels(kind.value, status)

    # -- what is read on request -------------------------------------------------------------

    def watch(
        self,
        *,
        outbox: Outbox | None = None,
        flusher: Flusher | None = None,
        running: Callable[[], bool] | None = None,
    ) -> None:
        """Read ``outbox`` on :meth:`refresh` and ``flusher``'s counters and pauses on each
        collection; ``running`` says whether the flusher runs (default: watched means running)."""
        if outbox is not None:
            self._outbox = outbox
        if flusher is not None:
            self._flusher = flusher
            self._running = running if running is not None else (lambda: True)

    def watch_feeds(
        self,
        checkpoints: CheckpointStore,
        intervals: Mapping[str, float],
        health: Callable[[], Iterable[FeedHealth]] = tuple,
    ) -> None:
        """Report the poll lag of the feeds in ``intervals`` (source -> poll interval in
        seconds), read from ``checkpoints`` on :meth:`refresh`."""
        self._feeds = FeedWatch(checkpoints, intervals, health, started_at=self._clock())

    async def refresh(self, *, timeout: float = 5.0) -> bool:  # noqa: ASYNC109 - a scrape bound
        """Read the outbox's figures now; False (and the gauge ``etrusted_kit_outbox_up`` 0)
        when it could not be read in ``timeout`` seconds."""
        if self._outbox is None:
            return False
        try:
            async with asyncio.timeout(timeout):
                self._stats = await self._outbox.stats()
                if self._feeds is not None:
                    await self._feeds.refresh()
        except Exception:  # noqa: BLE001 - a scrape reports the database down; it never fails
            self._stats_ok = False
            return False
        self._stats_at = self._clock()
        self._stats_ok = True
        return True

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, float]:
        """Every sample now, keyed ``name{label="value",...}`` as in the text format."""
        out: dict[str, float] = {}
        for family in self.registry.collect():
            for sample in family.samples:
                shown = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{shown}}}" if shown else sample.name] = sample.value
        return out

    def text(self) -> bytes:
        """The Prometheus text format of the registry (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    # -- the observers -----------------------------------------------------------------------

    def decided(
        self, item: Claimed, decision: Decision, kind: AttemptKind | None, now: float
    ) -> None:
        if kind is not None:
            self.attempts.labels(kind.value, labels.status_class(decision.status)).inc()
        outcome = decision.outcome
        if isinstance(outcome, Delivered) and not outcome.adopted:
            self.latency.observe(max(0.0, now - item.created_at))

    def answered(
        self,
        source: str | None,
        answer: WebhookAnswer,
        result: IngestResult | None,
        seconds: float,
    ) -> None:
        name = labels.source(source, self.sources)
        self.webhooks.labels(name, labels.answer(answer.status, answer.body)).inc()
        self.webhook_seconds.labels(name).observe(seconds)

    def ingested(self, source: str, result: IngestResult) -> None:
        name = labels.source(source, self.sources)
        if result.status is IngestStatus.SKIPPED and result.skip is not None:
            self.skipped.labels(name, labels.skip_reason(result.skip.reason)).inc()
        for kind in result.kinds:
            self.events.labels(name, labels.event_kind(kind)).inc()
        for journaled in result.decisions:
            outcome = journaled.outcome.value
            reason = labels.skip_reason(getattr(journaled.decision, "reason", None))
            self.decisions.labels(name, outcome, reason).inc()
            if outcome == "enqueued":
                self.enqueued.labels(name).inc()
            elif outcome == "cancelled":
                self.cancelled.labels(name).inc()

    # -- for the collector -------------------------------------------------------------------

    def _read(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            f"{PREFIX}_outbox_up",
            "1 when the last read of the outbox's figures succeeded.",
            value=1.0 if self._stats_ok else 0.0,
        )
        yield from _outbox_families(self._stats, self._stats_at)
        if self._feeds is not None:
            yield from self._feeds.families(self._clock())
        else:
            yield from empty_feed_families()
        flusher = self._flusher
        yield GaugeMetricFamily(
            f"{PREFIX}_flusher_running",
            "1 while this process's flusher runs.",
            value=1.0 if flusher is not None and self._running() else 0.0,
        )
        paused = GaugeMetricFamily(
            f"{PREFIX}_flusher_paused",
            "1 while the flusher sends nothing: refused credentials, or eTrusted's rate limit.",
            labels=["pause"],
        )
        paused.add_metric(
            ["credentials"], float(flusher is not None and flusher.paused_by_credentials)
        )
        paused.add_metric(["rate_limit"], float(flusher is not None and flusher.paced))
        yield paused
        counts = flusher.stats if flusher is not None else None
        for field, (name, doc) in _FLUSHER_COUNTERS.items():
            value = 0 if counts is None else getattr(counts, field)
            yield CounterMetricFamily(f"{PREFIX}_{name}", doc, value=float(value))


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    """A gauge family, without a sample while its value is unknown (the outbox unread yet)."""
    family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=[])
    if value is not None:
        family.add_metric([], value)
    return family


def _age(now: float, since: float | None) -> float:
    return 0.0 if since is None else max(0.0, now - since)


def _outbox_families(stats: OutboxStats | None, now: float) -> Iterator[GaugeMetricFamily]:
    """The outbox's figures as last read; every family always named, with samples once read."""
    entries = GaugeMetricFamily(f"{PREFIX}_entries", "Outbox entries by state.", labels=["state"])
    if stats is not None:
        for state in State:
            entries.add_metric([state.value], float(stats.counts.get(state, 0)))
    yield entries
    due = None if stats is None else stats.earliest_due_at
    yield _gauge(
        "oldest_due_age_seconds",
        "How long the pending entry due longest has waited to be sent (0: none due).",
        None if stats is None else (0.0 if due is None or due > now else now - due),
    )
    yield _gauge(
        "backing_off_entries",
        "Pending entries waiting to try again after a failure.",
        None if stats is None else float(stats.backing_off),
    )
    yield _gauge(
        "oldest_backing_off_age_seconds",
        "Age since enqueue of the oldest entry backing off after a failure (0: none).",
        None if stats is None else _age(now, stats.oldest_backing_off_created_at),
    )
    yield _gauge(
        "oldest_pending_age_seconds",
        "Age of the oldest pending entry, held-back ones included (0: none).",
        None if stats is None else _age(now, stats.oldest_pending_created_at),
    )


class _ReadCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return self._metrics._read()


__all__ = ["PREFIX", "Metrics"]
