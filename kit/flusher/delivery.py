"""What the flusher needs from an eTrusted client (:class:`kit.client.ETrustedClient` has it;
tests pass doubles)."""

from __future__ import annotations

from typing import Protocol

from kit.flusher.catalog import ListsEventTypes
from kit.reconcile import InviteSource


class Accepted(Protocol):
    """eTrusted's answer to an accepted POST (``kit.models.EventAccepted`` is one)."""

    @property
    def event_ref(self) -> str: ...


class DeliveryClient(InviteSource, ListsEventTypes, Protocol):
    """The client calls the flusher makes: POST, the event-type list and reconciliation's."""

    async def post_event_json(self, body: bytes | str) -> Accepted: ...
