"""The storage protocol every outbox backend implements (memory, SQLite, PostgreSQL).

Backends are dumb on purpose: they store rows and apply state changes atomically. Validation,
dedupe-key derivation, clocks and wake-ups live in :class:`kit.outbox.Outbox` and the flusher, so
the guarantees are argued once and the contract suite (:mod:`kit.testing.storage_contract`)
checks every backend against the same rules:

* ``enqueue`` is idempotent per key; the key row (the ledger) is never deleted, only its payload.
* ``claim`` is atomic: an entry is handed to at most one claimant per attempt number, and every
  claim increments ``attempt`` (the fencing token).
* ``finish`` applies a :class:`Completion` only while ``attempt`` is still the entry's current
  attempt and the entry is ``sending`` or ``in_doubt``; otherwise it changes nothing and reports
  ``False``.
* A ``sending`` entry whose lease expired is never handed out to be sent again: ``claim`` turns it
  into ``in_doubt`` and hands it out for reconciliation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol, Self, runtime_checkable

from kit.outbox.types import (
    AttemptRecord,
    Claimed,
    Completion,
    EnqueueResult,
    Entry,
    EntryRecord,
    ForgetResult,
    Hold,
    NewEntry,
    OutboxStats,
    State,
)


@runtime_checkable
class Storage(Protocol):
    """An outbox backend. Constructors do no I/O; ``open`` connects and migrates."""

    @property
    def url(self) -> str:
        """Where the data lives, without credentials (safe to log)."""
        ...

    async def open(self, *, migrate: bool = True) -> None:
        """Connect; apply pending migrations unless ``migrate`` is False. Idempotent."""
        ...

    async def aclose(self) -> None:
        """Release connections that this object created. Idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def migrate(self) -> int:
        """Apply pending migrations; return the schema version now in force."""
        ...

    # -- writing --------------------------------------------------------------------------

    async def enqueue(self, entries: Sequence[NewEntry], *, now: float) -> list[EnqueueResult]:
        """Insert new entries in one transaction, in order; a known key is a duplicate no-op.

        A key repeated inside ``entries`` counts once; its later copies are duplicates. Raises
        :class:`~kit.errors.OutboxMovedError` (storing nothing) once the outbox was moved.
        """
        ...

    async def cancel(self, key: str, *, now: float) -> bool:
        """``pending`` -> ``cancelled``. False if the entry is in any other state.

        Raises :class:`kit.errors.OutboxError` for an unknown key, and
        :class:`~kit.errors.OutboxMovedError` (changing nothing) once the outbox was moved.
        """
        ...

    async def amend(self, entry: NewEntry, *, now: float) -> bool:
        """Replace a ``pending`` entry's payload, e-mail hash and hold-back with ``entry``'s
        (same key); its due time becomes ``max(now, send_after)``. False if the entry is in any
        other state: once claimed, what may have been sent is never changed.

        Raises :class:`kit.errors.OutboxError` for an unknown key, and
        :class:`~kit.errors.OutboxMovedError` (changing nothing) once the outbox was moved.
        """
        ...

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[Claimed]:
        """Atomically lease up to ``limit`` due entries, oldest due first.

        * ``pending`` with ``due_at <= now`` -> ``sending``, mode SEND; ``first_sent_at`` is set
          on the first such claim.
        * ``sending`` whose lease expired -> ``in_doubt`` (``in_doubt_since`` set if unset),
          mode RECONCILE.
        * ``in_doubt`` with ``due_at <= now`` and no live lease -> stays ``in_doubt``, mode
          RECONCILE.

        Every claimed entry gets ``attempt + 1`` and the lease (``owner``, now + lease_seconds).
        Raises :class:`~kit.errors.OutboxMovedError` (claiming nothing) once the outbox was
        moved (:meth:`set_moved`).
        """
        ...

    async def claim_with_holds(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> tuple[list[Claimed], list[Hold]]:
        """``claim`` and then ``holds(now=now)``, atomically, in one round trip.

        The flusher must see every hold committed before its claim before it POSTs what it
        claimed; reading them with the claim spares it a second transaction per claim.
        """
        ...

    async def finish(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        """Apply each completion in one transaction, fenced by ``attempt``.

        Effects per outcome: ``Delivered`` -> ``delivered`` (ref, ``delivered_at``, ``adopted``);
        ``Retry`` -> ``pending`` at ``due_at``; ``InDoubt`` -> ``in_doubt`` due at ``due_at``
        (``in_doubt_since`` set if unset); ``Dead`` -> ``dead``; ``Resend`` -> ``pending`` at
        ``due_at`` with ``blind_resends + 1`` and ``in_doubt_since`` cleared; ``Release`` -> back to
        ``pending`` (SEND claims, i.e. from ``sending``) or stays ``in_doubt``, due now. Each clears
        the lease and stores the error text, if any, in ``last_error``. A record of kind SEND
        increments ``sends``. The record, when given, is appended to the attempt log.
        """
        ...

    # -- operators ------------------------------------------------------------------------

    async def retry_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        """``dead`` -> ``pending`` due now with ``sends`` reset (``None``: all dead entries)."""
        ...

    async def drop_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        """``dead`` -> ``cancelled``, payload and e-mail hash removed (``None``: all dead)."""
        ...

    async def purge(self, *, before: float, now: float) -> int:
        """Remove the payload and e-mail hash of terminal entries last updated before ``before``.

        The key, state, refs, transaction reference, payload hash and attempt log stay. The
        e-mail hash goes too: an unsalted hash of an address is still personal data.

        The journal's customer data goes with it (:mod:`kit.journal`): event and invite bodies
        and e-mail hashes of every stream idle since ``before`` whose entries all ended.
        """
        ...

    async def forget_customer(self, email_hash: str, *, now: float) -> ForgetResult:
        """Remove every payload of one customer; ``pending``/``in_doubt``/``dead`` become
        ``cancelled``. Entries in ``sending`` are skipped and counted. The journal's customer
        data of every stream that recorded this e-mail hash goes in the same transaction."""
        ...

    # -- fleet-wide holds (429 pacing, credential pause) ---------------------------------

    async def set_hold(self, hold: Hold) -> None:
        """Create or replace the named hold."""
        ...

    async def clear_hold(self, name: str) -> None: ...

    async def holds(self, *, now: float) -> list[Hold]:
        """The holds still in force at ``now``."""
        ...

    # -- the outbox as a whole ------------------------------------------------------------

    async def moved_to(self) -> str | None:
        """Where this outbox was moved (:meth:`set_moved`), or None."""
        ...

    async def set_moved(self, to: str | None) -> None:
        """Record that this outbox now lives at ``to`` (None: it does not, after all).

        Permanent until cleared: from then on ``enqueue`` and ``claim`` raise
        :class:`~kit.errors.OutboxMovedError`, so nothing is accepted or sent here again.
        """
        ...

    # -- reading --------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None: ...

    async def entries(
        self, *, state: State | None = None, limit: int = 100, after_id: int = 0
    ) -> list[Entry]:
        """Entries in insertion order (``id`` ascending) with ``id > after_id``."""
        ...

    async def attempts(self, key: str) -> list[AttemptRecord]: ...

    async def stats(self) -> OutboxStats: ...

    # -- moving an outbox between backends ------------------------------------------------

    def dump(self, *, batch: int = 500) -> AsyncIterator[list[EntryRecord]]:
        """Every entry with its attempt log, in ``id`` order, in batches."""
        ...

    async def load(self, records: Sequence[EntryRecord]) -> int:
        """Insert dumped records as they are (state, attempt, refs, log). Keys already present
        are skipped. Returns how many were inserted."""
        ...


@runtime_checkable
class SupportsListen(Protocol):
    """A backend that can wake flushers in other processes (PostgreSQL LISTEN/NOTIFY).

    A hint only: the flusher always polls as well, so a lost notification costs latency.
    """

    def listen(self) -> AsyncIterator[None]:
        """Yield once per wake-up notification until closed with ``aclose()`` (if it has one)."""
        ...


@runtime_checkable
class SupportsWriterBarrier(Protocol):
    """Backends whose writers do not queue for one lock (PostgreSQL): ``wait_for_writers``
    returns once every write transaction under way when it was called has ended."""

    async def wait_for_writers(self) -> None: ...


@runtime_checkable
class SupportsExternalTransaction(Protocol):
    """A backend that can enqueue inside the caller's own open transaction.

    ``connection`` is the driver connection the caller already uses (``aiosqlite.Connection``
    for SQLite, ``asyncpg.Connection`` for PostgreSQL). Nothing is committed or rolled back
    here: the caller's commit makes the entries visible, its rollback discards them.
    """

    async def enqueue_in(
        self, connection: Any, entries: Sequence[NewEntry], *, now: float
    ) -> list[EnqueueResult]: ...
