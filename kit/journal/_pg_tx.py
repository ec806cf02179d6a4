"""The journal's operations on PostgreSQL: coroutines on one asyncpg connection inside a
transaction the caller holds.

:class:`PgTx` offers the operations :mod:`kit.journal.core` yields (as coroutines);
:func:`purge_journal` and :func:`forget_journal` are what the outbox's own ``purge`` and
``forget_customer`` add. Deliveries of one stream are serialised by a transaction-scoped
advisory lock per stream (taken by :meth:`PgTx.record_delivery`), so under READ COMMITTED the second
reads the first's decisions before it decides. This module imports no storage class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from kit.domain import DomainEvent, Skip
from kit.errors import OutboxMovedError
from kit.journal.core import (
    Stream,
    forget_steps,
    run_async,
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
from kit.outbox._pg_sql import moved_in, not_moved_in
from kit.outbox.types import ForgetResult, NewEntry
from kit.policy import Decision


class JournalSql:
    """The journal's statements for one schema (the outbox's)."""

    def __init__(self, schema: str) -> None:
        s = f'"{schema}"'
        d, je, jd, t = (
            f"{s}.deliveries",
            f"{s}.journal_events",
            f"{s}.journal_decisions",
            f"{s}.entries",
        )
        ja = f"{s}.journal_aliases"
        self.lock_prefix = f"{schema}.journal:"
        self.moved = moved_in(schema)
        # A new delivery's row and its streams' advisory locks (keys in sorted order, taken
        # one after the other as unnest yields them) in one round trip; a known delivery
        # returns no row and locks nothing.
        # A batch's streams, locked before its first delivery (keys in sorted order).
        self.lock_streams = """
            SELECT count(*) FROM (
                SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
                FROM unnest($1::text[]) AS keys (k)) AS locked"""
        # Nor does it once the outbox was moved (not_moved_in): ``moved`` tells the two apart,
        # asked only when no row came back.
        self.record_delivery = f"""
            WITH new AS (
                INSERT INTO {d} (source, delivery_id, event_id, topic, received_at,
                                 skip_reason, skip_detail)
                SELECT $1::text, $2::text, $3::text, $4::text, $5::float8, $6::text, $7::text
                WHERE {not_moved_in(schema)}
                ON CONFLICT DO NOTHING RETURNING id)
            SELECT new.id, (SELECT count(*) FROM (
                SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
                FROM unnest($8::text[]) AS keys (k)) AS locked) AS locks
            FROM new"""
        insert_event = f"""
            INSERT INTO {je} (delivery, source, stream, kind, occurred_at, recorded_at,
                              email_hash, reference, body)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"""
        self.append_event = insert_event
        self.read_stream = _stream_parts(jd, je, t, "$1", "$2", "$3") + " ORDER BY 1, 2"
        # The event's insert and its stream's history before it, in one round trip: part 'n'
        # is the new event's id (the statement's snapshot does not hold the new row; the
        # bound on id says so again).
        self.append_and_read = f"""
            WITH new AS ({insert_event})
            {_stream_parts(jd, je, t, "$2", "$3", "(SELECT id FROM new)")}
            UNION ALL
            SELECT 'n', id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM new
            ORDER BY 1, 2"""
        # explain: the deliveries that carried a stream's events, and the streams a reference
        # or an outbox key names (the reference outlives an erasure; see migration 0004).
        self.stream_deliveries = f"""
            SELECT id AS seq, source, delivery_id, event_id, topic, received_at, skip_reason,
                   skip_detail
            FROM {d} WHERE id IN (SELECT delivery FROM {je} WHERE source = $1 AND stream = $2)
            ORDER BY id"""
        self.streams_by_key = f"SELECT DISTINCT source, stream FROM {jd} WHERE key = $1"
        self.latest_decisions = f"""
            SELECT source, stream, id, event, kind, key, outcome, decided_at, body
            FROM {jd} ORDER BY id DESC LIMIT $1"""
        self.streams_by_reference = f"""
            SELECT DISTINCT source, stream FROM {je}
            WHERE reference = $1 AND ($2::text IS NULL OR source = $2)"""
        self.record_decision = f"""
            INSERT INTO {jd} (event, source, stream, kind, key, outcome, decided_at,
                              email_hash, invite_at, body)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"""
        self.customer_invites = f"""
            SELECT d.invite_at FROM {jd} AS d JOIN {t} AS e ON e.key = d.key
            WHERE d.email_hash = $1 AND d.invite_at IS NOT NULL
              AND NOT (d.source = $2 AND d.stream = $3)
              AND ($4::text IS NULL OR left(d.key, length($4::text)) <> $4::text)
              AND e.state <> 'cancelled'
            ORDER BY d.invite_at"""
        self.subscription_charges = f"""
            SELECT body FROM {je}
            WHERE source = $1 AND kind = 'subscription_renewed' AND stream <> $2
              AND body IS NOT NULL AND body::jsonb ->> 'subscription' = $3"""
        self.stream_by_alias = f"""
            SELECT a.stream FROM {ja} AS a JOIN {je} AS e ON e.id = a.event
            WHERE a.source = $1 AND a.alias = ANY($2::text[]) AND e.body IS NOT NULL
            ORDER BY a.event DESC LIMIT 1"""
        self.customer_streams = f"SELECT DISTINCT source, stream FROM {je} WHERE email_hash = $1"
        self.stream_keys = f"""
            SELECT DISTINCT key FROM {jd}
            WHERE source = $1 AND stream = $2 AND kind = 'enqueue' AND key IS NOT NULL"""
        self.source_streams = f"SELECT DISTINCT source, stream FROM {je} WHERE source = $1"
        self.stream_hashes = f"""
            SELECT DISTINCT e.email_hash FROM {jd} AS d JOIN {t} AS e ON e.key = d.key
            WHERE d.source = $1 AND d.stream = $2 AND d.kind = 'enqueue'
              AND e.email_hash IS NOT NULL"""
        self.purgeable_streams = f"""
            SELECT source, stream FROM {je} AS j GROUP BY source, stream
            HAVING max(recorded_at) < $1 AND bool_or(body IS NOT NULL OR email_hash IS NOT NULL)
               AND NOT EXISTS (
                   SELECT 1 FROM {jd} AS d JOIN {t} AS e ON e.key = d.key
                   WHERE d.source = j.source AND d.stream = j.stream
                     AND e.state IN ('pending', 'sending', 'in_doubt'))"""
        self.erase_events = f"""
            UPDATE {je} SET body = NULL, email_hash = NULL
            WHERE source = $1 AND stream = $2 AND (body IS NOT NULL OR email_hash IS NOT NULL)"""
        self.erase_decisions = f"""
            UPDATE {jd}
            SET body = CASE WHEN kind = 'enqueue' THEN NULL ELSE body END, email_hash = NULL
            WHERE source = $1 AND stream = $2
              AND (email_hash IS NOT NULL OR (kind = 'enqueue' AND body IS NOT NULL))"""


def _stream_parts(jd: str, je: str, t: str, source: str, stream: str, before: str) -> str:
    """A stream's decisions and its events before ``before``, as parts 'd' and 'e' of one
    result. A decision's row says in ``waiting`` whether its key still waits (an enqueue whose
    entry is pending: a Cancel or Amend can still take effect); an event's row carries its
    delivery in ``event`` and its transaction reference in ``key``."""
    return f"""
        SELECT 'd' AS part, d.id, d.event, d.kind, d.key, d.outcome, d.decided_at AS at,
               NULL::float8 AS recorded_at, d.body, e.state = 'pending' AS waiting
        FROM {jd} AS d LEFT JOIN {t} AS e ON d.kind = 'enqueue' AND e.key = d.key
        WHERE d.source = {source} AND d.stream = {stream}
        UNION ALL
        SELECT 'e', id, delivery, kind, reference, NULL, occurred_at, recorded_at, body, NULL
        FROM {je} WHERE source = {source} AND stream = {stream} AND id < {before}"""


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def erase_streams(conn: Any, sql: JournalSql, streams: Sequence[Stream]) -> int:
    """Remove the customer data of ``streams``; how many rows changed."""
    changed = 0
    for source, stream in streams:
        changed += _count(await conn.execute(sql.erase_events, source, stream))
        changed += _count(await conn.execute(sql.erase_decisions, source, stream))
    return changed


async def purge_journal(conn: Any, sql: JournalSql, before: float) -> int:
    """The journal's part of the outbox ``purge``."""
    rows = await conn.fetch(sql.purgeable_streams, before)
    return await erase_streams(conn, sql, [(r[0], r[1]) for r in rows])


