"""Finding out whether an in-doubt POST created an event.

eTrusted has no idempotency key and no search of events by our own key. What it has: the
invites of a channel can be searched by transaction reference (``GET
/channels/{id}/invites?query=``), each invite names the event that caused it, and ``GET
/events/{ref}`` returns that event. So a candidate is adopted only when eTrusted itself confirms
that it has the same type, channel and transaction reference as our entry and was created after
our first send was claimed (minus a tolerance for clock skew). Because the outbox's dedupe key is
exactly (channel, type, transaction reference), such an event is by construction the one we
sent: no other entry of ours can have produced it.

If invite creation is switched off for the event type, or eTrusted processes the event later
than the reconciliation window, nothing is found; the flusher then resends or parks, as
configured, and counts it as a blind resend.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

import attrs

from kit.errors import NotFoundError
from kit.models import EventDetails, Invite
from kit.outbox.types import KEY_MARKER

logger = logging.getLogger(__name__)


class InviteSource(Protocol):
    """The two client calls reconciliation needs (so tests can pass a double)."""

    def iter_invites(
        self, channel_id: str, *, query: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Invite]: ...

    async def get_event(self, ref: str) -> EventDetails: ...


@attrs.frozen(kw_only=True)
class Finding:
    """What a reconciliation found: the adopted ref (or None) and every confirmed match."""

    event_ref: str | None
    matches: tuple[str, ...]
    candidates_checked: int


def marker_of(payload: str | None) -> str | None:
    """The outbox key a stored payload carries in its metadata (None for unmarked events)."""
    if payload is None:
        return None
    try:
        metadata = json.loads(payload).get("metadata")
    except (ValueError, AttributeError):
        return None
    value = metadata.get(KEY_MARKER) if isinstance(metadata, dict) else None
    return value if isinstance(value, str) else None


def _epoch(value: datetime | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return value.timestamp()


async def find_event(
    client: InviteSource,
    *,
    channel_id: str,
    event_type: str,
    transaction_reference: str,
    not_before: float | None,
    clock_skew: float,
    marker: str | None = None,
    max_candidates: int = 50,
) -> Finding:
    """Look for the event our in-doubt POST may have created; adopt the earliest match."""
    refs: list[str] = []
    async for invite in client.iter_invites(channel_id, query=transaction_reference):
        ref = invite.event_ref
        txn = invite.transaction
        if not ref or ref in refs:
            continue
        if txn is not None and txn.reference not in (None, transaction_reference):
            continue  # the query also matches e-mails; only our reference counts
        refs.append(ref)
        if len(refs) >= max_candidates:
            break

    matches: list[tuple[float, str]] = []
    for ref in refs:
        try:
            event = await client.get_event(ref)
        except NotFoundError:
            continue  # listed but not (or no longer) readable: not proof of anything
        if event.type != event_type:
            continue
        if event.channel is None or event.channel.id != channel_id:
            continue
        if event.transaction is None or event.transaction.reference != transaction_reference:
            continue
        if marker is not None and (event.metadata or {}).get(KEY_MARKER) != marker:
            continue  # same type, channel and reference, but another outbox entry's event
        created = _epoch(event.created_at)
        if created is not None and not_before is not None and created < not_before - clock_skew:
            continue  # older than our first send: not ours
        matches.append((created if created is not None else float("inf"), ref))

    matches.sort()
    found = tuple(ref for _, ref in matches)
    if len(found) > 1:
        logger.warning(
            "reconciliation found %d events for one outbox entry; adopting the earliest",
            len(found),
            extra={"action": "reconcile_multiple_matches", "event_refs": found},
        )
    return Finding(
        event_ref=found[0] if found else None, matches=found, candidates_checked=len(refs)
    )
