"""The journal's operations on SQLite: plain functions of the ``sqlite3`` connection, run on
the outbox storage's worker thread inside a transaction the caller holds.

:class:`SQLiteTx` offers the operations :mod:`kit.journal.core` yields; :func:`purge_journal`
and :func:`forget_journal` are what the outbox's own ``purge`` and ``forget_customer`` add, so
the journal's customer data goes with the outbox's. This module imports no storage class, so
the storage can import it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from kit.domain import DomainEvent, Skip
from kit.journal.core import (
    Stream,
    forget_steps,
    run_sync,
)
from kit.journal.records import (
    DecisionRow,
    Delivery,
    DeliveryRow,
    EventRow,
    Outcome,
    StreamHistory,
)
from kit.journal.rows import decision_reader, decision_values, event_columns, read_event
from kit.outbox import _sqlite_sql as outbox_sql
from kit.outbox._sqlite_batch import amend_one, cancel_one, insert_now, refuse_if_moved_now
from kit.outbox.types import ForgetResult, NewEntry
from kit.policy import Decision

# Nothing is inserted for a known delivery, nor once the outbox was moved (NOT_MOVED):
# record_delivery tells the two apart by MOVED, only when nothing was inserted.
RECORD_DELIVERY = f"""
INSERT INTO etk_deliveries (source, delivery_id, event_id, topic, received_at, skip_reason,
                            skip_detail)
