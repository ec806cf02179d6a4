"""An outbox entry's life as pure functions: the state machine in Python.

The in-memory backend (:mod:`kit.outbox.memory`) is built on these, and the SQL backends take
their shared values from here (the payload hash, the first due time). What a completion does
is not written here but in :mod:`kit.outbox.transitions`, which the SQL backends read too.
"""

from __future__ import annotations

import hashlib
from typing import Any

import attrs

from kit.outbox.transitions import FINISHABLE_STATES, ErrorText, Since, effect_of
from kit.outbox.types import Claimed, ClaimMode, Completion, Entry, NewEntry, State

#: States that ``claim`` may look at; every other state is final until an operator acts.
ACTIVE_STATES = frozenset({State.PENDING, State.SENDING, State.IN_DOUBT})
#: States that ``forget_customer`` turns into ``cancelled`` (besides removing the payload).
FORGET_CANCELS = frozenset({State.PENDING, State.IN_DOUBT, State.DEAD})


def payload_sha256(payload: str) -> str:
    """The hash stored at enqueue; it stays after the payload is purged."""
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def initial_due_at(entry: NewEntry, now: float) -> float:
    """A hold-back never makes an entry due earlier than its enqueue time."""
    return now if entry.send_after is None else max(now, entry.send_after)


def new_entry(entry_id: int, new: NewEntry, now: float) -> Entry:
    return Entry(
        id=entry_id,
        key=new.key,
        state=State.PENDING,
        event_type=new.event_type,
        channel_id=new.channel_id,
        transaction_reference=new.transaction_reference,
        payload=new.payload,
        payload_sha256=payload_sha256(new.payload),
        email_hash=new.email_hash,
        attempt=0,
        sends=0,
        due_at=initial_due_at(new, now),
        created_at=now,
        updated_at=now,
        first_sent_at=None,
        in_doubt_since=None,
        event_ref=None,
        delivered_at=None,
        adopted=False,
        blind_resends=0,
        last_error=None,
        lease_owner=None,
        lease_expires_at=None,
    )


def claim_due(entry: Entry, now: float) -> float | None:
    """When ``entry`` became claimable, or None if ``claim`` must not hand it out at ``now``.

    Claims go oldest due first; an expired ``sending`` lease counts as due when it ran out.
    """
    if entry.state is State.PENDING:
        return entry.due_at if entry.due_at <= now else None
    if entry.state is State.IN_DOUBT:
        lease_live = entry.lease_expires_at is not None and entry.lease_expires_at > now
        return entry.due_at if entry.due_at <= now and not lease_live else None
    if entry.state is State.SENDING:
        expires = entry.lease_expires_at
        return expires if expires is not None and expires <= now else None
    return None


def claim_entry(entry: Entry, *, owner: str, lease_seconds: float, now: float) -> Entry:
    """The entry after it was claimed at ``now`` (see :meth:`Storage.claim`)."""
    common: dict[str, Any] = {
        "attempt": entry.attempt + 1,
        "lease_owner": owner,
        "lease_expires_at": now + lease_seconds,
        "updated_at": now,
    }
    if entry.state is State.PENDING:
        first_sent = now if entry.first_sent_at is None else entry.first_sent_at
        return attrs.evolve(entry, state=State.SENDING, first_sent_at=first_sent, **common)
    since = now if entry.in_doubt_since is None else entry.in_doubt_since
    if entry.state is State.SENDING:
        # The POST of the lost claim may have reached eTrusted: never send it again blindly.
        assert entry.lease_expires_at is not None
        return attrs.evolve(
            entry,
            state=State.IN_DOUBT,
            in_doubt_since=since,
            due_at=entry.lease_expires_at,
            **common,
        )
    return attrs.evolve(entry, state=State.IN_DOUBT, in_doubt_since=since, **common)


