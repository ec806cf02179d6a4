"""The flusher's loop: delivers every outbox entry to eTrusted exactly once.

How, in one paragraph (docs/guarantees.md has the full table): an entry is claimed under a lease
and a fencing attempt number, and marked ``sending`` in the database *before* its POST leaves.
A 202 records the returned ``EventRef``. A failure that proves nothing was created (4xx, 5xx,
429, connection refused) is retried with backoff or dead-lettered. A failure after which the
event may exist (timeout, disconnect, a flusher killed mid-POST whose lease then expired) makes
the entry ``in_doubt``, and an in-doubt entry is never POSTed again until reconciliation has
looked for it in eTrusted (:mod:`kit.reconcile`) for a whole window and found nothing. Every
result is written with ``WHERE attempt = <ours>``, so a flusher that lost its lease cannot
overwrite a newer attempt.

The feeder, the workers, the writer and the shutdown live together in this module because
together they are that protocol. What to do with each result is decided by the pure functions
of :mod:`kit.flusher.decisions`; which types eTrusted knows, by :mod:`kit.flusher.catalog`.

Throughput comes from claiming in batches, bounded concurrency and writing results in batches
from one writer task; wake-ups come from the in-process :class:`~kit.outbox.Wakeup`, from
LISTEN/NOTIFY where the backend has it, and from a short poll otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable

from kit.errors import (
    AuthenticationError,
    ETrustedError,
    KitError,
    StorageUnavailableError,
)
from kit.flusher import decisions
from kit.flusher.catalog import EventTypeCatalog
from kit.flusher.config import (
    FlusherConfig,
    FlusherStats,
    default_owner,
    warn_if_lease_too_short,
)
from kit.flusher.cutoff import LEASE_OVER, Deadlines, LeaseEnds
from kit.flusher.decisions import Decision
from kit.flusher.delivery import DeliveryClient
from kit.flusher.handoff import Handoff
from kit.flusher.holds import Holds
from kit.flusher.observer import FlusherObserver
from kit.flusher.report import Reporter
from kit.flusher.supervise import RunningFlusher, running
from kit.flusher.wakeups import relay_notifications
from kit.flusher.writer import ResultWriter
from kit.outbox import Outbox
from kit.outbox.protocol import SupportsListen
from kit.outbox.types import (
    AttemptKind,
    Claimed,
    ClaimMode,
    Completion,
    State,
)
from kit.reconcile import find_event, marker_of

logger = logging.getLogger("kit.flusher")

# The longest wait between claims while the database is unreachable.
_OUTAGE_WAIT_MAX = 30.0
# The feeder claims once no more than ``concurrency`` entries are outstanding (the queue has run
# dry) and tops up to _CLAIMED_MAX times the concurrency: each claim brings twice the
# concurrency. The writer's batch is the same size, so one transaction mostly carries a claim
# with the results of the claim before. Each transaction is a hand-off to the storage's thread
# (a round trip on PostgreSQL), and costs more CPU per event than the rows it writes.
_CLAIMED_MAX = 3
# Read once per entry: module constants (on Python 3.11 an enum member read through its class
# is a call of Python code).
_RECONCILE, _SEND = ClaimMode.RECONCILE, AttemptKind.SEND


class Flusher:
    """Delivers due outbox entries until stopped. Owns neither the outbox nor the client."""

    def __init__(
        self,
        outbox: Outbox,
        client: DeliveryClient,
        config: FlusherConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        observer: FlusherObserver | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.config = config or FlusherConfig()
        warn_if_lease_too_short(self.config, client)
        self.owner = self.config.owner or default_owner()
        self.stats = FlusherStats()
        self._storage = outbox.storage
        self._clock = clock
        self._rng = rng or random.Random()
        # Stop claiming; read before every entry, never awaited: a plain flag.
        self._stopping = False
        self._aborting = asyncio.Event()
        # stop() calls so far: the second one aborts. A failure stops the flusher without
        # counting as one, so it never turns a graceful stop into an abort, nor the reverse.
        self._stop_requested = False
        self._running = False
        self._queue: Handoff[Claimed] = Handoff()
        self._outstanding = 0  # claimed and not yet finished by a worker
        self._all_finished = asyncio.Event()  # set whenever nothing is outstanding
        # Claims (key, attempt) whose POST has left (cancel => in doubt). By claim, not by key:
        # an older claim of the same key (a reconciliation that outlived its lease) must not
        # clear the mark of the POST now in flight.
        self._posting: set[tuple[str, int]] = set()
        self._bell = outbox.subscribe()
        self._results = ResultWriter(
            self._storage,
            self.stats,
            batch_size=(_CLAIMED_MAX - 1) * self.config.concurrency,
            clock=clock,
            idle=lambda: self._outstanding == 0,
            woke=lambda: self._bell.ring(),
        )
        self._holds = Holds(self._storage)
        self._cutoffs = Deadlines(clock)
        # A run's leases and the clock they end on: its event loop's (see kit.flusher.cutoff).
        self._leases = LeaseEnds()
        self._loop_time: Callable[[], float] = time.monotonic
        self._report = Reporter(self.config)
        # Why run() must end in an error once it has shut down cleanly (see _fail).
        self._failure: KitError | None = None
        self._pace_streak = 0
        self._catalog = EventTypeCatalog(client, ttl=self.config.event_types_ttl, clock=clock)
        self._has_run = False
        self._observer = observer

    @property
    def paused_by_credentials(self) -> bool:
        """Whether this flusher sends nothing because eTrusted refused its credentials."""
        return self._holds.own_paused

    @property
    def paced(self) -> bool:
        """Whether the fleet waits out a 429 (eTrusted's rate limit) now, as last seen."""
        return self._holds.paced(self._clock())

    def _start_again(self) -> None:
        """Undo what the previous run's shutdown left set, so that run() may be called again
        (an application calling ``run_once()`` on a schedule). Counters keep adding up."""
        self._stopping = False
        self._aborting = asyncio.Event()
        self._stop_requested = False
        self._failure = None
        self._bell = self.outbox.subscribe()

    # -- control ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming and finish in-flight work (within the grace period).

        A second call abandons in-flight POSTs at once; they become ``in_doubt``. Idempotent.
        """
        if self._stop_requested:
            self._aborting.set()
        self._stop_requested = True
        self._stopping = True
        self._bell.ring()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def run(self, *, until_idle: bool = False, until_drained: bool = False) -> FlusherStats:
        """Deliver until :meth:`stop` (or, with ``until_idle``, until nothing is due now; with
        ``until_drained``, until nothing is pending, sending or in doubt).

        May be called again once it has returned; ``stop()`` ends the run in progress only.
        Passing outages (the database or eTrusted unreachable, 5xx) are waited out. A broken
        setup stops the flusher: after a clean shutdown run() raises what stopped it (a
        missing schema, a moved outbox, a one-shot run under refused credentials, or an
        unexpected error outside a POST).
        """
        if self._running:
            raise KitError("this flusher is already running")
        if self._has_run:
            self._start_again()
        self._running = self._has_run = True
        loop = asyncio.get_running_loop()
        self._queue = Handoff(loop)  # a run's claims, on its loop
        self._leases, self._loop_time = LeaseEnds(), loop.time
        self._results.start(self._aborting)
        workers = [
            asyncio.create_task(self._worker(), name=f"etk-worker-{i}")
            for i in range(self.config.concurrency)
        ]
        writer = asyncio.create_task(self._results.run(), name="etk-writer")
        writer.add_done_callback(self._writer_ended)
        listener = None
        if isinstance(self._storage, SupportsListen):
            relay = relay_notifications(
                self._storage, lambda: self._bell.ring(), retry_after=self.config.poll_interval
            )
            listener = asyncio.create_task(relay, name="etk-listener")
        logger.info(
            "flusher started",
            extra={"action": "flusher_started", "owner": self.owner, "db": self._storage.url},
        )
        try:
            await self._feed(until_idle=until_idle, until_drained=until_drained)
        except Exception as exc:  # noqa: BLE001 (a broken setup or a bug: stop, then raise it)
            self._fail(exc, bug=not isinstance(exc, KitError))
        except BaseException:
            # Cancelled: stop gracefully all the same, then re-raise.
            self.stop()
            await self._shutdown(workers, writer, listener)
            raise
        await self._shutdown(workers, writer, listener)
        if self._failure is not None:
            raise self._failure
        return self.stats

    def running(
        self, *, until_idle: bool = False, until_drained: bool = False
    ) -> contextlib.AbstractAsyncContextManager[RunningFlusher]:
        """Run as a supervised task inside an application::

            async with flusher.running() as handle:
                ...  # serve; a health check reads handle.healthy / handle.failure

        Leaving the block stops the flusher (graceful, as :meth:`stop`) and waits for it; then
        raises what made it fail, if anything did (an error in the block itself wins).
        """
        return running(self, until_idle=until_idle, until_drained=until_drained)

    async def run_once(self) -> FlusherStats:
        """Deliver what is due now, then return (``etrusted-kit flush --once``)."""
        return await self.run(until_idle=True)

    # -- the feeder: holds, claims, wake-ups -------------------------------------------------

    async def _feed(self, *, until_idle: bool, until_drained: bool) -> None:
        capacity = _CLAIMED_MAX * self.config.concurrency
        while not self._stopping:
            now = self._clock()
            loop_now = self._loop_time()  # with ``now``: where a lease claimed at ``now`` began
            pause = await self._pause(now, until_idle=until_idle)
            if pause is None:
                return
            if pause > 0:
                await self._bell.wait(min(pause, self.config.poll_interval))
                continue
            claimed: list[Claimed] = []
            if self._results.failures:
                # Results cannot be written: claiming more would only pile up unrecorded 202s.
                await self._bell.wait(self.config.poll_interval)
                continue
            if self._outstanding <= self.config.concurrency:
                self._results.write_soon()  # results waiting: write them with this claim
                try:
                    claimed = await self._claim(capacity - self._outstanding, now)
                except StorageUnavailableError as exc:
                    await self._bell.wait(self._database_unavailable(exc))
                    continue
                self._report.database.ended()
                if claimed:
                    self._leases.claimed(claimed, now, loop_now)
                    self._outstanding += len(claimed)
                    self._all_finished.clear()
                    for item in claimed:
                        self._queue.put(item)
                    self.stats.claimed += len(claimed)
                    continue
            if self._outstanding == 0 and not self._results.waiting and not self._results.writing:
                if until_idle:
                    return
                if until_drained:
                    try:
                        if await self._drained():
                            return
                    except StorageUnavailableError as exc:
                        await self._bell.wait(self._database_unavailable(exc))
                        continue
            await self._bell.wait(self.config.poll_interval)

    def _database_unavailable(self, exc: StorageUnavailableError) -> float:
        """A passing outage of the database: say so, and how long until the next try."""
        tries = min(self._report.database.failures + 1, 16)
        wait = min(_OUTAGE_WAIT_MAX, self.config.poll_interval * 2.0**tries)
        self._report.claim_failed(exc, wait)
        return wait

    async def _claim(self, limit: int, now: float) -> list[Claimed]:
        """Claim, reading the holds in the claim's own transaction: one committed before it (a
        429 pace) is seen before any of these entries is POSTed. A moved outbox raises
        OutboxMovedError here, which stops the flusher (a broken setup)."""
        claimed, holds = await self._storage.claim_with_holds(
            owner=self.owner, limit=limit, lease_seconds=self.config.lease_seconds, now=now
        )
        self._holds.seen(holds, now)
        return claimed

    def _give_back(self, claimed: Iterable[Claimed]) -> None:
        for item in claimed:
            self._results.add(self._apply(item, decisions.released()))

    async def _drained(self) -> bool:
        counts = (await self._storage.stats()).counts
        return not (counts[State.PENDING] or counts[State.SENDING] or counts[State.IN_DOUBT])

    async def _pause(self, now: float, *, until_idle: bool) -> float | None:
        """Seconds to wait before claiming (429 pacing, or this flusher's refused
        credentials); None: a one-shot run must end here."""
        if now - self._holds.checked_at >= self.config.hold_check_interval:
            await self._holds.refresh(now)
        if self._holds.own_paused and until_idle and await self._credentials_refused_still(now):
            # A one-shot run cannot wait for someone to fix the credentials, and must not
            # look like a success to whoever scheduled it. run() raises this: no log line.
            self._failure = AuthenticationError(
                "eTrusted refuses the credentials; this one-shot run stopped without sending"
                " what is due"
            )
            return None
        remaining = self._holds.wait(now)
        if remaining > 0 or not self._holds.own_paused:
            return remaining
        return await self._holds.probe_credentials(self.client, now, self.config.auth_pause)

    async def _credentials_refused_still(self, now: float) -> bool:
        """One cheap call (the credentials may have been fixed since an earlier run)."""
        pause = await self._holds.probe_credentials(self.client, now, self.config.auth_pause)
        return pause > 0

    # -- workers -----------------------------------------------------------------------------

    async def _worker(self) -> None:
        me = asyncio.current_task()
        while True:
            item = await self._queue.take()
            try:
                # Dispatched here rather than in a coroutine of its own: one less per entry.
                if self._stopping:
                    completion = self._apply(item, decisions.released())
                elif item.mode is _RECONCILE:
                    completion = await self._reconcile(item)
                else:
                    completion = await self._send(item, me)
            except asyncio.CancelledError:
                self._results.add(self._abandoned(item))
                raise
            except Exception as exc:  # noqa: BLE001 (outside the POST's own classification)
                # A bug or a broken setup (the POST itself never gets here): give the entry
                # back as its state allows and stop the whole flusher loudly, rather than lose
                # this worker silently and leave its claims to expire.
                completion = self._abandoned(item, why=f"unexpected error: {exc!r}")
                self._fail(exc)
            finally:
                self._posting.discard((item.key, item.attempt))
                self._outstanding -= 1
                if self._outstanding <= self.config.concurrency:
                    self._bell.ring()
                if self._outstanding == 0:
                    self._all_finished.set()
            self._results.add(completion)

    def _writer_ended(self, writer: asyncio.Task[None]) -> None:
        """The writer only ends when closed; one that failed (a bug) records no result any
        more, so the flusher must stop, visibly, rather than go on sending."""
        failure = None if writer.cancelled() else writer.exception()
        if isinstance(failure, Exception):
            self._fail(failure)

    def _fail(self, exc: Exception, *, bug: bool = True) -> None:
        """Stop, and have run() raise ``exc`` (a KitError as is, anything else wrapped).

        Logged once: a broken setup (``bug=False``: a missing schema, a moved outbox, a bad
        configuration) with its message; anything else with its traceback.
        """
        if self._failure is None:
            if bug:
                logger.error(
                    "the flusher stops after an unexpected error: %r",
                    exc,
                    exc_info=exc,
                    extra={"action": "flusher_failed"},
                )
            else:
                logger.error("the flusher stops: %s", exc, extra={"action": "flusher_failed"})
            if isinstance(exc, KitError):
                self._failure = exc
            else:
                self._failure = KitError(f"the flusher stopped after an unexpected error: {exc!r}")
                self._failure.__cause__ = exc
            # Graceful, as a first stop(): the other POSTs in flight may finish.
            self._stopping = True
            self._bell.ring()

    def _abandoned(
        self, item: Claimed, why: str = "flusher stopped while the POST was in flight"
    ) -> Completion:
        """A claim given up: in doubt if its POST had left, else released."""
        posted = (item.key, item.attempt) in self._posting
        return self._apply(item, decisions.abandoned(posted=posted, now=self._clock(), why=why))

    def _apply(
        self,
        item: Claimed,
        decision: Decision,
        *,
        kind: AttemptKind | None = None,
        started_at: float = 0.0,
        duration_ms: float = 0.0,
    ) -> Completion:
        """The one place a decision takes effect: counted, reported, turned into a result."""
        self.stats.count(decision.counts)
        self._report.decision(item, decision, clock=self._clock)
        if self._observer is not None:
            self._observer.decided(item, decision, kind, self._clock())
        return decisions.completion(
            item, decision, kind=kind, started_at=started_at, duration_ms=duration_ms
        )

    async def _send(self, item: Claimed, me: asyncio.Task[None] | None) -> Completion:
        """POST a claimed entry (``me``: the worker's task, for the cutoff)."""
        if item.payload is None:
            purged = decisions.refused_before_sending("payload was purged before delivery")
            return self._apply(item, purged)
        if self.config.check_event_types:
            active = self._catalog.cached(item.event_type)  # the usual case: nothing to await
            if active is None:
                active = await self._catalog.active(item.event_type)
            self._catalog.warn_if_invites_off(item.event_type, item.channel_id)
            if active is False:
                reason = f"event type {item.event_type!r} is unknown or inactive in eTrusted"
                return self._apply(item, decisions.refused_before_sending(reason))

        now = self._clock()  # after the type check, which may have taken a while
        if self._holds.blocks(now):
            # Paced (429) or paused (credentials) since this entry was claimed: hand it back.
            return self._apply(item, decisions.released())
        # The lease ends at its stored time by the wall clock, or earlier on the loop's clock
        # if the wall clock stepped back since the claim (see kit.flusher.cutoff).
        lease_end = self._leases.ends.get(item.lease_expires_at, LEASE_OVER)
        half = self.config.lease_seconds / 2
        if now > item.lease_expires_at - half or self._loop_time() > lease_end - half:
            # Too little lease left for a POST to finish inside it: another flusher could take
            # the entry over mid-POST. Give it back instead (fenced, so harmless if taken).
            return self._apply(item, decisions.released())
        # The whole POST (token refresh and a 401 retry included) must end while the lease is
        # ours, with a margin: past that, another flusher may already reconcile the entry.
        margin = self.config.lease_seconds * 0.1
        cutoff = self._cutoffs.cut_off_at(lease_end - margin, item.lease_expires_at - margin, me)
        started = time.perf_counter()
        self._posting.add((item.key, item.attempt))
        self.stats.posts += 1
        result: str | BaseException
        try:
            with cutoff:
                result = (await self.client.post_event_json(item.payload)).event_ref
        except (TimeoutError, ETrustedError) as exc:
            result = exc
        except Exception as exc:
            logger.exception("unexpected error during POST", extra={"action": "post_crashed"})
            result = exc
        elapsed = (time.perf_counter() - started) * 1000
        self.stats.post_ms.append(elapsed)
        if isinstance(result, str):  # the usual case: a 202, no pause to consider (nor await)
            self._pace_streak = 0
            decision = decisions.classify_post(
                item, result, now=now, config=self.config, rng=self._rng
            )
        else:
            decision = await self._decide_failed_post(item, result)
        return self._apply(item, decision, kind=_SEND, started_at=now, duration_ms=elapsed)

    async def _decide_failed_post(self, item: Claimed, result: BaseException) -> Decision:
        # Waits (a Retry-After above all, and the backoff) count from the answer, not from when
        # the POST left: a slow 503 asking for 5 s must not be due again before those 5 s.
        decided_at = self._clock()
        # A 429 of a burst the fleet is already paced for does not escalate the pace.
        streak = self._pace_streak + (0 if self._holds.paced(decided_at) else 1)
        decision = decisions.classify_post(
            item, result, now=decided_at, config=self.config, rng=self._rng, pace_streak=streak
        )
        if decision.pace is not None:
            self._pace_streak = streak
            await self._holds.pace(
                decided_at + decision.pace, f"HTTP 429 from eTrusted: {decision.error}"
            )
        self._credentials_refused(decision, decided_at)
        return decision

    def _credentials_refused(self, decision: Decision, now: float) -> None:
        if decision.credentials_refused:
            self._holds.pause_own(now + self.config.auth_pause, decision.error or "")

    async def _reconcile(self, item: Claimed) -> Completion:
        now = self._clock()
        started = time.perf_counter()
        self.stats.reconcile_checks += 1
        result: str | ETrustedError | None
        try:
            finding = await find_event(
                self.client,
                channel_id=item.channel_id,
                event_type=item.event_type,
                transaction_reference=item.transaction_reference,
                not_before=item.first_sent_at,
                clock_skew=self.config.clock_skew,
                marker=marker_of(item.payload),
            )
        except ETrustedError as exc:
            result = exc
        else:
            result = finding.event_ref
        decision = decisions.classify_reconcile(item, result, now=now, config=self.config)
        self._credentials_refused(decision, now)
        elapsed = (time.perf_counter() - started) * 1000
        return self._apply(
            item, decision, kind=AttemptKind.RECONCILE, started_at=now, duration_ms=elapsed
        )

    # -- shutdown ----------------------------------------------------------------------------

    async def _shutdown(
        self,
        workers: list[asyncio.Task[None]],
        writer: asyncio.Task[None],
        listener: asyncio.Task[None] | None,
    ) -> None:
        self._stopping = True
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        # Claims that no worker started go straight back.
        unstarted = self._queue.take_all()
        self._outstanding -= len(unstarted)
        self._give_back(unstarted)
        # In-flight work gets the grace period (cut short by a second stop()).
        if self._outstanding > 0:
            finished = asyncio.ensure_future(self._all_finished.wait())
            aborted = asyncio.ensure_future(self._aborting.wait())
            await asyncio.wait(
                {finished, aborted},
                timeout=self.config.grace_period,
                return_when=asyncio.FIRST_COMPLETED,
            )
            finished.cancel()
            aborted.cancel()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        # The writer writes what is left, then ends; it is never cut off mid-write.
        self._results.close(self.config.grace_period)
        try:
            await writer
        except Exception as exc:  # noqa: BLE001 (a failed writer stops the flusher, see _fail)
            self._fail(exc)
        self.outbox.unsubscribe(self._bell)
        self._running = False
        logger.info("flusher stopped", extra={"action": "flusher_stopped", **self.stats.as_dict()})