async def forget_journal(
    conn: Any, outbox: OutboxOnConnection, sql: JournalSql, email_hash: str, *, now: float
) -> tuple[int, set[str]]:
    """The journal's part of the outbox ``forget_customer`` (:func:`forget_steps`): rows
    changed, and the e-mail hashes whose entries go too."""
    found: tuple[int, set[str]] = await run_async(
        forget_steps(email_hash), PgTx(conn, outbox, sql, now=now)
    )
    return found


class OutboxOnConnection(Protocol):
    """What the journal needs of the PostgreSQL outbox, on the journal's connection."""

    @property
    def url(self) -> str: ...

    async def enqueue_in(
        self, connection: Any, entries: Sequence[NewEntry], *, now: float
    ) -> Any: ...

    async def cancel_on(self, conn: Any, key: str, now: float) -> bool: ...

    async def amend_on(self, conn: Any, entry: NewEntry, now: float) -> bool: ...

    async def forget_on(self, conn: Any, email_hash: str, now: float) -> ForgetResult: ...

    async def forget_keys_on(self, conn: Any, keys: Sequence[str], now: float) -> ForgetResult: ...


def _history(rows: Sequence[Any], source: str, stream: str) -> StreamHistory:
    """A stream's history from the parts of :func:`_stream_parts`."""
    events = tuple(
        EventRow(
            seq=r["id"],
            source=source,
            stream=stream,
            kind=r["kind"],
            occurred_at=r["at"],
            recorded_at=r["recorded_at"],
            event=read_event(r["body"]),
            delivery=r["event"],
            reference=r["key"],
        )
        for r in rows
        if r["part"] == "e"
    )
    read = decision_reader(events)
    decisions = [r for r in rows if r["part"] == "d"]
    return StreamHistory(
        events=events,
        decisions=tuple(
            DecisionRow(
                seq=r["id"],
                event_seq=r["event"],
                kind=r["kind"],
                key=r["key"],
                outcome=Outcome(r["outcome"]),
                decided_at=r["at"],
                decision=read(r["event"], r["body"]),
            )
            for r in decisions
        ),
        waiting=frozenset(r["key"] for r in decisions if r["waiting"]),
    )


