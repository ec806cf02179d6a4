"""The journal's contracts: the store every backend offers, and the transaction operations
that :mod:`kit.journal.core` drives inside one database transaction.

A journal shares its database, and its transactions, with one outbox storage: SQLite
(:class:`~kit.journal.sqlite.SQLiteJournal`), PostgreSQL
(:class:`~kit.journal.postgres.PostgresJournal`) or the in-memory test double
(:class:`~kit.journal.memory.MemoryJournal`). Rules every backend keeps (``tests/journal``):

* a delivery is journaled once per ``(source, delivery_id)`` and once per
  ``(source, event_id)`` when the platform gives an event id;
* a stream's events and decisions read back in the order they were journaled;
* a stream is found by its transaction reference, or an outbox key it decided about, also
  after its customer data was erased;
* the waiting keys, the customer's other invites and the decision are read and written in one
  transaction;
* the outbox's ``purge`` and ``forget_customer`` clear the journal's customer data too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from kit.domain import CustomerErasureRequested, DomainEvent, Skip
from kit.journal.core import Plan, Stream
from kit.journal.records import (
    Delivery,
    DeliveryRow,
    IngestResult,
    LatestDecision,
    Outcome,
    StreamHistory,
    StreamTimeline,
)
from kit.outbox.types import ForgetResult, NewEntry
from kit.policy import Decision


@runtime_checkable
class Journal(Protocol):
    """A journal store; every method is one transaction."""

    async def ingest(self, plan: Plan) -> IngestResult:
        """Dedupe, journal, decide and carry out one delivery (see :mod:`kit.journal.core`)."""
        ...

    async def ingest_many(self, plans: Sequence[Plan]) -> list[IngestResult]:
        """:meth:`ingest` for each plan, all in ONE transaction (a file import's batch): one
        commit instead of many, and all of them or none are journaled."""
        ...

    async def append(self, delivery: Delivery, events: Sequence[DomainEvent]) -> bool:
        """Journal ``events`` under ``delivery``; False, writing nothing, if it is known."""
        ...

    async def history(self, source: str, stream: str) -> StreamHistory:
        """The stream's events and decisions in journal order, and its waiting keys."""
        ...

    async def find_streams(self, ref: str, *, source: str | None = None) -> list[Stream]:
        """The ``(source, stream)`` pairs ``ref`` names: an outbox key one of their decisions
        carries, or a transaction reference one of their events carried (also once erased);
        only ``source``'s when given. Sorted, each once."""
        ...

    async def timeline(self, source: str, stream: str) -> StreamTimeline:
        """The stream's deliveries, events and decisions in journal order (for ``explain``);
        empty when the journal holds nothing of it."""
        ...

    async def latest_decisions(self, limit: int) -> list[LatestDecision]:
        """The ``limit`` newest decisions of all streams, newest first (the operator page)."""
        ...

    async def record_decision(
        self, event_seq: int, source: str, stream: str, decision: Decision, outcome: Outcome
    ) -> None: ...

    async def customer_invites(
        self, email_hash: str, *, source: str, stream: str, order: str | None = None
    ) -> list[float]:
        """``send_after`` of every invite enqueued for ``email_hash`` by any other stream and
        not withdrawn since (epoch seconds, earliest first), for the per-customer throttle:
        any of them may be near this one, not only the newest. ``order``, a key prefix
        (``{platform}:{account}:{stream}:``), leaves out that order's own invites that another
        source decided (one renewal reported by two sources is one invite)."""
        ...

    async def erase(self, request: CustomerErasureRequested) -> None:
        """Carry out an erasure request (a customer, or the whole source) on journal and outbox,
        in one transaction; :class:`~kit.errors.ErasureInFlightError`, and nothing erased, while
        one of its entries is being sent."""
        ...


class JournalTx(Protocol):
    """The operations :mod:`kit.journal.core` yields, on a transaction that is already open.

    PostgreSQL offers the same names as coroutines (:class:`kit.journal._pg_tx.PgTx`).
    """

    def record_delivery(
        self, delivery: Delivery, skip: Skip | None, lock: Sequence[Stream]
    ) -> int | None:
        """The delivery's new row id, or None when its delivery or event id is known.

        A new delivery also locks the streams ``lock`` (sorted) until the transaction ends, so
        deliveries of one stream decide one after the other; one step, so that PostgreSQL
        needs one round trip for both.
        """
        ...

    def append_event(self, delivery_row: int, event: DomainEvent) -> int: ...

    def lock_streams(self, streams: Sequence[Stream]) -> None:
        """Serialise with other transactions on these streams (a batch takes all of its
        streams up front)."""
        ...

    def append_and_read(self, delivery_row: int, event: DomainEvent) -> tuple[int, StreamHistory]:
        """:meth:`append_event`, then :meth:`read_stream` of its stream before it (one round
        trip on PostgreSQL)."""
        ...

    def read_stream(self, source: str, stream: str, before: int | None) -> StreamHistory:
        """Events journaled before the event ``before`` (all when None), every decision."""
        ...

    def customer_invites(
        self, email_hash: str, source: str, stream: str, order: str | None
    ) -> list[float]: ...

    def subscription_charges(self, source: str, subscription: str, stream: str) -> list[str]:
        """The stored bodies of ``subscription``'s charges in ``source``'s other streams."""
        ...

    def stream_by_alias(self, source: str, aliases: Sequence[str]) -> str | None:
        """The newest of ``source``'s streams with an event listing one of ``aliases``."""
        ...

    def streams_by_key(self, key: str) -> list[Stream]:
        """Streams with a decision about outbox key ``key``."""
        ...

    def streams_by_reference(self, reference: str, source: str | None) -> list[Stream]:
        """Streams with an event of transaction reference ``reference`` (of ``source``)."""
        ...

    def latest_decisions(self, limit: int) -> list[tuple[Any, ...]]:
        """(source, stream, id, event, kind, key, outcome, decided_at, body), newest first."""
        ...

    def stream_deliveries(self, source: str, stream: str) -> list[DeliveryRow]:
        """The deliveries that carried the stream's events, in journal order."""
        ...

    def insert_entry(self, entry: NewEntry) -> bool: ...

    def cancel_entry(self, key: str) -> bool: ...

    def amend_entry(self, entry: NewEntry) -> bool: ...

    def record_decision(
        self, event_seq: int, source: str, stream: str, decision: Decision, outcome: Outcome
    ) -> None: ...

    def customer_streams(self, email_hash: str) -> list[Stream]: ...

    def source_streams(self, source: str) -> list[Stream]: ...

    def entry_hashes(self, streams: Sequence[Stream]) -> set[str]: ...

    def forget_entries(self, email_hash: str) -> ForgetResult:
        """The outbox's forget rule for the entries of one e-mail hash."""
        ...

    def stream_keys(self, streams: Sequence[Stream]) -> list[str]:
        """The outbox keys the streams' invites were enqueued under."""
        ...

    def forget_keys(self, keys: Sequence[str]) -> ForgetResult:
        """The outbox's forget rule for the entries of ``keys``."""
        ...

    def erase_streams(self, streams: Sequence[Stream]) -> int: ...


__all__ = ["Journal", "JournalTx"]