def to_claimed(entry: Entry) -> Claimed:
    """The lease handed out for an entry that :func:`claim_entry` just produced."""
    assert entry.lease_expires_at is not None
    return Claimed(
        key=entry.key,
        attempt=entry.attempt,
        entry_id=entry.id,
        mode=ClaimMode.SEND if entry.state is State.SENDING else ClaimMode.RECONCILE,
        payload=entry.payload,
        event_type=entry.event_type,
        channel_id=entry.channel_id,
        transaction_reference=entry.transaction_reference,
        sends=entry.sends,
        first_sent_at=entry.first_sent_at,
        in_doubt_since=entry.in_doubt_since,
        lease_expires_at=entry.lease_expires_at,
        created_at=entry.created_at,
    )


def apply_completion(entry: Entry, completion: Completion, now: float) -> Entry | None:
    """The entry after ``completion``, or None when the completion is fenced off.

    A completion applies only to the attempt in force (``attempt`` matches), while the entry is
    ``sending`` or ``in_doubt`` and the claim has not ended yet (its lease is still recorded);
    one that names an ``entry_id`` only to the entry with that id.
    The last rule makes a repeated completion of the same attempt a no-op too. What it changes
    is :data:`kit.outbox.transitions.TRANSITIONS`, resolved as the SQL backends resolve it.
    """
    if (
        entry.state not in FINISHABLE_STATES
        or entry.attempt != completion.attempt
        or entry.lease_owner is None
        or (completion.entry_id is not None and completion.entry_id != entry.id)
    ):
        return None
    effect = effect_of(completion.outcome, completion.record, now)
    since = {
        Since.KEEP: entry.in_doubt_since,
        Since.SET_IF_UNSET: now if entry.in_doubt_since is None else entry.in_doubt_since,
        Since.CLEAR: None,
    }[Since(effect.in_doubt_since)]
    to = effect.to_from_sending if entry.state is State.SENDING else effect.to_from_in_doubt
    return attrs.evolve(
        entry,
        state=State(to),
        due_at=entry.due_at if effect.due_at is None else effect.due_at,
        in_doubt_since=since,
        event_ref=entry.event_ref if effect.event_ref is None else effect.event_ref,
        delivered_at=entry.delivered_at if effect.delivered_at is None else effect.delivered_at,
        adopted=entry.adopted if effect.adopted is None else effect.adopted,
        blind_resends=entry.blind_resends + effect.blind_resends,
        sends=entry.sends + effect.sends,
        last_error=entry.last_error if effect.last_error == ErrorText.KEEP else effect.error,
        lease_owner=None,
        lease_expires_at=None,
        updated_at=now,
    )


def amend_entry(entry: Entry, new: NewEntry, now: float) -> Entry | None:
    """The waiting entry with ``new``'s payload, e-mail hash and hold-back; None unless it is
    ``pending`` (once claimed, what was sent is not changed).

    The due time follows the new hold-back as a new entry's would (never before ``now``).
    """
    if entry.state is not State.PENDING:
        return None
    return attrs.evolve(
        entry,
        payload=new.payload,
        payload_sha256=payload_sha256(new.payload),
        email_hash=new.email_hash,
        due_at=initial_due_at(new, now),
        updated_at=now,
    )


def retry_dead_entry(entry: Entry, now: float) -> Entry | None:
    """``dead`` -> ``pending``; None when not dead or its payload is gone (nothing to send)."""
    if entry.state is not State.DEAD or entry.payload is None:
        return None
    return attrs.evolve(
        entry, state=State.PENDING, due_at=now, sends=0, in_doubt_since=None, updated_at=now
    )


def empty_stats_counts() -> dict[State, int]:
    return dict.fromkeys(State, 0)


__all__ = [
    "ACTIVE_STATES",
    "FORGET_CANCELS",
    "amend_entry",
    "apply_completion",
    "claim_due",
    "claim_entry",
    "empty_stats_counts",
    "initial_due_at",
    "new_entry",
    "payload_sha256",
    "retry_dead_entry",
    "to_claimed",
]
