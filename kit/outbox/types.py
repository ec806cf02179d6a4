"""Value types shared by every outbox backend, the flusher and the CLI.

Times are UTC epoch seconds (``float``) at this layer: every backend stores them the same way,
they sort and compare without time-zone traps, and callers pass ``now`` explicitly so tests and
the flusher share one injectable clock.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from typing import Any

import attrs

from kit import jsonenc
from kit.errors import FieldError, ValidationError

# The outbox writes each entry's key into its event's ``metadata`` under this name, so that
# reconciliation can tell our event from any other with the same type, channel and reference.
KEY_MARKER = "etrustedKitKey"


class State(enum.StrEnum):
    """Where an outbox entry is in its life (see docs/guarantees.md)."""

    PENDING = "pending"  # waiting to be sent (first time, or for a retry / hold-back)
    SENDING = "sending"  # claimed by a flusher; durably marked before the POST leaves
    IN_DOUBT = "in_doubt"  # a POST may have reached eTrusted; reconcile before any resend
    DELIVERED = "delivered"  # eTrusted accepted it; ``event_ref`` is recorded
    DEAD = "dead"  # parked with a reason; an operator may retry or drop it
    CANCELLED = "cancelled"  # withdrawn before delivery (or dropped by an operator)


TERMINAL_STATES = frozenset({State.DELIVERED, State.DEAD, State.CANCELLED})


class ClaimMode(enum.StrEnum):
    """What a claimed entry is to be used for."""

    SEND = "send"  # POST it
    RECONCILE = "reconcile"  # find out whether an earlier POST created it; never POST


class AttemptKind(enum.StrEnum):
    SEND = "send"  # a POST that may have reached eTrusted; counts against the attempt budget
    # A send turned away before anything could be created (429, connection refused, token
    # endpoint down, credentials refused): logged, but not the entry's fault, so not counted.
    DEFERRED = "deferred"
    RECONCILE = "reconcile"


@attrs.frozen(kw_only=True)
class NewEntry:
    """An event ready for the outbox; the facade in :mod:`kit.outbox` builds these."""

    key: str
    payload: str  # the event body exactly as it will be POSTed (JSON text, camelCase)
    event_type: str
    channel_id: str
    transaction_reference: str
    email_hash: str | None = None  # sha256 of the lower-cased e-mail, for forget_customer()
    send_after: float | None = None  # hold-back: not before this time

    @classmethod
    def from_body(
        cls,
        key: str,
        body: dict[str, Any],
        *,
        email_hash: str | None = None,
        send_after: float | None = None,
    ) -> NewEntry:
        """Build from an already validated wire body (camelCase dict).

        Raises :class:`~kit.errors.ValidationError` for a body JSON cannot encode (a datetime in
        a field validation does not look at, say).
        """
        try:
            payload = jsonenc.encode(body)
        except (TypeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
            raise ValidationError(
                [FieldError("(root)", f"not JSON-serialisable: {exc}")], subject="event"
            ) from exc
        entry = cls(
            key=key,
            payload=payload,
            event_type=str(body["type"]),
            channel_id=str(body["channel"]["id"]),
            transaction_reference=str(body["transaction"]["reference"]),
            email_hash=email_hash,
            send_after=send_after,
        )
        errors = _unstorable(entry)
        if errors:
            raise ValidationError(errors, subject="event")
        return entry


def _unstorable(entry: NewEntry) -> list[FieldError]:
    """Text every backend can store, checked before anything is: PostgreSQL's text holds no
    NUL character, and nothing holds a lone surrogate (half a UTF-16 pair, which json.loads
    accepts from a webhook body as ``"\\ud83d"``), so without this the backends would disagree
    and a batch would fail halfway through a call."""
    nul = "contains a NUL character, which PostgreSQL cannot store"
    errors = [
        FieldError(path, nul)
        for path, value in (
            ("type", entry.event_type),
            ("channel.id", entry.channel_id),
            ("transaction.reference", entry.transaction_reference),
        )
        if "\x00" in value
    ]
    if not errors and "\x00" in entry.key:  # a key of the caller's own
        errors.append(FieldError("key", nul))
    try:
        entry.payload.encode()
        entry.key.encode()
    except UnicodeEncodeError:
        errors.append(FieldError("(root)", "contains a lone surrogate: not valid UTF-8 text"))
    return errors


@attrs.frozen
class EnqueueResult:
    key: str
    duplicate: bool  # True: the key was already in the ledger; nothing was written


@attrs.frozen(kw_only=True)
class Claimed:
    """An entry handed to one flusher under a lease; ``attempt`` is its fencing token."""

    key: str
    attempt: int
    entry_id: int  # the entry's id, so that its completion finds the row without the key index
    mode: ClaimMode
    payload: str | None
    event_type: str
    channel_id: str
    transaction_reference: str
    sends: int  # POSTs already started for this entry before this claim
    first_sent_at: float | None  # when the first POST of this entry was claimed
    in_doubt_since: float | None
    lease_expires_at: float
    created_at: float  # when the entry was enqueued: delivery latency counts from here


@attrs.frozen(kw_only=True)
class AttemptRecord:
    """One line of an entry's attempt log."""

    attempt: int
    kind: AttemptKind
    started_at: float
    duration_ms: float
    outcome: str  # a kit.flusher.Label value: "delivered", "in_doubt", "not_found_yet", ...
    http_status: int | None = None
    error: str | None = None


