"""The flusher: delivers every outbox entry to eTrusted exactly once.

How, in one paragraph (docs/guarantees.md has the full table): an entry is claimed under a lease
and a fencing attempt number, and marked ``sending`` in the database *before* its POST leaves.
A 202 records the returned ``EventRef``. A failure that proves nothing was created (4xx, 5xx,
429, connection refused) is retried with backoff or dead-lettered. A failure after which the
event may exist (timeout, disconnect, a flusher killed mid-POST whose lease then expired) makes
the entry ``in_doubt``, and an in-doubt entry is never POSTed again until reconciliation has
looked for it in eTrusted (:mod:`kit.reconcile`) for a whole window and found nothing. Every
result is written with ``WHERE attempt = <ours>``, so a flusher that lost its lease cannot
overwrite a newer attempt.

Throughput comes from claiming in batches, bounded concurrency and writing results in batches
from one writer task; wake-ups come from the in-process :class:`~kit.outbox.Wakeup`, from
LISTEN/NOTIFY where the backend has it, and from a short poll otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import random
import socket
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import attrs

from kit.config import positive
from kit.errors import (
    AuthenticationError,
    ETrustedError,
    FailureKind,
    KitError,
    RateLimitedError,
    StorageError,
    StorageUnavailableError,
    TurnedAwayError,
)
from kit.outbox import Outbox
from kit.outbox.protocol import SupportsListen
from kit.outbox.types import (
    HOLD_AUTH,
    HOLD_PACE,
    KEY_MARKER,
    AttemptKind,
    AttemptRecord,
    Claimed,
    ClaimMode,
    Completion,
    Dead,
    Delivered,
    Hold,
    InDoubt,
    Outcome,
    Release,
    Resend,
    Retry,
    State,
)
from kit.reconcile import InviteSource, find_event
from kit.retry import Backoff

logger = logging.getLogger(__name__)


_DEFERRED_LABELS = frozenset({"deferred", "unauthorized"})
# How long a result may wait for more to share its write (a fraction of any real round trip).
_RESULT_WAIT = 0.005


def _marker_of(payload: str | None) -> str | None:
    """The outbox key the payload carries in its metadata (None for unmarked events)."""
    if payload is None:
        return None
    try:
        metadata = json.loads(payload).get("metadata")
    except (ValueError, AttributeError):
        return None
    value = metadata.get(KEY_MARKER) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


class InDoubtPolicy(enum.StrEnum):
    """What to do when reconciliation found nothing for a whole window."""

    RESEND = "resend"  # send again (counted as a blind resend)
    PARK = "park"  # move to ``dead`` for an operator to decide


class _Accepted(Protocol):
    @property
    def event_ref(self) -> str: ...


class DeliveryClient(InviteSource, Protocol):
    """What the flusher needs from :class:`kit.client.ETrustedClient`."""

    async def post_event_json(self, body: bytes | str) -> _Accepted: ...

    async def list_event_types(self, name: str | None = None) -> list[Any]: ...


@runtime_checkable
class ReadsInviteSettings(Protocol):
    """A client that can list invite settings: the flusher then warns about switched-off ones."""

    async def list_invite_settings(self) -> list[Any]: ...


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@attrs.frozen(kw_only=True)
class FlusherConfig:
    """Tuning of one flusher. Defaults suit production; tests shorten the windows."""

    owner: str | None = None  # lease owner name; default host:pid:random
    concurrency: int = attrs.field(default=8, validator=positive)
    # A POST only starts while at least half of its lease is left, so the client's
    # request_timeout must be below lease_seconds / 2: then every POST has ended (or been
    # abandoned) before another flusher can take the entry over as in doubt.
    lease_seconds: float = attrs.field(default=60.0, validator=positive)
    poll_interval: float = attrs.field(default=1.0, validator=positive)
    max_sends: int = attrs.field(default=10, validator=positive)  # attempt budget per entry
    backoff: Backoff = attrs.field(factory=Backoff)
    reconcile_delay: float = 2.0  # first look, this long after a send went in doubt
    reconcile_interval: float = 15.0  # between looks
    reconcile_window: float = 300.0  # how long to keep looking before resending / parking
    clock_skew: float = 120.0  # tolerance comparing eTrusted's createdAt with our clock
    in_doubt_policy: InDoubtPolicy = InDoubtPolicy.RESEND
    auth_pause: float = 30.0  # pause of the whole fleet after a 401 that survived a refresh
    pace_default: float = 1.0  # pause after a 429 without Retry-After; doubles while repeated
    pace_max: float = 120.0
    # A server's Retry-After is honoured up to this; a larger one (a misconfigured proxy, a
    # daily quota) would otherwise pause the whole fleet through the stored hold for as long.
    retry_after_max: float = attrs.field(default=3600.0, validator=positive)
    hold_check_interval: float = 0.5  # how stale our view of fleet-wide holds may be
    grace_period: float = 10.0  # on stop: how long in-flight POSTs may take to finish
    check_event_types: bool = True  # park events whose type is unknown/inactive in eTrusted
    event_types_ttl: float = 300.0


@attrs.define
class FlusherStats:
    """Counters since this flusher started (the demo and ``status`` show them)."""

    claimed: int = 0
    posts: int = 0
    delivered: int = 0
    adopted: int = 0
    retried: int = 0
    in_doubt: int = 0
    reconcile_checks: int = 0
    blind_resends: int = 0
    dead: int = 0
    rate_limited: int = 0
    auth_pauses: int = 0
    fenced: int = 0
    released: int = 0
    post_ms: deque[float] = attrs.field(factory=lambda: deque(maxlen=100_000))

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self, filter=lambda a, _: a.name != "post_ms")
        ms = sorted(self.post_ms)
        if ms:
            data["post_ms_p50"] = round(ms[len(ms) // 2], 2)
            data["post_ms_p99"] = round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2)
        return data


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
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.config = config or FlusherConfig()
        self.owner = self.config.owner or default_owner()
        self.stats = FlusherStats()
        self._storage = outbox.storage
        self._clock = clock
        self._rng = rng or random.Random()
        self._stopping = asyncio.Event()
        self._aborting = asyncio.Event()
        # stop() calls so far: the second one aborts. A failure stops the flusher without
        # counting as one, so it never turns a graceful stop into an abort, nor the reverse.
        self._stop_requested = False
        self._running = False
        self._queue: asyncio.Queue[Claimed] = asyncio.Queue()
        self._outstanding = 0  # claimed and not yet finished by a worker
        self._done: list[Completion] = []
        self._done_ready = asyncio.Event()
        self._done_timer: asyncio.TimerHandle | None = None
        self._writer_deadline: float | None = None  # set when closing: then stop waiting
        self._writing = False  # a batch is taken from _done but not yet written
        self._write_failures = 0  # consecutive failed result writes (backpressure on claims)
        self._all_finished = asyncio.Event()  # set whenever nothing is outstanding
        # Claims (key, attempt) whose POST has left (cancel => in doubt). By claim, not by key:
        # an older claim of the same key (a reconciliation that outlived its lease) must not
        # clear the mark of the POST now in flight.
        self._posting: set[tuple[str, int]] = set()
        self._bell = outbox.subscribe()
        self._holds: list[Hold] = []
        self._holds_checked = -1e18
        self._auth_hold_seen = False
        # Why run() must end in an error once it has shut down cleanly (see _fail).
        self._failure: KitError | None = None
        self._pace_streak = 0
        self._types: dict[str, bool] | None = None
        # (event type name, channel id) pairs whose invite settings are switched off, and the
        # pairs already warned about: reconciliation cannot find their events.
        self._invites_off: set[tuple[str, str]] = set()
        self._invites_warned: set[tuple[str, str]] = set()
        self._types_at = -1e18
        self._types_lock = asyncio.Lock()
        self._has_run = False

    def _start_again(self) -> None:
        """Undo what the previous run's shutdown left set, so that run() may be called again
        (an application calling ``run_once()`` on a schedule). Counters keep adding up."""
        self._stopping = asyncio.Event()
        self._aborting = asyncio.Event()
        self._stop_requested = False
        self._writer_deadline = None
        self._failure = None
        self._auth_hold_seen = False
        self._bell = self.outbox.subscribe()

    # -- control ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming and finish in-flight work (within the grace period).

        A second call abandons in-flight POSTs at once; they become ``in_doubt``. Idempotent.
        """
        if self._stop_requested:
            self._aborting.set()
        self._stop_requested = True
        self._stopping.set()
        self._bell.ring()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self, *, until_idle: bool = False, until_drained: bool = False) -> FlusherStats:
        """Deliver until :meth:`stop` (or, with ``until_idle``, until nothing is due now; with
        ``until_drained``, until nothing is pending, sending or in doubt).

        May be called again once it has returned; ``stop()`` ends the run in progress only.
        Raises what stopped it, after a clean shutdown: a one-shot run under refused
        credentials (:class:`~kit.errors.AuthenticationError`), or an unexpected error outside
        a POST (a broken setup or a bug, logged with its traceback).
        """
        if self._running:
            raise KitError("this flusher is already running")
        if self._has_run:
            self._start_again()
        self._running = self._has_run = True
        workers = [
            asyncio.create_task(self._worker(), name=f"etk-worker-{i}")
            for i in range(self.config.concurrency)
        ]
        writer = asyncio.create_task(self._writer(), name="etk-writer")
        listener = None
        if isinstance(self._storage, SupportsListen):
            listener = asyncio.create_task(self._listen(self._storage), name="etk-listener")
        logger.info(
            "flusher started",
            extra={"action": "flusher_started", "owner": self.owner, "db": self._storage.url},
        )
        try:
            await self._feed(until_idle=until_idle, until_drained=until_drained)
        except BaseException:
            # Cancelled (or a bug): stop gracefully all the same, then re-raise.
            self.stop()
            await self._shutdown(workers, writer, listener)
            raise
        await self._shutdown(workers, writer, listener)
        if self._failure is not None:
            raise self._failure
        return self.stats

    async def run_once(self) -> FlusherStats:
        """Deliver what is due now, then return (``etrusted-kit flush --once``)."""
        return await self.run(until_idle=True)

    # -- the feeder: holds, claims, wake-ups -------------------------------------------------

    async def _feed(self, *, until_idle: bool, until_drained: bool) -> None:
        capacity = 2 * self.config.concurrency
        while not self._stopping.is_set():
            now = self._clock()
            pause = await self._hold_remaining(now)
            if pause > 0 and until_idle and self._auth_hold_seen:
                # The hold may be older than a fix of the credentials (another run set it):
                # one cheap call tells, and lifts it if they work now.
                if await self._probe_credentials(now) == 0.0:
                    continue
                # A one-shot run cannot wait for someone to fix the credentials, and must not
                # look like a success to whoever scheduled it. run() raises this: no log line.
                self._failure = AuthenticationError(
                    "eTrusted refuses the credentials (an auth hold is in force); this one-shot"
                    " run stopped without sending what is due"
                )
                return
            if pause > 0:
                await self._bell.wait(min(pause, self.config.poll_interval))
                continue
            claimed: list[Claimed] = []
            if self._write_failures:
                # Results cannot be written: claiming more would only pile up unrecorded 202s.
                await self._bell.wait(self.config.poll_interval)
                continue
            if self._outstanding <= self.config.concurrency:
                if self._done:
                    self._done_ready.set()  # results waiting: write them with this claim
                try:
                    claimed = await self._claim(capacity - self._outstanding, now)
                except StorageError:
                    logger.exception("claim failed", extra={"action": "claim_failed"})
                    await self._bell.wait(self.config.poll_interval)
                    continue
                for item in claimed:
                    self._outstanding += 1
                    self._all_finished.clear()
                    self._queue.put_nowait(item)
                self.stats.claimed += len(claimed)
                if claimed:
                    continue
            if self._outstanding == 0 and not self._done and not self._writing:
                if until_idle:
                    return
                if until_drained and await self._drained():
                    return
            await self._bell.wait(self.config.poll_interval)

    async def _claim(self, limit: int, now: float) -> list[Claimed]:
        """Claim, reading the holds in the claim's own transaction: one committed before it (a
        429 pace) is seen before any of these entries is POSTed. A moved outbox raises here."""
        claimed, self._holds = await self._storage.claim_with_holds(
            owner=self.owner, limit=limit, lease_seconds=self.config.lease_seconds, now=now
        )
        self._holds_checked = now
        return claimed

    def _give_back(self, claimed: Iterable[Claimed]) -> None:
        for item in claimed:
            self._complete(Completion(item.key, item.attempt, Release()))
            self.stats.released += 1

    async def _drained(self) -> bool:
        counts = (await self._storage.stats()).counts
        return not (counts[State.PENDING] or counts[State.SENDING] or counts[State.IN_DOUBT])

    async def _hold_remaining(self, now: float) -> float:
        """Seconds to wait because of a fleet-wide hold (429 pacing or a credential pause)."""
        if now - self._holds_checked >= self.config.hold_check_interval:
            await self._refresh_holds(now)
        remaining = max((h.until - now for h in self._holds), default=0.0)
        if remaining > 0:
            if any(h.name == HOLD_AUTH for h in self._holds if h.until > now):
                self._auth_hold_seen = True
            return remaining
        if self._auth_hold_seen:
            return await self._probe_credentials(now)
        return 0.0

    async def _refresh_holds(self, now: float) -> bool:
        """Re-read the fleet's holds; False (and the old view kept) if they cannot be read."""
        try:
            self._holds = await self._storage.holds(now=now)
        except StorageError:
            logger.exception("reading holds failed", extra={"action": "holds_failed"})
            return False
        finally:
            self._holds_checked = now
        return True

    async def _probe_credentials(self, now: float) -> float:
        """After a credential pause, check with one cheap call before sending anything."""
        try:
            await self.client.list_event_types()
        except ETrustedError as exc:
            if exc.kind is FailureKind.UNAUTHORIZED:
                await self._set_hold(HOLD_AUTH, now + self.config.auth_pause, str(exc))
                return self.config.auth_pause
            # Anything else (eTrusted down, network) is not a credential problem: go on and
            # let the entries' own retry logic deal with it.
        self._auth_hold_seen = False
        self._holds = [h for h in self._holds if h.name != HOLD_AUTH]
        with contextlib.suppress(StorageError):
            await self._storage.clear_hold(HOLD_AUTH)
        logger.warning("credentials work again; resuming", extra={"action": "auth_resumed"})
        return 0.0

    async def _set_hold(self, name: str, until: float, reason: str) -> None:
        current = next((h for h in self._holds if h.name == name), None)
        if current is not None and current.until >= until:
            return
        hold = Hold(name=name, until=until, reason=reason)
        self._holds = [h for h in self._holds if h.name != name] + [hold]
        try:
            await self._storage.set_hold(hold)
        except StorageError:
            logger.exception("storing hold failed", extra={"action": "hold_failed"})

    async def _listen(self, storage: SupportsListen) -> None:
        while True:
            wakeups: AsyncIterator[None] | None = None
            try:
                wakeups = storage.listen()  # raises once the storage is closed, say
                async for _ in wakeups:
                    self._bell.ring()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("listener failed; polling only", extra={"action": "listen_failed"})
                await asyncio.sleep(self.config.poll_interval)
            finally:
                # A listener holds a connection of its own until closed; a run that ends (or
                # cancels its listening) must not leave it behind.
                close = getattr(wakeups, "aclose", None)
                if close is not None:
                    await close()

    # -- workers -----------------------------------------------------------------------------

    async def _worker(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                completion = await self._process(item)
            except asyncio.CancelledError:
                self._complete(self._abandoned(item))
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
            self._complete(completion)

    def _fail(self, exc: Exception) -> None:
        """Stop, and have run() raise ``exc`` (a KitError as is, anything else wrapped)."""
        if self._failure is None:
            logger.error(
                "the flusher stops after an unexpected error: %r",
                exc,
                exc_info=exc,
                extra={"action": "flusher_failed"},
            )
            if isinstance(exc, KitError):
                self._failure = exc
            else:
                self._failure = KitError(f"the flusher stopped after an unexpected error: {exc!r}")
                self._failure.__cause__ = exc
            # Graceful, as a first stop(): the other POSTs in flight may finish.
            self._stopping.set()
            self._bell.ring()

    def _abandoned(
        self, item: Claimed, why: str = "flusher stopped while the POST was in flight"
    ) -> Completion:
        """A claim given up: in doubt if its POST had left, else released."""
        now = self._clock()
        outcome: Outcome
        if (item.key, item.attempt) in self._posting:
            outcome = InDoubt(due_at=now, error=why)
            self.stats.in_doubt += 1
        else:
            outcome = Release()
            self.stats.released += 1
        return Completion(item.key, item.attempt, outcome)

    async def _process(self, item: Claimed) -> Completion:
        if self._stopping.is_set():
            self.stats.released += 1
            return Completion(item.key, item.attempt, Release())
        if item.mode is ClaimMode.RECONCILE:
            return await self._reconcile(item)
        return await self._send(item)

    async def _send(self, item: Claimed) -> Completion:
        if item.payload is None:
            self.stats.dead += 1
            return Completion(item.key, item.attempt, Dead("payload was purged before delivery"))
        if self.config.check_event_types:
            active = self._cached_type(item.event_type)  # the usual case: nothing to await
            if active is None:
                active = await self._type_active(item.event_type)
            if self._invites_off:
                self._warn_if_invites_off(item)
        else:
            active = True
        if active is False:
            self.stats.dead += 1
            reason = f"event type {item.event_type!r} is unknown or inactive in eTrusted"
            return Completion(item.key, item.attempt, Dead(reason))

        now = self._clock()  # after the type check, which may have taken a while
        if any(h.until > now for h in self._holds):
            # Paced (429) or paused (401) since this entry was claimed: hand it back untouched.
            self.stats.released += 1
            return Completion(item.key, item.attempt, Release())
        if now > item.lease_expires_at - self.config.lease_seconds / 2:
            # Too little lease left for a POST to finish inside it: another flusher could take
            # the entry over mid-POST. Give it back instead (fenced, so harmless if taken).
            self.stats.released += 1
            return Completion(item.key, item.attempt, Release())
        # The whole POST (token refresh and a 401 retry included) must end while the lease is
        # ours, with a margin: past that, another flusher may already reconcile the entry.
        budget = item.lease_expires_at - now - self.config.lease_seconds * 0.1
        started = time.perf_counter()
        self._posting.add((item.key, item.attempt))
        self.stats.posts += 1
        status: int | None = None
        outcome: Outcome
        error: str | None
        try:
            async with asyncio.timeout(budget):
                accepted = await self.client.post_event_json(item.payload)
        except TimeoutError:
            outcome = InDoubt(
                due_at=now + self.config.reconcile_delay, error="POST outlived its lease budget"
            )
            label, error = "in_doubt", "POST outlived its lease budget"
            self.stats.in_doubt += 1
        except ETrustedError as exc:
            status = exc.status
            outcome, label = await self._classify(item, exc)
            error = str(exc)
        except Exception as exc:  # a bug or an untranslated error: assume the worst
            logger.exception("unexpected error during POST", extra={"action": "post_crashed"})
            outcome = InDoubt(due_at=now + self.config.reconcile_delay, error=repr(exc))
            label, error = "in_doubt", repr(exc)
            self.stats.in_doubt += 1
        else:
            status, error, label = 202, None, "delivered"
            outcome = Delivered(accepted.event_ref)
            self.stats.delivered += 1
            self._pace_streak = 0
        elapsed = (time.perf_counter() - started) * 1000
        self.stats.post_ms.append(elapsed)
        record = AttemptRecord(
            attempt=item.attempt,
            kind=AttemptKind.DEFERRED if label in _DEFERRED_LABELS else AttemptKind.SEND,
            started_at=now,
            duration_ms=round(elapsed, 3),
            outcome=label,
            http_status=status,
            error=error,
        )
        return Completion(item.key, item.attempt, outcome, record)

    async def _classify(self, item: Claimed, exc: ETrustedError) -> tuple[Outcome, str]:
        now = self._clock()
        if exc.kind is FailureKind.PERMANENT:
            self.stats.dead += 1
            return Dead(f"rejected by eTrusted: {exc}"), "dead"
        if exc.kind is FailureKind.IN_DOUBT:
            self.stats.in_doubt += 1
            return InDoubt(due_at=now + self.config.reconcile_delay, error=str(exc)), "in_doubt"
        if exc.kind is FailureKind.UNAUTHORIZED:
            # Nothing was created; the whole fleet pauses instead of burning every entry.
            self.stats.auth_pauses += 1
            until = now + self.config.auth_pause
            paused = any(h.name == HOLD_AUTH and h.until > now for h in self._holds)
            await self._set_hold(HOLD_AUTH, until, str(exc))
            self._auth_hold_seen = True
            if not paused:  # one line per pause, not one per worker that ran into it
                logger.error(
                    "eTrusted refuses our credentials; pausing all sends for %.0f s",
                    self.config.auth_pause,
                    extra={"action": "auth_paused"},
                )
            return Retry(due_at=until, error=str(exc)), "unauthorized"
        # Retryable: nothing was created. Turned away before anything could be created (429,
        # refused connection, token endpoint down) is not the entry's fault: it does not use up
        # the attempt budget, so an eTrusted outage never parks good events.
        deferred = isinstance(exc, TurnedAwayError)
        sends = item.sends + (0 if deferred else 1)
        retry_after = exc.retry_after
        if retry_after is not None and retry_after > self.config.retry_after_max:
            logger.warning(
                "eTrusted asked to wait %g s; waiting %g s (retry_after_max) instead",
                retry_after,
                self.config.retry_after_max,
                extra={"action": "retry_after_capped"},
            )
            retry_after = self.config.retry_after_max
        if isinstance(exc, RateLimitedError):
            self.stats.rate_limited += 1
            if not any(h.name == HOLD_PACE and h.until > now for h in self._holds):
                self._pace_streak += 1  # 429s of one burst (already paced) do not escalate
            pace = retry_after
            if pace is None:
                pace = min(
                    self.config.pace_max, self.config.pace_default * 2 ** (self._pace_streak - 1)
                )
            await self._set_hold(HOLD_PACE, now + pace, f"HTTP 429 from eTrusted: {exc}")
        if not deferred and sends >= self.config.max_sends:
            self.stats.dead += 1
            return Dead(f"gave up after {sends} sends; last error: {exc}"), "dead"
        failures = max(1, sends) if not deferred else self._deferrals(item)
        delay = self.config.backoff.delay(failures, retry_after=retry_after, rng=self._rng)
        self.stats.retried += 1
        return Retry(due_at=now + delay, error=str(exc)), "deferred" if deferred else "retry"

    def _deferrals(self, item: Claimed) -> int:
        """Backoff step for deferred sends: grows with the entry's claims, not its budget."""
        return max(1, item.attempt - item.sends)

    async def _reconcile(self, item: Claimed) -> Completion:
        now = self._clock()
        started = time.perf_counter()
        self.stats.reconcile_checks += 1
        outcome: Outcome
        status: int | None = None
        error: str | None = None
        since = item.in_doubt_since if item.in_doubt_since is not None else now
        try:
            finding = await find_event(
                self.client,
                channel_id=item.channel_id,
                event_type=item.event_type,
                transaction_reference=item.transaction_reference,
                not_before=item.first_sent_at,
                clock_skew=self.config.clock_skew,
                marker=_marker_of(item.payload),
            )
        except ETrustedError as exc:
            status, error, label = exc.status, str(exc), "reconcile_failed"
            if exc.kind is FailureKind.UNAUTHORIZED:
                await self._set_hold(HOLD_AUTH, now + self.config.auth_pause, str(exc))
            if exc.kind is FailureKind.PERMANENT and now - since >= self.config.reconcile_window:
                # eTrusted refuses the lookup itself (e.g. no access to this channel's invites):
                # waiting longer cannot help, and not having looked is no licence to resend.
                error = (
                    f"in doubt: eTrusted refused the lookup for {now - since:.0f} s ({exc}); an "
                    "operator must check eTrusted and then retry or drop it"
                )
                outcome, label = Dead(error), "parked"
                self.stats.dead += 1
            else:
                outcome = InDoubt(due_at=now + self.config.reconcile_interval, error=str(exc))
        else:
            if finding.event_ref is not None:
                outcome, label = Delivered(finding.event_ref, adopted=True), "adopted"
                self.stats.adopted += 1
                self.stats.delivered += 1
            elif now - since < self.config.reconcile_window:
                label, error = "not_found_yet", "not found in eTrusted yet"
                outcome = InDoubt(due_at=now + self.config.reconcile_interval, error=error)
            else:
                outcome, label, error = self._after_window(item, now - since)
        record = AttemptRecord(
            attempt=item.attempt,
            kind=AttemptKind.RECONCILE,
            started_at=now,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
            outcome=label,
            http_status=status,
            error=error,
        )
        return Completion(item.key, item.attempt, outcome, record)

    def _after_window(self, item: Claimed, waited: float) -> tuple[Outcome, str, str]:
        """Looked for a whole window and found nothing: resend (counted) or park.

        Resends stop at the attempt budget like any retry: an answer that keeps going in doubt
        (say a 409 that always comes back) ends parked, not resent forever.
        """
        why = "not found in eTrusted"
        if item.sends >= self.config.max_sends:
            error = f"in doubt after {item.sends} sends: {why} after {waited:.0f} s"
            self.stats.dead += 1
            return Dead(error), "parked", error
        if self.config.in_doubt_policy is InDoubtPolicy.RESEND:
            error = f"{why} after {waited:.0f} s; sending again"
            self.stats.blind_resends += 1
            logger.warning(error, extra={"action": "blind_resend", "key": item.key})
            return Resend(due_at=self._clock(), reason=error), "resend", error
        error = (
            f"in doubt: {why} after {waited:.0f} s; an operator must check eTrusted and then "
            "retry or drop it"
        )
        self.stats.dead += 1
        return Dead(error), "parked", error

    def _cached_type(self, name: str) -> bool | None:
        """Whether ``name`` is active per a fresh list of the types; None: not in one."""
        if self._types is None or self._clock() - self._types_at >= self.config.event_types_ttl:
            return None
        return self._types.get(name)

    async def _type_active(self, name: str) -> bool | None:
        """Whether eTrusted knows ``name`` as an active event type (None: cannot tell)."""
        cached = self._cached_type(name)
        if cached is not None:
            return cached
        # Unknown name or stale list: refresh, but at most every few seconds.
        async with self._types_lock:
            if self._types is None or self._clock() - self._types_at >= 5.0:
                try:
                    types = await self.client.list_event_types()
                except ETrustedError:
                    return None if self._types is None else self._types.get(name)
                self._types = {t.name: bool(t.active) for t in types}
                self._types_at = self._clock()
                await self._read_invite_settings(types)
        return self._types.get(name, False)

    async def _read_invite_settings(self, types: list[Any]) -> None:
        """Note which (type, channel) pairs have invites switched off; advisory only."""
        if not isinstance(self.client, ReadsInviteSettings):
            return
        try:
            settings = await self.client.list_invite_settings()
        except ETrustedError as exc:  # e.g. credentials without that scope: nothing to warn
            logger.debug("cannot read invite settings: %s", exc, extra={"action": "settings"})
            return
        names = {t.id: t.name for t in types if getattr(t, "id", None)}
        self._invites_off = {
            (names[s.event_type_id], s.channel_id)
            for s in settings
            if s.enabled is False and s.event_type_id in names and s.channel_id
        }

    def _warn_if_invites_off(self, item: Claimed) -> None:
        pair = (item.event_type, item.channel_id)
        if pair in self._invites_off and pair not in self._invites_warned:
            self._invites_warned.add(pair)
            logger.warning(
                "invites are switched off for event type %r in channel %s: eTrusted sends no"
                " invite for these events, and an event whose POST ends in doubt cannot be"
                " found again (it is resent blind or parked, see --in-doubt)",
                item.event_type,
                item.channel_id,
                extra={"action": "invites_off", "event_type": item.event_type},
            )

    # -- the writer: results in batches -------------------------------------------------------

    def _complete(self, completion: Completion) -> None:
        self._done.append(completion)
        if len(self._done) >= self.config.concurrency or self._outstanding == 0:
            self._done_ready.set()
        elif self._done_timer is None:
            # A result waits a moment for others: every write is a transaction, and one per
            # result would cost more than the POSTs. The feeder's next claim takes them along.
            loop = asyncio.get_running_loop()
            self._done_timer = loop.call_later(_RESULT_WAIT, self._done_ready.set)

    async def _writer(self) -> None:
        while True:
            await self._done_ready.wait()
            self._done_ready.clear()
            if self._done_timer is not None:
                self._done_timer.cancel()
                self._done_timer = None
            batch, self._done = self._done, []
            if batch:
                self._writing = True
                try:
                    await self._write(batch)
                finally:
                    self._writing = False
                if self._outstanding == 0 and not self._done:
                    # The feeder may have found everything finished but this batch unwritten,
                    # and gone to sleep for a whole poll interval: it is idle now, tell it.
                    self._bell.ring()
            if self._writer_deadline is not None and not self._done:
                return

    async def _write(self, batch: list[Completion]) -> None:
        """Write results; a received ``EventRef`` is only ever given up as a last resort.

        An unreachable (or locked, or full) database is waited out for as long as the flusher
        runs, and for ``grace_period`` more once it is closing; meanwhile the feeder claims
        nothing. A batch the database refuses outright is split, so that one bad record cannot
        take the others' refs with it.
        """
        failures = 0
        while True:
            try:
                applied = await self._storage.finish(batch, now=self._clock())
            except StorageUnavailableError:
                failures += 1
                self._write_failures = failures
                logger.exception(
                    "writing %d results failed (try %d); retrying",
                    len(batch),
                    failures,
                    extra={"action": "finish_failed"},
                )
                if self._aborting.is_set() or self._past_closing_deadline():
                    break
            except StorageError:
                logger.exception(
                    "the database refused %d results",
                    len(batch),
                    extra={"action": "finish_refused"},
                )
                if len(batch) > 1:
                    for completion in batch:
                        await self._write([completion])
                    return
                failures += 1
                if failures >= 3 or self._aborting.is_set():
                    break
            else:
                self._write_failures = 0
                self._report_fenced(batch, applied)
                return
            with contextlib.suppress(TimeoutError):  # a second stop() cuts the wait short
                await asyncio.wait_for(self._aborting.wait(), min(5.0, 0.05 * 2**failures))
        self._write_failures = 0
        refs = [c.outcome.event_ref for c in batch if isinstance(c.outcome, Delivered)]
        logger.error(
            "giving up writing %d results (refs received: %s); their leases will expire and "
            "reconciliation will look for them",
            len(batch),
            ", ".join(refs) or "none",
            extra={"action": "finish_abandoned", "event_refs": refs},
        )

    def _past_closing_deadline(self) -> bool:
        return self._writer_deadline is not None and time.monotonic() > self._writer_deadline

    def _report_fenced(self, batch: list[Completion], applied: list[bool]) -> None:
        fenced = [c for c, ok in zip(batch, applied, strict=True) if not ok]
        if not fenced:
            return
        self.stats.fenced += len(fenced)
        for completion in fenced:
            if isinstance(completion.outcome, Delivered):
                # eTrusted has this event, but a newer attempt owns the entry now: say so, with
                # the ref, so an operator can match it if the newer attempt also sends.
                logger.error(
                    "a late 202 for %s (ref %s) was fenced off by a newer attempt",
                    completion.key,
                    completion.outcome.event_ref,
                    extra={"action": "fenced_delivery", "event_ref": completion.outcome.event_ref},
                )
        logger.warning(
            "%d results were fenced off (a newer attempt owns those entries)",
            len(fenced),
            extra={"action": "fenced"},
        )

    # -- shutdown ----------------------------------------------------------------------------

    async def _shutdown(
        self,
        workers: list[asyncio.Task[None]],
        writer: asyncio.Task[None],
        listener: asyncio.Task[None] | None,
    ) -> None:
        self._stopping.set()
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        # Claims that no worker started go straight back.
        while not self._queue.empty():
            self._outstanding -= 1
            self._give_back([self._queue.get_nowait()])
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
        self._writer_deadline = time.monotonic() + self.config.grace_period
        self._done_ready.set()
        await writer
        self.outbox.unsubscribe(self._bell)
        self._running = False
        logger.info("flusher stopped", extra={"action": "flusher_stopped", **self.stats.as_dict()})
