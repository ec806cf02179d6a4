"""The journal in plain Python, beside an :class:`~kit.outbox.memory.InMemoryStorage`: a test
double that keeps the journal's contract.

Its operations run without an await, so an ingest is as atomic as the SQL backends' single
transaction, and a step that raises undoes the whole of it, rows and outbox alike. It registers
with the storage as a companion, so the storage's ``purge`` and ``forget_customer`` clear its
customer data as the SQL backends do.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from kit.domain import DomainEvent, Skip
from kit.errors import OutboxError
from kit.journal.core import (
    Stream,
    forget_steps,
    run_sync,
)
from kit.journal.dump import Table
from kit.journal.records import (
    DecisionRow,
    Delivery,
    DeliveryRow,
    EventRow,
    Outcome,
    StreamHistory,
)
from kit.journal.rows import decision_columns, decision_reader, event_columns, read_event
from kit.journal.store import JournalStore, StepsFactory
from kit.outbox.memory import InMemoryStorage
from kit.outbox.types import TERMINAL_STATES, ForgetResult, NewEntry, State
from kit.policy import Decision


@attrs.define
class _Event:
    seq: int
    delivery: int
    source: str
    stream: str
    kind: str
    occurred_at: float
    recorded_at: float
    email_hash: str | None
    reference: str | None
    body: str | None


@attrs.define
class _Decision:
    seq: int
    event_seq: int
    source: str
    stream: str
    kind: str
    key: str | None
    outcome: Outcome
    decided_at: float
    email_hash: str | None
    invite_at: float | None
    body: str | None


@attrs.define
class _Rows:
    deliveries: set[tuple[str, str]] = attrs.Factory(set)
    event_ids: set[tuple[str, str]] = attrs.Factory(set)
    delivery_rows: list[DeliveryRow] = attrs.Factory(list)
    events: list[_Event] = attrs.Factory(list)
    decisions: list[_Decision] = attrs.Factory(list)


class MemoryTx:
    """The operations of :mod:`kit.journal.core` on the rows and the in-memory outbox."""

    def __init__(self, rows: _Rows, storage: InMemoryStorage, *, now: float) -> None:
        self._rows = rows
        self._storage = storage
        self._now = now

    def record_delivery(
        self, delivery: Delivery, skip: Skip | None, lock: Sequence[Stream]
    ) -> int | None:
        """No lock to take: no await happens inside a transaction. Raises
        :class:`~kit.errors.OutboxMovedError` once the outbox was moved."""
        self._storage.refuse_if_moved()
        rows, ident = self._rows, delivery.identity
        by_delivery = (delivery.source, ident.delivery_id)
        by_event = None if ident.event_id is None else (delivery.source, ident.event_id)
        if by_delivery in rows.deliveries or (by_event is not None and by_event in rows.event_ids):
            return None
        rows.deliveries.add(by_delivery)
        if by_event is not None:
            rows.event_ids.add(by_event)
        seq = len(rows.delivery_rows) + 1
        rows.delivery_rows.append(
            DeliveryRow(
                seq=seq,
                source=delivery.source,
                delivery_id=ident.delivery_id,
                event_id=ident.event_id,
                topic=delivery.topic,
                received_at=delivery.received_at,
                skip_reason=None if skip is None else skip.reason.value,
                skip_detail=None if skip is None else skip.detail,
            )
        )
        return seq

    def append_event(self, delivery_row: int, event: DomainEvent) -> int:
        c = event_columns(event)
        seq = len(self._rows.events) + 1
        self._rows.events.append(
            _Event(
                seq,
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
        )
        return seq

    def lock_streams(self, streams: Sequence[Stream]) -> None:
        """Nothing to do: no await happens inside a transaction."""

    def append_and_read(self, delivery_row: int, event: DomainEvent) -> tuple[int, StreamHistory]:
        seq = self.append_event(delivery_row, event)
        return seq, self.read_stream(event.source, event.stream, seq)

    def read_stream(self, source: str, stream: str, before: int | None) -> StreamHistory:
        rows = self._rows
        events = [
            e
            for e in rows.events
            if (e.source, e.stream) == (source, stream) and (before is None or e.seq < before)
        ]
        decisions = [d for d in rows.decisions if (d.source, d.stream) == (source, stream)]
        waiting = set()
        for d in decisions:
            entry = self._storage.get_now(d.key or "")
            if d.kind == "enqueue" and entry is not None and entry.state is State.PENDING:
                waiting.add(entry.key)
        rows_read = tuple(
            EventRow(
                seq=e.seq,
                source=e.source,
                stream=e.stream,
                kind=e.kind,
                occurred_at=e.occurred_at,
                recorded_at=e.recorded_at,
                event=read_event(e.body),
                delivery=e.delivery,
                reference=e.reference,
            )
            for e in events
        )
        read = decision_reader(rows_read)
        return StreamHistory(
            events=rows_read,
            decisions=tuple(
                DecisionRow(
                    seq=d.seq,
                    event_seq=d.event_seq,
                    kind=d.kind,
                    key=d.key,
                    outcome=d.outcome,
                    decided_at=d.decided_at,
                    decision=read(d.event_seq, d.body),
                )
                for d in decisions
            ),
            waiting=frozenset(waiting),
        )

    def stream_deliveries(self, source: str, stream: str) -> list[DeliveryRow]:
        carried = {
            e.delivery for e in self._rows.events if (e.source, e.stream) == (source, stream)
        }
        return [d for d in self._rows.delivery_rows if d.seq in carried]

    def latest_decisions(self, limit: int) -> list[tuple[Any, ...]]:
        newest = self._rows.decisions[::-1][:limit]
        return [
            (d.source, d.stream, d.seq, d.event_seq, d.kind, d.key, d.outcome.value,
             d.decided_at, d.body)
            for d in newest
        ]  # fmt: skip

    def streams_by_key(self, key: str) -> list[Stream]:
        return sorted({(d.source, d.stream) for d in self._rows.decisions if d.key == key})

    def streams_by_reference(self, reference: str, source: str | None) -> list[Stream]:
        return sorted(
            {
                (e.source, e.stream)
                for e in self._rows.events
                if e.reference == reference and source in (None, e.source)
            }
        )

    def customer_invites(
        self, email_hash: str, source: str, stream: str, order: str | None
    ) -> list[float]:
        found = [
            d.invite_at
            for d in self._rows.decisions
            if d.email_hash == email_hash
            and d.invite_at is not None
            and (d.source, d.stream) != (source, stream)
            and not (order is not None and (d.key or "").startswith(order))
            and _entry_state(self._storage, d.key) not in (None, State.CANCELLED)
        ]
        return sorted(found)

    def stream_by_alias(self, source: str, aliases: Sequence[str]) -> str | None:
        wanted = set(aliases)
        for e in reversed(self._rows.events):
            body = json.loads(e.body) if e.source == source and e.body is not None else {}
            if wanted & set(body.get("aliases") or ()):
                return e.stream
        return None

    def subscription_charges(self, source: str, subscription: str, stream: str) -> list[str]:
        return [
            e.body
            for e in self._rows.events
            if e.source == source
            and e.stream != stream
            and e.kind == "subscription_renewed"
            and e.body is not None
            and json.loads(e.body).get("subscription") == subscription
        ]

    def insert_entry(self, entry: NewEntry) -> bool:
        return self._storage.insert_now(entry, self._now)

    def cancel_entry(self, key: str) -> bool:
        return self._storage.cancel_now(key, self._now)

    def amend_entry(self, entry: NewEntry) -> bool:
        return self._storage.amend_now(entry, self._now)

    def record_decision(
        self, event_seq: int, source: str, stream: str, decision: Decision, outcome: Outcome
    ) -> None:
        c = decision_columns(decision, outcome)
        self._rows.decisions.append(
            _Decision(
                seq=len(self._rows.decisions) + 1,
                event_seq=event_seq,
                source=source,
                stream=stream,
                kind=c.kind,
                key=c.key,
                outcome=outcome,
                decided_at=self._now,
                email_hash=c.email_hash,
                invite_at=c.invite_at,
                body=c.body,
            )
        )

    def customer_streams(self, email_hash: str) -> list[Stream]:
        return sorted(
            {(e.source, e.stream) for e in self._rows.events if e.email_hash == email_hash}
        )

    def source_streams(self, source: str) -> list[Stream]:
        return sorted({(e.source, e.stream) for e in self._rows.events if e.source == source})

    def entry_hashes(self, streams: Sequence[Stream]) -> set[str]:
        wanted = set(streams)
        found: set[str] = set()
        for d in self._rows.decisions:
            if d.kind != "enqueue" or (d.source, d.stream) not in wanted:
                continue
            entry = self._storage.get_now(d.key or "")
            if entry is not None and entry.email_hash is not None:
                found.add(entry.email_hash)
        return found

    def forget_entries(self, email_hash: str) -> ForgetResult:
        return self._storage.forget_now(email_hash, self._now)

    def stream_keys(self, streams: Sequence[Stream]) -> list[str]:
        wanted = set(streams)
        return sorted(
            {
                d.key
                for d in self._rows.decisions
                if d.kind == "enqueue" and d.key and (d.source, d.stream) in wanted
            }
        )

    def forget_keys(self, keys: Sequence[str]) -> ForgetResult:
        return self._storage.forget_keys_now(keys, self._now)

    def erase_streams(self, streams: Sequence[Stream]) -> int:
        wanted = set(streams)
        changed = 0
        for e in self._rows.events:
            if (e.source, e.stream) in wanted and (e.body or e.email_hash):
                e.body = e.email_hash = None
                changed += 1
        for d in self._rows.decisions:
            if (d.source, d.stream) in wanted and (
                d.email_hash or (d.kind == "enqueue" and d.body)
            ):
                d.email_hash = None
                if d.kind == "enqueue":
                    d.body = None
                changed += 1
        return changed


class MemoryJournal(JournalStore):
    """The journal of one :class:`InMemoryStorage` (one journal per storage)."""

    def __init__(self, storage: InMemoryStorage, *, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._rows = _Rows()
        self._clock = clock
        storage.companions.append(self)

    async def _run(self, operation: str, steps: StepsFactory) -> Any:
        rows, restore = copy.deepcopy(self._rows), self._storage.savepoint()
        try:
            return run_sync(steps(), MemoryTx(self._rows, self._storage, now=self._clock()))
        except BaseException:
            self._rows = rows
            restore()
            raise

    # -- a move to another backend (kit.journal.dump) -------------------------------------------

    def stored(self, table: Table) -> list[tuple[Any, ...]]:
        """``table``'s rows as the SQL backends store them (:class:`~kit.journal.dump.Table`)."""
        rows = self._rows
        if table is Table.DELIVERIES:
            return [
                (d.seq, d.source, d.delivery_id, d.event_id, d.topic, d.received_at,
                 d.skip_reason, d.skip_detail)
                for d in rows.delivery_rows
            ]  # fmt: skip
        if table is Table.EVENTS:
            return [
                (e.seq, e.delivery, e.source, e.stream, e.kind, e.occurred_at, e.recorded_at,
                 e.email_hash, e.body, e.reference)
                for e in rows.events
            ]  # fmt: skip
        return [
            (d.seq, d.event_seq, d.source, d.stream, d.kind, d.key, d.outcome.value,
             d.decided_at, d.email_hash, d.invite_at, d.body)
            for d in rows.decisions
        ]  # fmt: skip

    def restore(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> int:
        """Append the rows of :meth:`stored`'s shape that are new; how many. Ids are positions
        here, so a row must come right after the last one."""
        added = 0
        for row in rows:
            present = len(self._table(table))
            if row[0] <= present:
                continue
            if row[0] != present + 1:
                raise OutboxError(f"journal row {row[0]} would leave a gap after {present}")
            self._append(table, row)
            added += 1
        return added

    def _table(self, table: Table) -> list[Any]:
        rows = self._rows
        if table is Table.DELIVERIES:
            return rows.delivery_rows
        return rows.events if table is Table.EVENTS else rows.decisions

    def _append(self, table: Table, row: tuple[Any, ...]) -> None:
        rows = self._rows
        if table is Table.DELIVERIES:
            delivery = DeliveryRow(
                seq=row[0],
                source=row[1],
                delivery_id=row[2],
                event_id=row[3],
                topic=row[4],
                received_at=row[5],
                skip_reason=row[6],
                skip_detail=row[7],
            )
            rows.delivery_rows.append(delivery)
            rows.deliveries.add((delivery.source, delivery.delivery_id))
            if delivery.event_id is not None:
                rows.event_ids.add((delivery.source, delivery.event_id))
        elif table is Table.EVENTS:
            seq, delivery_row, source, stream, kind, occurred, recorded, email, body, ref = row
            rows.events.append(
                _Event(
                    seq, delivery_row, source, stream, kind, occurred, recorded, email, ref, body
                )
            )
        else:
            seq, event_seq, source, stream, kind, key, outcome, decided, email, invite, body = row
            rows.decisions.append(
                _Decision(
                    seq, event_seq, source, stream, kind, key, Outcome(outcome), decided, email,
                    invite, body,
                )
            )  # fmt: skip

    # -- the storage's companion: purge and forget ------------------------------------------

    def purge_now(self, *, before: float) -> None:
        tx = MemoryTx(self._rows, self._storage, now=self._clock())
        latest: dict[Stream, float] = {}
        for e in self._rows.events:
            stream = (e.source, e.stream)
            latest[stream] = max(latest.get(stream, e.recorded_at), e.recorded_at)
        active = {
            (d.source, d.stream)
            for d in self._rows.decisions
            if d.kind == "enqueue"
            and _entry_state(self._storage, d.key) not in (None, *TERMINAL_STATES)
        }
        tx.erase_streams([s for s, at in latest.items() if at < before and s not in active])

    def forget_now(self, email_hash: str) -> set[str]:
        tx = MemoryTx(self._rows, self._storage, now=self._clock())
        _, hashes = run_sync(forget_steps(email_hash), tx)
        return set(hashes)


def _entry_state(storage: InMemoryStorage, key: str | None) -> State | None:
    entry = storage.get_now(key or "")
    return None if entry is None else entry.state


__all__ = ["MemoryJournal", "MemoryTx"]