SELECT ?, ?, ?, ?, ?, ?, ?
WHERE {outbox_sql.NOT_MOVED}
ON CONFLICT DO NOTHING"""
APPEND_EVENT = """
INSERT INTO etk_journal_events (delivery, source, stream, kind, occurred_at, recorded_at,
                                email_hash, reference, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""
# A stream's decisions and its events before an id, as parts 'd' and 'e' of one statement. A
# decision's row says in ``waiting`` whether its key still waits (an enqueue whose entry is
# pending: a Cancel or Amend can still take effect); an event's row carries its delivery in
# ``event`` and its reference in ``key``. Unordered: the caller sorts the few rows by id, which
# spares SQLite a temporary B-tree per part.
READ_STREAM = """
SELECT 'd' AS part, d.id, d.event, d.kind, d.key, d.outcome, d.decided_at,
       e.state = 'pending' AS waiting, d.body
FROM etk_journal_decisions AS d LEFT JOIN etk_entries AS e ON d.kind = 'enqueue' AND e.key = d.key
WHERE d.source = :source AND d.stream = :stream
UNION ALL
SELECT 'e', id, delivery, kind, reference, NULL, occurred_at, recorded_at, body
FROM etk_journal_events WHERE source = :source AND stream = :stream AND id < :before"""
# explain: the deliveries that carried a stream's events, and the streams a reference or a key
# names (the reference outlives an erasure; see migration 0004).
STREAM_DELIVERIES = """
SELECT id, source, delivery_id, event_id, topic, received_at, skip_reason, skip_detail
FROM etk_deliveries WHERE id IN (
    SELECT delivery FROM etk_journal_events WHERE source = ? AND stream = ?)
ORDER BY id"""
STREAMS_BY_KEY = "SELECT DISTINCT source, stream FROM etk_journal_decisions WHERE key = ?"
LATEST_DECISIONS = """
SELECT source, stream, id, event, kind, key, outcome, decided_at, body
FROM etk_journal_decisions ORDER BY id DESC LIMIT ?"""
STREAMS_BY_REFERENCE = """
SELECT DISTINCT source, stream FROM etk_journal_events
WHERE reference = ? AND (? IS NULL OR source = ?)"""
RECORD_DECISION = """
INSERT INTO etk_journal_decisions (event, source, stream, kind, key, outcome, decided_at,
                                   email_hash, invite_at, body)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
# Every invite to an e-mail from another stream that was not withdrawn; an invite whose key
# names the same order (its prefix) is this order's own, whichever source decided it.
CUSTOMER_INVITES = """
SELECT d.invite_at FROM etk_journal_decisions AS d JOIN etk_entries AS e ON e.key = d.key
WHERE d.email_hash = ? AND d.invite_at IS NOT NULL AND NOT (d.source = ? AND d.stream = ?)
  AND (? IS NULL OR substr(d.key, 1, length(?)) <> ?)
  AND e.state <> 'cancelled'
ORDER BY d.invite_at"""
# A subscription's charges live in their own streams; the renewal policy reads them by the
# subscription id in the stored event (a scan of one source's renewals: they are few per shop).
SUBSCRIPTION_CHARGES = """
SELECT body FROM etk_journal_events
WHERE source = ? AND kind = 'subscription_renewed' AND stream <> ? AND body IS NOT NULL
  AND json_extract(body, '$.subscription') = ?"""
# An event that names its stream by a payment id finds the stream whose event recorded it (a
# scan of one source's events; only such events, which are rare, ask).
# The newest stream whose (not erased) events recorded one of the ids (migration 0007).
STREAM_BY_ALIAS = """
SELECT a.stream FROM etk_journal_aliases AS a JOIN etk_journal_events AS e ON e.id = a.event
WHERE a.source = ? AND a.alias IN (SELECT value FROM json_each(?)) AND e.body IS NOT NULL
ORDER BY a.event DESC LIMIT 1"""
CUSTOMER_STREAMS = "SELECT DISTINCT source, stream FROM etk_journal_events WHERE email_hash = ?"
STREAM_KEYS = """
SELECT DISTINCT key FROM etk_journal_decisions
WHERE source = ? AND stream = ? AND kind = 'enqueue' AND key IS NOT NULL"""
SOURCE_STREAMS = "SELECT DISTINCT source, stream FROM etk_journal_events WHERE source = ?"
STREAM_KEYS_HASHES = """
SELECT DISTINCT e.email_hash FROM etk_journal_decisions AS d JOIN etk_entries AS e ON e.key = d.key
WHERE d.source = ? AND d.stream = ? AND d.kind = 'enqueue' AND e.email_hash IS NOT NULL"""
# Streams idle since ``before`` that still hold customer data and whose entries all ended.
PURGEABLE_STREAMS = """
SELECT source, stream FROM etk_journal_events AS j GROUP BY source, stream
HAVING max(recorded_at) < ? AND max(body IS NOT NULL OR email_hash IS NOT NULL) = 1
   AND NOT EXISTS (
       SELECT 1 FROM etk_journal_decisions AS d JOIN etk_entries AS e ON e.key = d.key
       WHERE d.source = j.source AND d.stream = j.stream
         AND e.state IN ('pending', 'sending', 'in_doubt'))"""
# Erasing a stream: every event's body and hash, and the invites' bodies (the only decisions
# that carry customer data); the rows, kinds, keys and outcomes stay for explain.
ERASE_EVENTS = """
UPDATE etk_journal_events SET body = NULL, email_hash = NULL
WHERE source = ? AND stream = ? AND (body IS NOT NULL OR email_hash IS NOT NULL)"""
ERASE_DECISIONS = """
UPDATE etk_journal_decisions
SET body = CASE WHEN kind = 'enqueue' THEN NULL ELSE body END, email_hash = NULL
WHERE source = ? AND stream = ? AND (email_hash IS NOT NULL OR (kind = 'enqueue'
                                                                AND body IS NOT NULL))"""


def erase_streams(db: sqlite3.Connection, streams: Sequence[Stream]) -> int:
    """Remove the customer data of ``streams``; how many rows changed."""
    changed = 0
    for stream in streams:
        changed += db.execute(ERASE_EVENTS, stream).rowcount
        changed += db.execute(ERASE_DECISIONS, stream).rowcount
    return changed


def purge_journal(db: sqlite3.Connection, before: float) -> int:
    """The journal's part of the outbox ``purge``."""
    streams = [(r[0], r[1]) for r in db.execute(PURGEABLE_STREAMS, (before,))]
    return erase_streams(db, streams)


def forget_journal(
    db: sqlite3.Connection, email_hash: str, *, now: float, where: str
) -> tuple[int, set[str]]:
    """The journal's part of the outbox ``forget_customer`` (:func:`forget_steps`): rows
    changed, and the e-mail hashes whose entries go too."""
    found: tuple[int, set[str]] = run_sync(
        forget_steps(email_hash), SQLiteTx(db, now=now, where=where)
    )
    return found


def forget_entries(db: sqlite3.Connection, email_hash: str, now: float) -> ForgetResult:
    """The outbox's forget rule for one e-mail hash; entries being sent are left alone and
    counted."""
    return _forget(db, outbox_sql.FORGET_BY_HASH, email_hash, now)


def _forget(
    db: sqlite3.Connection, statements: outbox_sql.ForgetSql, which: str, now: float
) -> ForgetResult:
    sending = int(db.execute(statements.in_flight, (which,)).fetchone()[0])
    purged = db.execute(statements.cancel, (now, which)).rowcount
    purged += db.execute(statements.scrub, (which,)).rowcount
    return ForgetResult(purged=purged, skipped_in_flight=sending)


def customer_streams(db: sqlite3.Connection, email_hash: str) -> list[Stream]:
    """Every stream that journaled an event with this e-mail hash."""
    return [(r[0], r[1]) for r in db.execute(CUSTOMER_STREAMS, (email_hash,))]


DELIVERY_FIELDS = (
    "seq",
    "source",
    "delivery_id",
    "event_id",
    "topic",
    "received_at",
    "skip_reason",
    "skip_detail",
)


class SQLiteTx:
    """The operations of :mod:`kit.journal.core` on one connection, in the caller's transaction."""

    def __init__(self, db: sqlite3.Connection, *, now: float, where: str) -> None:
        self._db = db
        self._now = now
        self._where = where  # the outbox's URL, for OutboxMovedError

    def record_delivery(
        self, delivery: Delivery, skip: Skip | None, lock: Sequence[Stream]
    ) -> int | None:
        """No lock to take: the transaction holds SQLite's one write lock. Raises
        :class:`~kit.errors.OutboxMovedError` once the outbox was moved."""
        cursor = self._db.execute(
            RECORD_DELIVERY,
            (
                delivery.source,
                delivery.identity.delivery_id,
                delivery.identity.event_id,
                delivery.topic,
                delivery.received_at,
                None if skip is None else skip.reason.value,
                None if skip is None else skip.detail,
            ),
        )
        if cursor.rowcount == 1:
            return cursor.lastrowid
        refuse_if_moved_now(self._db, self._where)
        return None

    def append_event(self, delivery_row: int, event: DomainEvent) -> int:
        c = event_columns(event)
        cursor = self._db.execute(
            APPEND_EVENT,
            (
                delivery_row,
                event.source,
                event.stream,
                c.kind,
                c.occurred_at,
                self._now,
                c.email_hash,
                c.reference,
                c.body,
            ),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    def lock_streams(self, streams: Sequence[Stream]) -> None:
        """Nothing to do: the transaction holds SQLite's one write lock."""

    def append_and_read(self, delivery_row: int, event: DomainEvent) -> tuple[int, StreamHistory]:
        seq = self.append_event(delivery_row, event)
        return seq, self.read_stream(event.source, event.stream, seq)

    def read_stream(self, source: str, stream: str, before: int | None) -> StreamHistory:
        limit = before if before is not None else 2**63 - 1
        params = {"source": source, "stream": stream, "before": limit}
        rows = sorted(self._db.execute(READ_STREAM, params).fetchall(), key=itemgetter(1))
        events = tuple(
            EventRow(
                seq=r[1],
                source=source,
                stream=stream,
                kind=r[3],
                occurred_at=r[6],
                recorded_at=r[7],
                event=read_event(r[8]),
                delivery=r[2],
                reference=r[4],
            )
            for r in rows
            if r[0] == "e"
        )
        read = decision_reader(events)
        decisions = [r for r in rows if r[0] == "d"]
        return StreamHistory(
            events=events,
            decisions=tuple(
                DecisionRow(
                    seq=r[1],
                    event_seq=r[2],
                    kind=r[3],
                    key=r[4],
                    outcome=Outcome(r[5]),
                    decided_at=r[6],
                    decision=read(r[2], r[8]),
                )
                for r in decisions
            ),
            waiting=frozenset(r[4] for r in decisions if r[7]),
        )

    def stream_deliveries(self, source: str, stream: str) -> list[DeliveryRow]:
        rows = self._db.execute(STREAM_DELIVERIES, (source, stream))
        return [DeliveryRow(**dict(zip(DELIVERY_FIELDS, r, strict=True))) for r in rows]

    def latest_decisions(self, limit: int) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._db.execute(LATEST_DECISIONS, (limit,))]

    def streams_by_key(self, key: str) -> list[Stream]:
        return [(r[0], r[1]) for r in self._db.execute(STREAMS_BY_KEY, (key,))]

    def streams_by_reference(self, reference: str, source: str | None) -> list[Stream]:
        rows = self._db.execute(STREAMS_BY_REFERENCE, (reference, source, source))
        return [(r[0], r[1]) for r in rows]

    def customer_invites(
        self, email_hash: str, source: str, stream: str, order: str | None
    ) -> list[float]:
        rows = self._db.execute(
            CUSTOMER_INVITES, (email_hash, source, stream, order, order, order)
        ).fetchall()
        return [float(row[0]) for row in rows]

    def stream_by_alias(self, source: str, aliases: Sequence[str]) -> str | None:
        row = self._db.execute(STREAM_BY_ALIAS, (source, json.dumps(list(aliases)))).fetchone()
        return None if row is None else str(row[0])

    def subscription_charges(self, source: str, subscription: str, stream: str) -> list[str]:
        rows = self._db.execute(SUBSCRIPTION_CHARGES, (source, stream, subscription)).fetchall()
        return [str(row[0]) for row in rows]

    def insert_entry(self, entry: NewEntry) -> bool:
        return insert_now(self._db, entry, self._now, where=self._where)

    def cancel_entry(self, key: str) -> bool:
        return cancel_one(self._db, key, self._now, where=self._where)

    def amend_entry(self, entry: NewEntry) -> bool:
        return amend_one(self._db, entry, self._now, where=self._where)

    def record_decision(
        self, event_seq: int, source: str, stream: str, decision: Decision, outcome: Outcome
    ) -> None:
        self._db.execute(
            RECORD_DECISION,
            decision_values(event_seq, source, stream, decision, outcome, self._now),
        )

    def customer_streams(self, email_hash: str) -> list[Stream]:
        return customer_streams(self._db, email_hash)

    def source_streams(self, source: str) -> list[Stream]:
        return [(r[0], r[1]) for r in self._db.execute(SOURCE_STREAMS, (source,))]

    def entry_hashes(self, streams: Sequence[Stream]) -> set[str]:
        found: set[str] = set()
        for stream in streams:
            found.update(r[0] for r in self._db.execute(STREAM_KEYS_HASHES, stream))
        return found

    def forget_entries(self, email_hash: str) -> ForgetResult:
        return forget_entries(self._db, email_hash, self._now)

    def stream_keys(self, streams: Sequence[Stream]) -> list[str]:
        found = {r[0] for stream in streams for r in self._db.execute(STREAM_KEYS, stream)}
        return sorted(found)

    def forget_keys(self, keys: Sequence[str]) -> ForgetResult:
        """The outbox's forget rule for the entries of ``keys``."""
        if not keys:
            return ForgetResult(purged=0, skipped_in_flight=0)
        return _forget(self._db, outbox_sql.FORGET_BY_KEYS, json.dumps(list(keys)), self._now)

    def erase_streams(self, streams: Sequence[Stream]) -> int:
        return erase_streams(self._db, streams)


__all__ = ["SQLiteTx", "erase_streams", "forget_entries", "forget_journal", "purge_journal"]
