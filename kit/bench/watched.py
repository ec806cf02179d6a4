"""A client wrapper that sees every POST: when it started, and when enough were accepted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from kit.client import ETrustedClient
from kit.models import EventAccepted, EventDetails, EventType, Invite


class WatchedClient:
    """Delegates to an :class:`ETrustedClient`, noting when each POST starts and how many ended.

    ``target``: set ``reached`` once that many POSTs have been answered with 202. ``record``:
    keep (time, body) of every POST (off in child processes, whose memory is measured).
    """

    def __init__(
        self, client: ETrustedClient, *, target: int | None = None, record: bool = True
    ) -> None:
        self._client = client
        self._target = target
        self._record = record
        self.started: list[tuple[float, bytes | str]] = []
        self.accepted = 0
        self.reached = asyncio.Event()
        self.reached_at: float | None = None

    async def post_event_json(self, body: bytes | str) -> EventAccepted:
        if self._record:
            self.started.append((time.time(), body))
        answer = await self._client.post_event_json(body)
        self.accepted += 1
        if self._target is not None and self.accepted >= self._target and not self.reached.is_set():
            self.reached_at = time.perf_counter()
            self.reached.set()
        return answer

    async def list_event_types(self, name: str | None = None) -> list[EventType]:
        return await self._client.list_event_types(name)

    def iter_invites(
        self, channel_id: str, *, query: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Invite]:
        return self._client.iter_invites(channel_id, query=query, page_size=page_size)

    async def get_event(self, ref: str) -> EventDetails:
        return await self._client.get_event(ref)
