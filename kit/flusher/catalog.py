"""Which event types eTrusted knows, and where invites are switched off (cached, shared by
a flusher's workers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from kit.errors import ETrustedError

logger = logging.getLogger("kit.flusher")

# However many workers ask, eTrusted is asked for the list at most this often.
REFRESH_MIN_INTERVAL = 5.0


class ListsEventTypes(Protocol):
    async def list_event_types(self, name: str | None = None) -> list[Any]: ...


@runtime_checkable
class ReadsInviteSettings(Protocol):
    """A client that can list invite settings: the flusher then warns about switched-off ones."""

    async def list_invite_settings(self) -> list[Any]: ...


class EventTypeCatalog:
    """eTrusted's event types as last read.

    A positive answer (the type exists and is active) is trusted for ``ttl`` seconds. A
    negative one never parks an event on its own once it is older than
    :data:`REFRESH_MIN_INTERVAL`: the list is read again first, so a type created or activated
    meanwhile (with ``etrusted-kit event-types create`` or in eTrusted's UI) is seen before
    ``dead retry`` sends its events.
    """

    def __init__(self, client: ListsEventTypes, *, ttl: float, clock: Callable[[], float]) -> None:
        self._client = client
        self._ttl = ttl
        self._clock = clock
        self._types: dict[str, bool] | None = None
        self._read_at = -1e18
        self._lock = asyncio.Lock()
        # (event type name, channel id) pairs whose invite settings are switched off, and the
        # pairs already warned about: reconciliation cannot find their events.
        self._invites_off: set[tuple[str, str]] = set()
        self._invites_warned: set[tuple[str, str]] = set()

    def cached(self, name: str) -> bool | None:
        """True if a fresh list says ``name`` is active; None: ask :meth:`active`."""
        if self._types is None or self._clock() - self._read_at >= self._ttl:
            return None
        return True if self._types.get(name) else None

    async def active(self, name: str) -> bool | None:
        """Whether eTrusted knows ``name`` as an active event type (None: cannot tell)."""
        if self.cached(name):
            return True
        async with self._lock:
            # Another worker may have just read the list: then its answer is fresh enough. One
            # read "before now" (the wall clock stepped back since) is of unknown age: read again.
            age = self._clock() - self._read_at
            if self._types is None or not 0 <= age < REFRESH_MIN_INTERVAL:
                try:
                    types = await self._client.list_event_types()
                except ETrustedError:
                    # Cannot tell: send it, and let eTrusted's answer decide. An old negative
                    # answer is no reason to park.
                    return True if self._types and self._types.get(name) else None
                self._types = {t.name: bool(t.active) for t in types}
                self._read_at = self._clock()
                await self._read_invite_settings(types)
        return self._types.get(name, False)

    async def _read_invite_settings(self, types: list[Any]) -> None:
        """Note which (type, channel) pairs have invites switched off; advisory only."""
        if not isinstance(self._client, ReadsInviteSettings):
            return
        try:
            settings = await self._client.list_invite_settings()
        except ETrustedError as exc:  # e.g. credentials without that scope: nothing to warn
            logger.debug("cannot read invite settings: %s", exc, extra={"action": "settings"})
            return
        names = {t.id: t.name for t in types if getattr(t, "id", None)}
        self._invites_off = {
            (names[s.event_type_id], s.channel_id)
            for s in settings
            if s.enabled is False and s.event_type_id in names and s.channel_id
        }

    def warn_if_invites_off(self, event_type: str, channel_id: str) -> None:
        """Warn once per type and channel whose invites are off: reconciliation is blind there."""
        pair = (event_type, channel_id)
        if pair in self._invites_off and pair not in self._invites_warned:
            self._invites_warned.add(pair)
            logger.warning(
                "invites are switched off for event type %r in channel %s: eTrusted sends no"
                " invite for these events, and an event whose POST ends in doubt cannot be"
                " found again (it is resent blind or parked, see --in-doubt)",
                event_type,
                channel_id,
                extra={"action": "invites_off", "event_type": event_type},
            )
