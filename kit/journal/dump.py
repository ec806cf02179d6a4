"""The journal's rows as they are stored, read and written in pages: what moving an outbox to
another backend copies beside its entries (:func:`kit.outbox.move.migrate_outbox`).

Rows keep their ids. Ids are the journal's order (a stream's events and decisions read back
by id) and the links between its tables (an event's delivery, a decision's event), so keeping
them keeps both without a map from old ids to new. Customer data is copied as stored: an
erased row (``body`` and ``email_hash`` NULL) stays a skeleton.

A row already in the target under its id is skipped when it is the same row (a move run
again); a different row under that id means the target has a journal of its own, and the
move refuses (:func:`copy_journal`): merging two journals would reorder both.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kit.errors import OutboxError

if TYPE_CHECKING:
    from kit.journal.memory import MemoryJournal
    from kit.outbox.postgres import PostgresStorage
    from kit.outbox.protocol import Storage
    from kit.outbox.sqlite import SQLiteStorage

Row = tuple[Any, ...]


class Table(enum.Enum):
    """The journal's tables, in the order a copy fills them (each row's links already there).

    Values: the stored columns, ``id`` first, as both SQL schemas name them."""

    DELIVERIES = "id, source, delivery_id, event_id, topic, received_at, skip_reason, skip_detail"
    EVENTS = (
        "id, delivery, source, stream, kind, occurred_at, recorded_at, email_hash, body, reference"
    )
    DECISIONS = (
        "id, event, source, stream, kind, key, outcome, decided_at, email_hash, invite_at, body"
    )

    @property
    def width(self) -> int:
        return len(self.value.split(","))


_SQLITE_NAMES = {
    Table.DELIVERIES: "etk_deliveries",
    Table.EVENTS: "etk_journal_events",
    Table.DECISIONS: "etk_journal_decisions",
}
_PG_NAMES = {
    Table.DELIVERIES: "deliveries",
    Table.EVENTS: "journal_events",
    Table.DECISIONS: "journal_decisions",
}


class JournalRows(Protocol):
    """A journal's stored rows, for a move."""

    async def page(self, table: Table, *, after: int, upto: int | None, limit: int) -> list[Row]:
        """Rows of ``table`` with ``after < id <= upto`` (no upper bound when None), by id."""
        ...

    async def load(self, table: Table, rows: Sequence[Row]) -> int:
        """Insert ``rows`` under their ids, skipping ids already present; how many went in."""
        ...


class SQLiteRows:
    def __init__(self, storage: SQLiteStorage) -> None:
        self._storage = storage

    async def page(self, table: Table, *, after: int, upto: int | None, limit: int) -> list[Row]:
        sql = (
            f"SELECT {table.value} FROM {_SQLITE_NAMES[table]}"
            " WHERE id > ? AND (? IS NULL OR id <= ?) ORDER BY id LIMIT ?"
        )
        found = await self._storage.run_transaction(
            "journal.dump", lambda db: db.execute(sql, (after, upto, upto, limit)).fetchall()
        )
        return [tuple(r) for r in found]

    async def load(self, table: Table, rows: Sequence[Row]) -> int:
        # OR IGNORE: a row there under its id is checked by the copy, not overwritten.
        sql = (
            f"INSERT OR IGNORE INTO {_SQLITE_NAMES[table]} ({table.value})"
            f" VALUES ({', '.join('?' * table.width)})"
        )

        def insert(db: Any) -> int:
            return sum(db.execute(sql, row).rowcount for row in rows)

        inserted: int = await self._storage.run_transaction("journal.load", insert)
        return inserted


