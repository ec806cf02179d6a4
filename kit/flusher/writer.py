"""The flusher's results, written in batches by one task, and never lightly given up.

Every write is a fenced transaction (``WHERE attempt = <ours>``), so one per result would cost
more than the POSTs: a result waits a moment for others. A received ``EventRef`` is the one
thing that must not be lost, so an unreachable database is waited out (and the feeder claims
nothing meanwhile); a batch the database refuses outright is split, so that one bad record
cannot take the others' refs with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from kit.errors import StorageError, StorageUnavailableError
from kit.flusher.config import FlusherStats
from kit.outbox.protocol import Storage
from kit.outbox.types import Completion, Delivered

logger = logging.getLogger("kit.flusher")

# How long a result may wait for more to share its write (a fraction of any real round trip).
RESULT_WAIT = 0.005


class ResultWriter:
    """Collects completions and writes them; :meth:`run` is the writer task."""

    def __init__(
        self,
        storage: Storage,
        stats: FlusherStats,
        *,
        batch_size: int,
        clock: Callable[[], float],
        idle: Callable[[], bool],
        woke: Callable[[], None],
    ) -> None:
        self._storage = storage
        self._stats = stats
        self._batch_size = batch_size
        self._clock = clock
        self._idle = idle  # nothing claimed is outstanding
        self._woke = woke  # tell the feeder
        self._done: list[Completion] = []
        # Whether the writer should take a batch, and the future it sleeps on meanwhile: a
        # flag and a plain future rather than an asyncio.Event, whose set/clear/wait are
        # Python calls made once per batch or more.
        self._ready = False
        self._wake: asyncio.Future[None] | None = None
        # The timer that bounds a result's wait. Never cancelled: when it fires after its batch
        # went with a claim, it finds newer results (which then wait less) or nothing to do.
        # Cancelling one per batch left the loop's heap full of cancelled timers.
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None  # set when closing: then stop waiting
        self._aborting = asyncio.Event()
        self.writing = False  # a batch is taken but not yet written
        self.failures = 0  # consecutive failed writes (backpressure on claims)

    def start(self, aborting: asyncio.Event) -> None:
        """Before a run: ``aborting`` (a second stop) cuts every wait short."""
        self._deadline = None
        self._aborting = aborting
        self._ready = False
        self._timer = None  # one left by an earlier run may be on a loop that has ended

    @property
    def waiting(self) -> bool:
        """Results not yet taken for a write."""
        return bool(self._done)

    def add(self, completion: Completion) -> None:
        self._done.append(completion)
        if len(self._done) >= self._batch_size or self._idle():
            self._set_ready()
        elif self._timer is None:
            # The feeder's next claim takes them along, else the timer does.
            self._timer = asyncio.get_running_loop().call_later(RESULT_WAIT, self._timed_out)

    def write_soon(self) -> None:
        if self._done:
            self._set_ready()

    def close(self, grace_period: float) -> None:
        """Write what is left (for at most ``grace_period`` of outage), then end :meth:`run`."""
        self._deadline = time.monotonic() + grace_period
        self._set_ready()

    def _timed_out(self) -> None:
        self._timer = None
        if self._done:
            self._set_ready()

    def _set_ready(self) -> None:
        self._ready = True
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._ready:
                self._wake = loop.create_future()
                try:
                    await self._wake
                finally:
                    self._wake = None
            self._ready = False
            batch, self._done = self._done, []
            if batch:
                self.writing = True
                try:
                    await self._write(batch)
                finally:
                    self.writing = False
                if self._idle() and not self._done:
                    # The feeder may have found everything finished but this batch unwritten,
                    # and gone to sleep for a whole poll interval: it is idle now, tell it.
                    self._woke()
            if self._deadline is not None and not self._done:
                return

    async def _write(self, batch: list[Completion]) -> None:
        """Write results; a received ``EventRef`` is only ever given up as a last resort.

        An unreachable (or locked, or full) database is waited out for as long as the flusher
        runs, and for ``grace_period`` more once it is closing.
        """
        failures = 0
        while True:
            wait = min(5.0, 0.05 * 2 ** (failures + 1))
            try:
                applied = await self._storage.finish(batch, now=self._clock())
            except StorageUnavailableError as exc:
                failures += 1
                self.failures = failures
                logger.warning(
                    "writing %d results failed (%s); trying again in %.2f s (try %d)",
                    len(batch),
                    exc,
                    wait,
                    failures,
                    extra={"action": "finish_failed"},
                )
                if self._aborting.is_set() or self._past_deadline():
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
                if failures:
                    logger.info(
                        "results written again after %d failed tries",
                        failures,
                        extra={"action": "finish_recovered"},
                    )
                self.failures = 0
                await self._report_fenced(batch, applied, retried=failures > 0)
                return
            with contextlib.suppress(TimeoutError):  # a second stop() cuts the wait short
                await asyncio.wait_for(self._aborting.wait(), wait)
        self.failures = 0
        refs = [c.outcome.event_ref for c in batch if isinstance(c.outcome, Delivered)]
        logger.error(
            "giving up writing %d results (refs received: %s); their leases will expire and "
            "reconciliation will look for them",
            len(batch),
            ", ".join(refs) or "none",
            extra={"action": "finish_abandoned", "event_refs": refs},
        )

    async def _stored_already(self, completion: Completion) -> bool:
        outcome = completion.outcome
        if not isinstance(outcome, Delivered):
            return False  # only a delivery is stored with something to compare (its ref)
        try:
            entry = await self._storage.get(completion.key)
        except StorageError:
            return False
        return entry is not None and entry.event_ref == outcome.event_ref

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

    async def _report_fenced(
        self, batch: list[Completion], applied: list[bool], *, retried: bool
    ) -> None:
        fenced = [c for c, ok in zip(batch, applied, strict=True) if not ok]
        if fenced and retried:
            # A try that "failed" may have committed, its answer lost with the connection: a
            # result found already stored as it is was written by that try, not fenced off.
            fenced = [c for c in fenced if not await self._stored_already(c)]
        if not fenced:
            return
        self._stats.fenced += len(fenced)
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