class PgTx:
    """The operations of :mod:`kit.journal.core` on one connection, in the caller's transaction."""

    def __init__(
        self, conn: Any, outbox: OutboxOnConnection, sql: JournalSql, *, now: float
    ) -> None:
        self._conn = conn
        self._outbox = outbox
        self._sql = sql
        self._now = now

    async def record_delivery(
        self, delivery: Delivery, skip: Skip | None, lock: Sequence[Stream]
    ) -> int | None:
        """The locks are taken in sorted order, so two deliveries of several streams cannot
        deadlock."""
        prefix = self._sql.lock_prefix
        row_id: int | None = await self._conn.fetchval(
            self._sql.record_delivery,
            delivery.source,
            delivery.identity.delivery_id,
            delivery.identity.event_id,
            delivery.topic,
            delivery.received_at,
            None if skip is None else skip.reason.value,
            None if skip is None else skip.detail,
            [f"{prefix}{source}\x1f{stream}" for source, stream in sorted(lock)],
        )
        if row_id is None:
            moved_to = await self._conn.fetchval(self._sql.moved)
            if moved_to is not None:
                raise OutboxMovedError(self._outbox.url, moved_to)
        return row_id

    async def lock_streams(self, streams: Sequence[Stream]) -> None:
        """Every stream of a batch, in sorted order before its first delivery, so a batch and
        a webhook, or two batches, cannot deadlock; each delivery's own locks are then taken
        again, which the session already holds."""
        prefix = self._sql.lock_prefix
        await self._conn.fetchval(
            self._sql.lock_streams,
            [f"{prefix}{source}\x1f{stream}" for source, stream in sorted(streams)],
        )

    def _event_args(self, delivery_row: int, event: DomainEvent) -> tuple[Any, ...]:
        c = event_columns(event)
        return (
            delivery_row,
            event.source,
            event.stream,
            c.kind,
            c.occurred_at,
            self._now,
            c.email_hash,
            c.reference,
            c.body,
        )

    async def append_event(self, delivery_row: int, event: DomainEvent) -> int:
        seq: int = await self._conn.fetchval(
            self._sql.append_event, *self._event_args(delivery_row, event)
        )
        return seq

    async def append_and_read(
        self, delivery_row: int, event: DomainEvent
    ) -> tuple[int, StreamHistory]:
        rows = await self._conn.fetch(
            self._sql.append_and_read, *self._event_args(delivery_row, event)
        )
        seq: int = next(r["id"] for r in rows if r["part"] == "n")
        return seq, _history(rows, event.source, event.stream)

    async def read_stream(self, source: str, stream: str, before: int | None) -> StreamHistory:
        limit = before if before is not None else 2**63 - 1
        rows = await self._conn.fetch(self._sql.read_stream, source, stream, limit)
        return _history(rows, source, stream)

    async def stream_deliveries(self, source: str, stream: str) -> list[DeliveryRow]:
        rows = await self._conn.fetch(self._sql.stream_deliveries, source, stream)
        return [DeliveryRow(**dict(r)) for r in rows]

    async def latest_decisions(self, limit: int) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._conn.fetch(self._sql.latest_decisions, limit)]

    async def streams_by_key(self, key: str) -> list[Stream]:
        rows = await self._conn.fetch(self._sql.streams_by_key, key)
        return [(r[0], r[1]) for r in rows]

    async def streams_by_reference(self, reference: str, source: str | None) -> list[Stream]:
        rows = await self._conn.fetch(self._sql.streams_by_reference, reference, source)
        return [(r[0], r[1]) for r in rows]

    async def customer_invites(
        self, email_hash: str, source: str, stream: str, order: str | None
    ) -> list[float]:
        rows = await self._conn.fetch(self._sql.customer_invites, email_hash, source, stream, order)
        return [float(row[0]) for row in rows]

    async def stream_by_alias(self, source: str, aliases: Sequence[str]) -> str | None:
        found = await self._conn.fetchval(self._sql.stream_by_alias, source, list(aliases))
        return None if found is None else str(found)

    async def subscription_charges(self, source: str, subscription: str, stream: str) -> list[str]:
        rows = await self._conn.fetch(self._sql.subscription_charges, source, stream, subscription)
        return [str(row[0]) for row in rows]

    async def insert_entry(self, entry: NewEntry) -> bool:
        (result,) = await self._outbox.enqueue_in(self._conn, [entry], now=self._now)
        return not result.duplicate

    async def cancel_entry(self, key: str) -> bool:
        return await self._outbox.cancel_on(self._conn, key, self._now)

    async def amend_entry(self, entry: NewEntry) -> bool:
        return await self._outbox.amend_on(self._conn, entry, self._now)

    async def record_decision(
        self, event_seq: int, source: str, stream: str, decision: Decision, outcome: Outcome
    ) -> None:
        await self._conn.execute(
            self._sql.record_decision,
            *decision_values(event_seq, source, stream, decision, outcome, self._now),
        )

    async def customer_streams(self, email_hash: str) -> list[Stream]:
        rows = await self._conn.fetch(self._sql.customer_streams, email_hash)
        return [(r[0], r[1]) for r in rows]

    async def source_streams(self, source: str) -> list[Stream]:
        rows = await self._conn.fetch(self._sql.source_streams, source)
        return [(r[0], r[1]) for r in rows]

    async def entry_hashes(self, streams: Sequence[Stream]) -> set[str]:
        found: set[str] = set()
        for source, stream in streams:
            rows = await self._conn.fetch(self._sql.stream_hashes, source, stream)
            found.update(r[0] for r in rows)
        return found

    async def forget_entries(self, email_hash: str) -> ForgetResult:
        return await self._outbox.forget_on(self._conn, email_hash, self._now)

    async def stream_keys(self, streams: Sequence[Stream]) -> list[str]:
        found: set[str] = set()
        for source, stream in streams:
            rows = await self._conn.fetch(self._sql.stream_keys, source, stream)
            found.update(r[0] for r in rows)
        return sorted(found)

    async def forget_keys(self, keys: Sequence[str]) -> ForgetResult:
        return await self._outbox.forget_keys_on(self._conn, keys, self._now)

    async def erase_streams(self, streams: Sequence[Stream]) -> int:
        return await erase_streams(self._conn, self._sql, streams)


__all__ = ["JournalSql", "PgTx", "erase_streams", "forget_journal", "purge_journal"]