# -- outcomes: how an attempt ends. One fenced write applies each. ---------------------------


@attrs.frozen
class Delivered:
    """eTrusted accepted the event (or reconciliation found it): record the ref."""

    event_ref: str
    adopted: bool = False  # True when found by reconciliation rather than a 202


@attrs.frozen
class Retry:
    """Back to ``pending``, due at ``due_at``."""

    due_at: float
    error: str


@attrs.frozen
class InDoubt:
    """To ``in_doubt``; the next reconciliation is due at ``due_at``."""

    due_at: float
    error: str


@attrs.frozen
class Dead:
    """Parked for an operator."""

    reason: str


@attrs.frozen
class Resend:
    """Reconciliation found nothing within its window: back to ``pending`` as a blind resend."""

    due_at: float
    reason: str


@attrs.frozen
class Release:
    """Give a claim back untouched (graceful stop before the POST left, or before reconciling).

    A ``SEND`` claim returns to ``pending``; a ``RECONCILE`` claim stays ``in_doubt``. Either way
    it is due at once and its lease is cleared.
    """


Outcome = Delivered | Retry | InDoubt | Dead | Resend | Release


@attrs.frozen
class Completion:
    """The end of one claimed attempt; applied only while ``attempt`` is still the entry's.

    ``entry_id`` (from the claim) lets a backend address the row directly; the key must match
    it too, so a wrong id changes nothing. None: the entry is found by its key.
    """

    key: str
    attempt: int
    outcome: Outcome
    record: AttemptRecord | None = None
    entry_id: int | None = None


@attrs.frozen(kw_only=True)
class Entry:
    """An outbox entry as stored (for queries, the CLI and migration)."""

    id: int
    key: str
    state: State
    event_type: str
    channel_id: str
    transaction_reference: str
    payload: str | None  # None once purged; the key, ref and reference stay
    payload_sha256: str | None
    email_hash: str | None
    attempt: int
    sends: int
    due_at: float
    created_at: float
    updated_at: float
    first_sent_at: float | None
    in_doubt_since: float | None
    event_ref: str | None
    delivered_at: float | None
    adopted: bool
    blind_resends: int
    last_error: str | None
    lease_owner: str | None
    lease_expires_at: float | None

    def body(self) -> dict[str, Any] | None:
        return None if self.payload is None else dict(json.loads(self.payload))


@attrs.frozen(kw_only=True)
class EntryRecord:
    """An entry with its whole attempt log: the unit that ``dump``/``load`` move."""

    entry: Entry
    attempts: tuple[AttemptRecord, ...]


@attrs.frozen(kw_only=True)
class Hold:
    """A fleet-wide brake on sending, shared by every flusher through the database."""

    name: str  # "pace" (429 / Retry-After); "auth" only in databases of older versions
    until: float
    reason: str


@attrs.frozen(kw_only=True)
class OutboxStats:
    counts: dict[State, int]  # every State present, zero when empty
    oldest_pending_created_at: float | None
    # The earliest due time of a pending entry. Held-back (send_after) and backed-off entries
    # have a later one, so ``now - earliest_due_at`` is how long due work has waited: the
    # figure to alert on, which the oldest pending entry is not.
    earliest_due_at: float | None
    last_error: str | None
    blind_resends: int
    adopted: int
    # Pending entries that failed before (they carry an error) and wait for their next try,
    # with the enqueue time of the oldest. During an eTrusted outage every entry is here and
    # none is due, so these, not ``earliest_due_at``, show that sending has stopped working.
    backing_off: int = 0
    oldest_backing_off_created_at: float | None = None


@attrs.frozen(kw_only=True)
class ForgetResult:
    purged: int  # entries whose payload was removed (pending ones are also cancelled)
    skipped_in_flight: int  # entries in ``sending``; call again once they finished

    @classmethod
    def total(cls, results: Iterable[ForgetResult]) -> ForgetResult:
        """One customer's result from those of the e-mail hashes it was forgotten by."""
        found = list(results)
        return cls(
            purged=sum(r.purged for r in found),
            skipped_in_flight=sum(r.skipped_in_flight for r in found),
        )


HOLD_PACE = "pace"
# Stored by older versions on refused credentials, which now pause only the flusher concerned
# (in memory); such a hold may still be in an upgraded database, and is ignored.
HOLD_AUTH = "auth"