class PostgresRows:
    def __init__(self, storage: PostgresStorage) -> None:
        self._storage = storage

    def _name(self, table: Table) -> str:
        return f'"{self._storage.schema}".{_PG_NAMES[table]}'

    async def page(self, table: Table, *, after: int, upto: int | None, limit: int) -> list[Row]:
        sql = (
            f"SELECT {table.value} FROM {self._name(table)}"
            " WHERE id > $1 AND ($2::bigint IS NULL OR id <= $2) ORDER BY id LIMIT $3"
        )
        async with self._storage.transaction("journal.dump") as conn:
            return [tuple(r) for r in await conn.fetch(sql, after, upto, limit)]

    async def load(self, table: Table, rows: Sequence[Row]) -> int:
        name = self._name(table)
        values = ", ".join(f"${i}" for i in range(1, table.width + 1))
        # The ids are kept, so the identity column is overridden, and its sequence moved past
        # them for the rows the target journals next.
        insert = (
            f"INSERT INTO {name} ({table.value}) OVERRIDING SYSTEM VALUE VALUES ({values})"
            " ON CONFLICT DO NOTHING RETURNING id"
        )
        advance = (
            f"SELECT setval(pg_get_serial_sequence($1, 'id'), (SELECT max(id) FROM {name}))"
            f" WHERE EXISTS (SELECT 1 FROM {name})"
        )
        inserted = 0
        async with self._storage.transaction("journal.load") as conn:
            for row in rows:
                inserted += await conn.fetchval(insert, *row) is not None
            await conn.execute(advance, name)
        return inserted


class MemoryRows:
    """The in-memory journal's rows; its ids are positions, so a load appends in id order."""

    def __init__(self, journal: MemoryJournal) -> None:
        self._journal = journal

    async def page(self, table: Table, *, after: int, upto: int | None, limit: int) -> list[Row]:
        rows = self._journal.stored(table)
        return [r for r in rows if r[0] > after and (upto is None or r[0] <= upto)][:limit]

    async def load(self, table: Table, rows: Sequence[Row]) -> int:
        return self._journal.restore(table, rows)


def rows_of(storage: Storage) -> JournalRows | None:
    """The journal beside ``storage``, or None when its backend keeps none."""
    from kit.outbox.memory import InMemoryStorage

    if isinstance(storage, InMemoryStorage):
        from kit.journal.memory import MemoryJournal

        known = [c for c in storage.companions if isinstance(c, MemoryJournal)]
        return MemoryRows(known[0] if known else MemoryJournal(storage))
    from kit.outbox.sqlite import SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        return SQLiteRows(storage)
    from kit.outbox.postgres import PostgresStorage

    if isinstance(storage, PostgresStorage):
        return PostgresRows(storage)
    return None


async def refuse_foreign_journal(source: JournalRows, target: JournalRows) -> None:
    """Refuse, before anything is copied, a ``target`` whose journal began apart from
    ``source``'s: its first row of a table is not the row ``source`` has under that id.

    :func:`copy_journal` checks every row it finds in place; this catches the common case
    (a target that took deliveries of its own) before the source is marked as moved. A table
    the source has no rows in is not looked at: nothing of it is copied, so nothing can be
    reordered, and the target's rows there may be ones it journaled after an earlier run.
    """
    for table in Table:
        first = await target.page(table, after=0, upto=None, limit=1)
        if not first or not await source.page(table, after=0, upto=None, limit=1):
            continue
        if await source.page(table, after=first[0][0] - 1, upto=first[0][0], limit=1) != first:
            raise OutboxError(_foreign(table, first[0][0], first[0][0]))


def _foreign(table: Table, first: int, last: int) -> str:
    return (
        f"the target's journal already holds other rows ({table.name.lower()} ids"
        f" {first}..{last}): a journal can only be moved into an outbox whose journal is empty"
    )


async def copy_journal(source: JournalRows, target: JournalRows, *, batch: int) -> int:
    """Copy every journal row of ``source`` into ``target``, page by page; the rows copied.

    Raises :class:`~kit.errors.OutboxError` when ``target`` holds a different row under an id
    of ``source`` (a journal of its own).
    """
    copied = 0
    for table in Table:
        after = 0
        while page := await source.page(table, after=after, upto=None, limit=batch):
            inserted = await target.load(table, page)
            if inserted < len(page):
                there = await target.page(table, after=after, upto=page[-1][0], limit=len(page))
                if set(there) != set(page):
                    raise OutboxError(_foreign(table, page[0][0], page[-1][0]))
            copied += inserted
            after = page[-1][0]
    return copied


__all__ = [
    "JournalRows",
    "MemoryRows",
    "PostgresRows",
    "SQLiteRows",
    "Table",
    "copy_journal",
    "refuse_foreign_journal",
    "rows_of",
]
