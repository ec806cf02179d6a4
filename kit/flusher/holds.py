"""Pauses of sending: the fleet's stored holds and this flusher's own credential pause.

A 429 is the account's rate limit, so it pauses every flusher: it is stored as a ``pace`` hold
that all of them read. Refused credentials are one flusher's problem (another may have working
ones): that pause stays in this process's memory, and its claims go back for others to send.
Holds of other names stored by older versions (``auth``) are ignored.
"""

from __future__ import annotations

import logging

from kit.errors import ETrustedError, FailureKind, StorageError
from kit.flusher.catalog import ListsEventTypes
from kit.outbox.protocol import Storage
from kit.outbox.types import HOLD_PACE, Hold

logger = logging.getLogger("kit.flusher")

HOLD_OWN_CREDENTIALS = "credentials"  # never stored: this flusher's own pause
# The stored holds this flusher obeys; others (HOLD_AUTH from older versions) are ignored.
_OBEYED = frozenset({HOLD_PACE})
# A hold that only moves its end by less than this is the same pause (a burst of 429s).
_SAME_PAUSE = 1.0


class Holds:
    """What this flusher knows about pauses, and the one place that logs waiting on them."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.fleet: list[Hold] = []  # as last read from the database
        self.checked_at = -1e18
        self._own: Hold | None = None
        self._announced: Hold | None = None
        self._unreadable = False

    def seen(self, holds: list[Hold], now: float) -> None:
        """The holds as read in a claim's own transaction."""
        self.fleet, self.checked_at = holds, now

    async def refresh(self, now: float) -> bool:
        """Re-read the fleet's holds; False (and the old view kept) if they cannot be read."""
        try:
            self.fleet = await self._storage.holds(now=now)
        except StorageError as exc:
            # Once per outage: the claims that fail meanwhile say how long it lasts.
            log = logger.debug if self._unreadable else logger.warning
            log("reading holds failed: %s", exc, extra={"action": "holds_failed"})
            self._unreadable = True
            return False
        finally:
            self.checked_at = now
        self._unreadable = False
        return True

    def _active(self, now: float) -> list[Hold]:
        active = [h for h in self.fleet if h.name in _OBEYED and h.until > now]
        if self._own is not None and self._own.until > now:
            active.append(self._own)
        return active

    def paced(self, now: float) -> bool:
        """Whether the fleet is paced now (429s of one burst do not escalate the pace)."""
        return any(h.name == HOLD_PACE and h.until > now for h in self.fleet)

    def blocks(self, now: float) -> bool:
        """Whether nothing may be sent now (no logging: the workers ask this per entry, so it
        is :meth:`_active` without building the list)."""
        own = self._own
        if own is not None and own.until > now:
            return True
        for hold in self.fleet:  # noqa: SIM110 (no generator per entry sent)
            if hold.name in _OBEYED and hold.until > now:
                return True
        return False

    def wait(self, now: float) -> float:
        """Seconds to wait before claiming; logs once when a pause begins, and when it ends."""
        active = self._active(now)
        if not active:
            if self._own is not None:
                return 0.0  # over, but not resumed until a probe says the credentials work
            if self._announced is not None:
                logger.info(
                    "sends resume (%s)", _describe(self._announced), extra={"action": "resumed"}
                )
                self._announced = None
            return 0.0
        hold = max(active, key=lambda h: h.until)
        last = self._announced
        if last is None or last.name != hold.name or hold.until - last.until > _SAME_PAUSE:
            if hold.name == HOLD_OWN_CREDENTIALS:
                logger.error(
                    "pausing this flusher's sends for %.1f s: %s",
                    hold.until - now,
                    hold.reason,
                    extra={"action": "auth_paused"},
                )
            else:
                logger.warning(
                    "pausing all sends for %.1f s: %s",
                    hold.until - now,
                    hold.reason,
                    extra={"action": "paused", "hold": hold.name},
                )
            self._announced = hold
        return hold.until - now

    async def pace(self, until: float, reason: str) -> None:
        """Pause the whole fleet (stored) until ``until``, unless a longer pace is in force."""
        current = next((h for h in self.fleet if h.name == HOLD_PACE), None)
        if current is not None and current.until >= until:
            return
        hold = Hold(name=HOLD_PACE, until=until, reason=reason)
        self.fleet = [h for h in self.fleet if h.name != HOLD_PACE] + [hold]
        try:
            await self._storage.set_hold(hold)
        except StorageError as exc:
            logger.warning("storing hold failed: %s", exc, extra={"action": "hold_failed"})

    def pause_own(self, until: float, error: str) -> None:
        """Pause this flusher only (its credentials are refused): kept in memory."""
        if self._own is None or self._own.until < until:
            reason = f"eTrusted refuses this flusher's credentials ({error})"
            self._own = Hold(name=HOLD_OWN_CREDENTIALS, until=until, reason=reason)

    @property
    def own_paused(self) -> bool:
        """Whether a credential pause was set and not yet cleared by a working probe."""
        return self._own is not None

    async def probe_credentials(self, client: ListsEventTypes, now: float, pause: float) -> float:
        """After a credential pause, check with one cheap call before sending anything; the
        seconds to wait on (0: they work, or the failure is no credential problem)."""
        try:
            await client.list_event_types()
        except ETrustedError as exc:
            if exc.kind is FailureKind.UNAUTHORIZED:
                self.pause_own(now + pause, str(exc))
                return self.wait(now)
            # Anything else (eTrusted down, network) is not a credential problem: go on and
            # let the entries' own retry logic deal with it.
        self._own = None
        self.wait(now)  # logs that sends resume
        return 0.0


def _describe(hold: Hold) -> str:
    if hold.name == HOLD_OWN_CREDENTIALS:
        return "the credentials work again"
    return f"the {hold.name} hold is over"


__all__ = ["HOLD_OWN_CREDENTIALS", "Holds"]
