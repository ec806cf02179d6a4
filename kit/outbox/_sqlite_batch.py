"""The SQLite outbox's batched writes, on a connection inside a transaction the caller holds."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import aiosqlite

from kit.errors import OutboxError, OutboxMovedError
from kit.outbox import _sqlite_sql as sql
from kit.outbox._sqlite_sql import attempt_params
from kit.outbox._sqlite_worker import Worker
from kit.outbox.types import Completion, EnqueueResult, EntryRecord, NewEntry

# The storage's own worker, or a caller's aiosqlite connection (enqueue_in): the same calls.
Connection = aiosqlite.Connection | Worker


async def insert_one(conn: Connection, new: NewEntry, now: float, *, where: str) -> bool:
    """One entry in one statement; False: its key was known. The row count tells, not
    RETURNING, which would cost SQLite a temporary table per row (about 10% of this insert)."""
    cursor = await conn.execute(sql.INSERT_NEW_OR_SKIP, sql.new_entry_params(new, now))
    if cursor.rowcount == 1:
        return True
    await refuse_if_moved(conn, where)
    return False


async def refuse_if_moved(conn: Connection, where: str) -> None:
    """Nothing inserted may mean duplicates, or an outbox that migrate-outbox moved away."""
    moved = list(await conn.execute_fetchall(sql.MOVED))
    if moved:
        raise OutboxMovedError(where, moved[0][0])


async def insert_entries(
    conn: Connection, entries: Sequence[NewEntry], now: float, *, where: str
) -> list[EnqueueResult]:
    """The INSERTs of ``enqueue``, on a connection whose transaction the caller controls.

    Known keys are skipped by the INSERT itself (``ON CONFLICT DO NOTHING``), which already
    probes the key index, instead of a separate lookup of every key first. When the row count
    says some were skipped, the ids above the largest one seen before tell which keys are new.
    """
    first = entries[0]
    inserted: set[str]
    if all(new.key == first.key for new in entries):
        inserted = {first.key} if await insert_one(conn, first, now, where=where) else set()
    else:
        rows: dict[str, tuple[Any, ...]] = {}
        for new in entries:
            if new.key not in rows:
                rows[new.key] = sql.new_entry_params(new, now)
        ((before,),) = await conn.execute_fetchall(sql.MAX_ID)
        cursor = await conn.executemany(sql.INSERT_NEW_OR_SKIP, rows.values())
        if cursor.rowcount == len(rows):
            inserted = set(rows)
        else:
            await refuse_if_moved(conn, where)
            found = await conn.execute_fetchall(sql.KEYS_ABOVE, (before,))
            # Only a caller's implicit transaction (its BEGIN comes with the INSERT) lets
            # another writer add rows in between: theirs are ignored unless one holds a key of
            # ours, and then the count cannot add up, so this refuses instead of guessing.
            inserted = {r[0] for r in found} & rows.keys()
            if len(inserted) != cursor.rowcount:
                raise OutboxError(
                    "enqueue could not tell which keys it inserted: the outbox ids did not grow"
                    " as expected"
                )
    results: list[EnqueueResult] = []
    for new in entries:
        results.append(EnqueueResult(new.key, duplicate=new.key not in inserted))
        inserted.discard(new.key)  # later copies inside the batch are duplicates
    return results


def cancel_one(db: sqlite3.Connection, key: str, now: float, *, where: str) -> bool:
    """The work of ``cancel`` on the worker thread, inside the caller's transaction."""
    if db.execute(sql.CANCEL, (now, key)).rowcount == 1:
        return True
    refuse_if_moved_now(db, where)
    if db.execute(sql.STATE_OF, (key,)).fetchone() is None:
        raise OutboxError(f"unknown outbox key {key!r}")
    return False


def amend_one(db: sqlite3.Connection, new: NewEntry, now: float, *, where: str) -> bool:
    """The work of ``amend`` on the worker thread, inside the caller's transaction."""
    if db.execute(sql.AMEND, sql.amend_params(new, now)).rowcount == 1:
        return True
    refuse_if_moved_now(db, where)
    if db.execute(sql.STATE_OF, (new.key,)).fetchone() is None:
        raise OutboxError(f"unknown outbox key {new.key!r}")
    return False


def insert_now(db: sqlite3.Connection, new: NewEntry, now: float, *, where: str) -> bool:
    """:func:`insert_one` on the worker thread, inside the caller's transaction."""
    if db.execute(sql.INSERT_NEW_OR_SKIP, sql.new_entry_params(new, now)).rowcount == 1:
        return True
    refuse_if_moved_now(db, where)
    return False


def refuse_if_moved_now(db: sqlite3.Connection, where: str) -> None:
    """:func:`refuse_if_moved` on the worker thread: a write that changed nothing may have met
    an outbox that migrate-outbox moved away (NOT_MOVED), or a claim may be about to."""
    moved = db.execute(sql.MOVED).fetchone()
    if moved is not None:
        raise OutboxMovedError(where, moved[0])


def finish_entries(
    db: sqlite3.Connection, completions: Sequence[Completion], now: float
) -> list[bool]:
    """The work of ``finish``: each completion applied in order, as the in-memory outbox does.

    A plain function of the ``sqlite3`` connection, run on the storage's worker thread inside a
    transaction the caller holds (see :mod:`kit.outbox._sqlite_group`). A completion without
    the entry's id (not from a claim of this outbox) has it looked up by key first.
    """
    applied: list[bool] = []
    log: list[tuple[Any, ...]] = []
    cursor = db.cursor()  # one for the batch: Connection.execute makes a cursor per call
    for completion in completions:
        entry_id = completion.entry_id
        if entry_id is None:
            row = cursor.execute(sql.ID_OF, (completion.key,)).fetchone()
            if row is None:
                applied.append(False)
                continue
            entry_id = row[0]
        params = sql.finish_one_params(completion, entry_id, now)
        done = cursor.execute(sql.FINISH_ONE, params).rowcount == 1
        applied.append(done)
        if done and completion.record is not None:
            log.append(attempt_params(entry_id, completion.record))
    if log:
        db.executemany(sql.INSERT_ATTEMPT, log)
    return applied


async def load_records(conn: Connection, unique: dict[str, EntryRecord]) -> int:
    """The work of ``load`` for records with unique keys: the new ones and their attempt logs."""
    found = await conn.execute_fetchall(sql.SELECT_KEYS, (json.dumps(list(unique)),))
    existing = {r[0] for r in found}
    fresh = [r for k, r in unique.items() if k not in existing]
    if not fresh:
        return 0
    await conn.executemany(sql.INSERT_LOADED, [sql.loaded_params(r.entry) for r in fresh])
    ids = {
        row[1]: row[0]
        for row in await conn.execute_fetchall(
            sql.SELECT_IDS, (json.dumps([r.entry.key for r in fresh]),)
        )
    }
    log = [attempt_params(ids[r.entry.key], a) for r in fresh for a in r.attempts]
    if log:
        await conn.executemany(sql.INSERT_ATTEMPT, log)
    return len(fresh)
