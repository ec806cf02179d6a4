"""The order-feed pollers of ``serve``: one per source whose feed is on, each polling only while
it holds the source's lease (:mod:`kit.feeds.lease`).

A poller waits for the lease (``standby`` while another replica holds it), then polls every
``poll_interval`` (:meth:`kit.feeds.runner.FeedRunner.run_forever`) and renews the lease every
third of its time to live. A lease lost (the database away past the time to live, another
replica took over) abandons the poll in flight and goes back to waiting: the checkpoint is
saved only after a page's orders were journaled, so an abandoned page is read again, once.

A refused token (:class:`~kit.errors.FeedAuthError`) stops that poller only: it logs an ERROR,
gives the lease up, and shows ``failed`` with the reason in :attr:`Poller.health`; the webhooks
and the flusher keep running, because a merchant would rather keep taking webhooks than lose
them all over a token someone revoked. Fixing the token takes a restart. Everything else that
fails a poll (the platform down past the retries, the database away) is logged and retried at
the next interval inside the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Callable
from datetime import timedelta

import attrs

from kit.errors import FeedAuthError, KitError
from kit.feeds.lease import LeaseStore
from kit.feeds.runner import FeedRunner, Tally

logger = logging.getLogger(__name__)


class PollerState(enum.StrEnum):
    STARTING = "starting"
    STANDBY = "standby"  # another replica holds the lease
    POLLING = "polling"  # this process holds the lease and polls
    FAILED = "failed"  # the platform refused the credentials: stopped until a restart
    STOPPED = "stopped"


@attrs.frozen(kw_only=True)
class PollerHealth:
    """One poller's state, as a health check reads it (``healthy`` is False only when it
    failed; a standby replica is healthy)."""

    source: str
    state: PollerState
    polls: int = 0  # polls this process completed
    error: str | None = None

    @property
    def healthy(self) -> bool:
        return self.state is not PollerState.FAILED


class Poller:
    """Polls one source under its lease until stopped (see the module docstring)."""

    def __init__(
        self,
        runner: FeedRunner,
        interval: timedelta,
        *,
        leases: LeaseStore,
        holder: str,
        lease_ttl: float,
        grace: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._runner = runner
        self._interval = interval
        self._leases = leases
        self._holder = holder
        self._ttl = lease_ttl
        self._grace = grace
        self._clock = clock
        self._source = runner.source.name
        self._health = PollerHealth(source=self._source, state=PollerState.STARTING)
        self._stop = asyncio.Event()
        self._polls = 0

    @property
    def source(self) -> str:
        return self._source

    @property
    def health(self) -> PollerHealth:
        return attrs.evolve(self._health, polls=self._polls)

    def stop(self) -> None:
        self._stop.set()

    def _set(self, state: PollerState, error: str | None = None) -> None:
        if state is not self._health.state:
            logger.info(
                "poller of %s: %s",
                self._source,
                state.value,
                extra={"action": "feed.poller", "source": self._source, "state": state.value},
            )
        self._health = PollerHealth(source=self._source, state=state, error=error)

    async def run(self) -> None:
        """Until :meth:`stop`; returns (never raises) when the credentials were refused."""
        try:
            while not self._stop.is_set():
                if await self._take():
                    self._set(PollerState.POLLING)
                    try:
                        await self._hold_and_poll()
                    except FeedAuthError as exc:
                        self._fail(str(exc), "restart after fixing the credentials")
                        return
                    except Exception as exc:
                        logger.exception("poller of %s crashed", self._source)
                        self._fail(f"{type(exc).__name__}: {exc}", "see the log")
                        return
                    finally:
                        await self._release()
                else:
                    self._set(PollerState.STANDBY)
                await self._pause(self._ttl / 3)
        finally:
            if self._health.state is not PollerState.FAILED:
                self._set(PollerState.STOPPED)

    def _fail(self, reason: str, advice: str) -> None:
        self._set(PollerState.FAILED, reason)
        logger.error(
            "polling %s stopped: %s; webhooks keep working, %s",
            self._source,
            reason,
            advice,
            extra={"action": "feed.poller_failed", "source": self._source},
        )

    async def _take(self) -> bool:
        try:
            return await self._leases.acquire(
                self._source, self._holder, ttl=self._ttl, now=self._clock()
            )
        except KitError as exc:
            logger.warning(
                "poller of %s could not take its lease: %s",
                self._source,
                exc,
                extra={"action": "feed.lease_failed", "source": self._source},
            )
            return False

    async def _release(self) -> None:
        with contextlib.suppress(KitError):  # it expires on its own
            await self._leases.release(self._source, self._holder)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    async def _hold_and_poll(self) -> None:
        """Poll while the lease holds and no stop came; raises the poll's FeedAuthError."""
        inner_stop = asyncio.Event()
        polling = asyncio.ensure_future(
            self._runner.run_forever(self._interval, stop=inner_stop, on_poll=self._polled)
        )
        try:
            while not polling.done():
                ended = asyncio.ensure_future(self._stop.wait())
                await asyncio.wait({polling, ended}, timeout=self._ttl / 3)
                ended.cancel()
                if polling.done():
                    break
                if self._stop.is_set():
                    # A page in flight may finish within the grace; past it, it is abandoned
                    # (its checkpoint was not saved, so the next holder reads it again).
                    inner_stop.set()
                    await asyncio.wait({polling}, timeout=self._grace)
                    break
                if not await self._take():
                    logger.warning(
                        "poller of %s lost its lease: another process polls now",
                        self._source,
                        extra={"action": "feed.lease_lost", "source": self._source},
                    )
                    break
        finally:
            if not polling.done():
                polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling  # raises the FeedAuthError, if that ended it

    def _polled(self, tally: Tally) -> None:
        self._polls += 1


__all__ = ["Poller", "PollerHealth", "PollerState"]
