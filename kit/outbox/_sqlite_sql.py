"""The SQLite outbox's SQL text and row mapping, apart from the code that runs them."""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from kit.errors import MigrationError
from kit.outbox.lifecycle import empty_stats_counts, initial_due_at, payload_sha256
from kit.outbox.transitions import effect_of
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Claimed,
    ClaimMode,
    Completion,
    Entry,
    NewEntry,
    OutboxStats,
    State,
)

_ENTRY_FIELDS = (
    "id",
    "key",
    "state",
    "event_type",
    "channel_id",
    "transaction_reference",
    "payload",
    "payload_sha256",
    "email_hash",
    "attempt",
    "sends",
    "due_at",
    "created_at",
    "updated_at",
    "first_sent_at",
    "in_doubt_since",
    "event_ref",
    "delivered_at",
    "adopted",
    "blind_resends",
    "last_error",
    "lease_owner",
    "lease_expires_at",
)
_ENTRY_COLUMNS = ", ".join(_ENTRY_FIELDS)
_ATTEMPT_COLUMNS = "attempt, kind, started_at, duration_ms, outcome, http_status, error"

_KEYS_IN = "key IN (SELECT value FROM json_each(?))"

# Nothing is written once migrate-outbox has moved the outbox ('moved_to' in etk_meta): every
# write of an intake (an entry inserted, cancelled or amended, a delivery journaled) carries
# this condition, and when the row count says nothing changed the writer tells a moved outbox
# from a duplicate or a no-op by MOVED, in the same transaction. Measured, this costs an INSERT
# what a BEFORE INSERT trigger would, and it leaves load() alone.
MOVED = "SELECT value FROM etk_meta WHERE name = 'moved_to'"
NOT_MOVED = f"NOT EXISTS ({MOVED})"
INSERT_NEW_OR_SKIP = f"""
INSERT INTO etk_entries (key, state, event_type, channel_id, transaction_reference, payload,
                         payload_sha256, email_hash, due_at, created_at, updated_at)
SELECT ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?
WHERE {NOT_MOVED}
ON CONFLICT (key) DO NOTHING"""
SET_MOVED = (
    "INSERT INTO etk_meta (name, value) VALUES ('moved_to', ?)"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
CLEAR_MOVED = "DELETE FROM etk_meta WHERE name = 'moved_to'"
# Rows are never deleted and ids are allocated as max + 1, so the rows one write transaction
# added are exactly those above the largest id it saw before its first INSERT.
MAX_ID = "SELECT coalesce(max(id), 0) FROM etk_entries"
KEYS_ABOVE = "SELECT key FROM etk_entries WHERE id > ?"

INSERT_LOADED = (
    f"INSERT INTO etk_entries ({', '.join(_ENTRY_FIELDS[1:])}) "
    f"VALUES ({', '.join('?' * (len(_ENTRY_FIELDS) - 1))})"
)

INSERT_ATTEMPT = (
    f"INSERT INTO etk_attempts (entry_id, {_ATTEMPT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

# A claim is three statements in one transaction: pick the ids (CLAIM_PICK), lease those rows
# (CLAIM), read them back (CLAIMED). Not one ``UPDATE ... RETURNING``: RETURNING makes SQLite
# fill a temporary table with every returned row, the 1 KB payload included, about 6,000
# instructions more per claimed row (callgrind) than a second read by rowid.
#
# Three index range scans (pending and in_doubt by due time, expired sending leases), each cut
# to the limit before they are merged, so the cost does not grow with the table.
CLAIM_PICK = """
SELECT id FROM (
    SELECT id, due FROM (
        SELECT id, due_at AS due FROM etk_entries
        WHERE state = 'pending' AND due_at <= :now
        ORDER BY due_at, id LIMIT :limit)
    UNION ALL
    SELECT id, due FROM (
        SELECT id, due_at AS due FROM etk_entries
        WHERE state = 'in_doubt' AND due_at <= :now
          AND (lease_expires_at IS NULL OR lease_expires_at <= :now)
        ORDER BY due_at, id LIMIT :limit)
    UNION ALL
    SELECT id, due FROM (
        SELECT id, lease_expires_at AS due FROM etk_entries INDEXED BY etk_entries_lease
        WHERE state = 'sending' AND lease_expires_at <= :now
        ORDER BY lease_expires_at, id LIMIT :limit)
    ORDER BY due, id LIMIT :limit)"""
# The picked ids come as a JSON array in :ids.
CLAIM = """
UPDATE etk_entries SET
    state = CASE WHEN state = 'pending' THEN 'sending' ELSE 'in_doubt' END,
    first_sent_at = CASE WHEN state = 'pending' THEN coalesce(first_sent_at, :now)
                         ELSE first_sent_at END,
    in_doubt_since = CASE WHEN state = 'pending' THEN in_doubt_since
                          ELSE coalesce(in_doubt_since, :now) END,
    due_at = CASE WHEN state = 'sending' THEN lease_expires_at ELSE due_at END,
    attempt = attempt + 1,
    lease_owner = :owner,
    lease_expires_at = :expires,
    updated_at = :now
WHERE id IN (SELECT value FROM json_each(:ids))"""
# The leased rows as CLAIM left them, in no particular order (the ids in ?1, a JSON array).
CLAIMED = """
SELECT id, key, attempt, state, payload, event_type, channel_id, transaction_reference,
       sends, first_sent_at, in_doubt_since, due_at, created_at
FROM etk_entries WHERE id IN (SELECT value FROM json_each(?))"""

# One completion, fenced as apply_completion (lifecycle.py) fences it: only the attempt in force,
# while sending or in doubt and still leased. Its changes are an Effect resolved from the
# transition table (kit/outbox/transitions.py), computed in SQL from the row as it is, so the
# result path never reads rows into Python. Run once per completion, in order, so a second
# completion of the same attempt in one batch finds the lease cleared and changes nothing.
# Numbered parameters: ?1-?11 are the Effect's fields in their order, then now, key, attempt,
# id (finish_one_params). Not named: binding by name costs the worker thread a string per
# parameter per result. The row is found by its id (the table's rowid: no index to walk), and
# the key must match as well, so a wrong id never touches another entry. The row count tells
# whether it applied: ``RETURNING id`` ran a subprogram and filled a temporary table per row,
# about a fifth of a result's cost on the worker thread (callgrind).
FINISH_ONE = """
UPDATE etk_entries SET
    state = CASE state WHEN 'sending' THEN ?1 ELSE ?2 END,
    due_at = coalesce(?3, due_at),
    in_doubt_since = CASE ?4 WHEN 'keep' THEN in_doubt_since
                     WHEN 'set_if_unset' THEN coalesce(in_doubt_since, ?12) ELSE NULL END,
    event_ref = coalesce(?5, event_ref),
    delivered_at = coalesce(?6, delivered_at),
    adopted = coalesce(?7, adopted),
    blind_resends = blind_resends + ?8,
    sends = sends + ?9,
    last_error = CASE ?10 WHEN 'keep' THEN last_error ELSE ?11 END,
    lease_owner = NULL,
    lease_expires_at = NULL,
    updated_at = ?12
WHERE id = ?15 AND key = ?13 AND attempt = ?14 AND (state = 'sending' OR state = 'in_doubt')
  AND lease_owner IS NOT NULL"""

# Its condition is the partial index's, spelled the same way, or SQLite cannot use the index.
PURGE = """
UPDATE etk_entries INDEXED BY etk_entries_purgeable SET payload = NULL, email_hash = NULL
WHERE payload IS NOT NULL AND (state = 'delivered' OR state = 'dead' OR state = 'cancelled')
  AND updated_at < ?"""

SCHEMA_TABLE = """
CREATE TABLE IF NOT EXISTS etk_schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
)"""

HAS_VERSION_TABLE = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'etk_schema_version'"
)
MAX_VERSION = "SELECT max(version) FROM etk_schema_version"
RECORD_VERSION = "INSERT INTO etk_schema_version (version, name, applied_at) VALUES (?, ?, ?)"

SELECT_KEYS = f"SELECT key FROM etk_entries WHERE {_KEYS_IN}"
SELECT_IDS = f"SELECT id, key FROM etk_entries WHERE {_KEYS_IN}"
AND_KEYS_IN = f" AND {_KEYS_IN}"

STATE_OF = "SELECT state FROM etk_entries WHERE key = ?"
ID_OF = "SELECT id FROM etk_entries WHERE key = ?"
# Only a pending entry, in an outbox that was not moved (NOT_MOVED).
CANCEL = (
    "UPDATE etk_entries SET state = 'cancelled', updated_at = ?"
    f" WHERE key = ? AND state = 'pending' AND {NOT_MOVED}"
)
# The rule of amend_entry (lifecycle.py): only a pending entry; the due time is computed by
# initial_due_at in Python, as for a new entry.
AMEND = (
    "UPDATE etk_entries SET payload = ?, payload_sha256 = ?, email_hash = ?, due_at = ?,"
    f" updated_at = ? WHERE key = ? AND state = 'pending' AND {NOT_MOVED}"
)
# RETRY_DEAD and DROP_DEAD end in their WHERE clause, so AND_KEYS_IN may be appended.
RETRY_DEAD = (
    "UPDATE etk_entries SET state = 'pending', due_at = ?, sends = 0,"
    " in_doubt_since = NULL, updated_at = ?"
    " WHERE state = 'dead' AND payload IS NOT NULL"
)
DROP_DEAD = (
    "UPDATE etk_entries SET state = 'cancelled', payload = NULL, email_hash = NULL, updated_at = ?"
    " WHERE state = 'dead'"
)
# The forget rule, for the entries of one e-mail hash or (an erased account) of some keys:
# those being sent are left alone (counted); the rest lose payload and hash, the unfinished
# cancelled. Each ForgetSql's statements take the selecting value as their last parameter.
_FORGET_IN_FLIGHT = "SELECT count(*) FROM etk_entries WHERE {which} AND state = 'sending'"
_FORGET_CANCEL = (
    "UPDATE etk_entries SET state = 'cancelled', payload = NULL, email_hash = NULL,"
    " lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
    " WHERE {which} AND state IN ('pending', 'in_doubt', 'dead')"
)
_FORGET_SCRUB = (
    "UPDATE etk_entries SET payload = NULL, email_hash = NULL"
    " WHERE {which} AND state IN ('delivered', 'cancelled')"
)


class ForgetSql(NamedTuple):
    in_flight: str
    cancel: str
    scrub: str


def _forget(which: str) -> ForgetSql:
    return ForgetSql(
        *(s.format(which=which) for s in (_FORGET_IN_FLIGHT, _FORGET_CANCEL, _FORGET_SCRUB))
    )


FORGET_BY_HASH = _forget("email_hash = ?")
# The keys as a JSON array; only entries that still hold something to forget.
FORGET_BY_KEYS = _forget(f"{_KEYS_IN} AND (payload IS NOT NULL OR email_hash IS NOT NULL)")

SET_HOLD = (
    "INSERT INTO etk_holds (name, until, reason) VALUES (?, ?, ?) ON CONFLICT (name)"
    " DO UPDATE SET until = excluded.until, reason = excluded.reason"
)
CLEAR_HOLD = "DELETE FROM etk_holds WHERE name = ?"
HOLDS = "SELECT name, until, reason FROM etk_holds WHERE until > ? ORDER BY name"

GET = f"SELECT {_ENTRY_COLUMNS} FROM etk_entries WHERE key = ?"
ENTRIES = f"SELECT {_ENTRY_COLUMNS} FROM etk_entries WHERE id > ? ORDER BY id LIMIT ?"
ENTRIES_IN_STATE = (
    f"SELECT {_ENTRY_COLUMNS} FROM etk_entries WHERE id > ? AND state = ? ORDER BY id LIMIT ?"
)
ATTEMPTS = (
    f"SELECT {_ATTEMPT_COLUMNS} FROM etk_attempts"
    " WHERE entry_id = (SELECT id FROM etk_entries WHERE key = ?) ORDER BY id"
)
ATTEMPTS_BETWEEN = (
    f"SELECT entry_id, {_ATTEMPT_COLUMNS} FROM etk_attempts"
    " WHERE entry_id BETWEEN ? AND ? ORDER BY entry_id, id"
)
STATS_COUNTS = "SELECT state, count(*) FROM etk_entries GROUP BY state"
STATS_SUMMARY = (
    "SELECT"
    " (SELECT min(created_at) FROM etk_entries WHERE state = 'pending'),"
    " (SELECT min(due_at) FROM etk_entries WHERE state = 'pending'),"
    " (SELECT last_error FROM etk_entries WHERE last_error IS NOT NULL"
    "  ORDER BY updated_at DESC, id DESC LIMIT 1),"
    " (SELECT coalesce(sum(blind_resends), 0) FROM etk_entries"
    "  WHERE blind_resends > 0),"
    " (SELECT count(*) FROM etk_entries WHERE adopted = 1),"
    " (SELECT count(*) FROM etk_entries WHERE state = 'pending' AND last_error IS NOT NULL),"
    " (SELECT min(created_at) FROM etk_entries"
    "  WHERE state = 'pending' AND last_error IS NOT NULL)"
)


def entry_from_row(row: Sequence[Any]) -> Entry:
    values = dict(zip(_ENTRY_FIELDS, row, strict=True))
    values["state"] = State(values["state"])
    values["adopted"] = bool(values["adopted"])
    return Entry(**values)


def attempt_from_row(row: Sequence[Any]) -> AttemptRecord:
    attempt, kind, started_at, duration_ms, outcome, http_status, error = row
    return AttemptRecord(
        attempt=attempt,
        kind=AttemptKind(kind),
        started_at=started_at,
        duration_ms=duration_ms,
        outcome=outcome,
        http_status=http_status,
        error=error,
    )


# Read once per claimed row or written result: module constants, as on Python 3.11 an enum
# member (or its value) read through its class is a call of Python code.
_SENDING, _SEND_MODE, _RECONCILE_MODE = State.SENDING.value, ClaimMode.SEND, ClaimMode.RECONCILE
_KIND_TEXT: dict[AttemptKind, str] = {kind: kind.value for kind in AttemptKind}


def attempt_params(entry: int, record: AttemptRecord) -> tuple[Any, ...]:
    """For INSERT_ATTEMPT (``entry`` the entry's id)."""
    return (
        entry,
        record.attempt,
        _KIND_TEXT[record.kind],
        record.started_at,
        record.duration_ms,
        record.outcome,
        record.http_status,
        record.error,
    )


def statements(script: str) -> list[str]:
    """Split a migration file into statements (``executescript`` would commit mid-migration)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    leftover = [ln for ln in buffer.splitlines() if ln.strip() and not ln.strip().startswith("--")]
    if leftover:
        raise MigrationError(f"migration ends inside a statement: {leftover[0][:60]!r}")
    return statements


def new_entry_params(new: NewEntry, now: float) -> tuple[Any, ...]:
    """The parameters of INSERT_NEW_OR_SKIP."""
    return (
        new.key,
        new.event_type,
        new.channel_id,
        new.transaction_reference,
        new.payload,
        payload_sha256(new.payload),
        new.email_hash,
        now if new.send_after is None else initial_due_at(new, now),
        now,
        now,
    )


def amend_params(new: NewEntry, now: float) -> tuple[Any, ...]:
    """The parameters of AMEND."""
    return (
        new.payload,
        payload_sha256(new.payload),
        new.email_hash,
        initial_due_at(new, now),
        now,
        new.key,
    )


def claimed_from_row(r: Sequence[Any], expires: float) -> Claimed:
    """A row of CLAIMED."""
    return Claimed(
        key=r[1],
        attempt=r[2],
        entry_id=r[0],
        mode=_SEND_MODE if r[3] == _SENDING else _RECONCILE_MODE,
        payload=r[4],
        event_type=r[5],
        channel_id=r[6],
        transaction_reference=r[7],
        sends=r[8],
        first_sent_at=r[9],
        in_doubt_since=r[10],
        lease_expires_at=expires,
        created_at=r[12],
    )


def finish_one_params(c: Completion, entry_id: int, now: float) -> tuple[Any, ...]:
    """The parameters of FINISH_ONE for a completion of the entry ``entry_id``, in its
    numbering."""
    e = effect_of(c.outcome, c.record, now)
    return (
        e.to_from_sending,
        e.to_from_in_doubt,
        e.due_at,
        e.in_doubt_since,
        e.event_ref,
        e.delivered_at,
        None if e.adopted is None else int(e.adopted),
        e.blind_resends,
        e.sends,
        e.last_error,
        e.error,
        now,
        c.key,
        c.attempt,
        entry_id,
    )


def loaded_params(entry: Entry) -> tuple[Any, ...]:
    """The parameters of INSERT_LOADED."""
    return tuple(_db_value(getattr(entry, field)) for field in _ENTRY_FIELDS[1:])


def stats_from_rows(grouped: Iterable[Sequence[Any]], summary: Sequence[Any]) -> OutboxStats:
    """The rows of STATS_COUNTS and the one row of STATS_SUMMARY."""
    counts = empty_stats_counts()
    for state, count in grouped:
        counts[State(state)] = count
    oldest, earliest_due, last_error, blind, adopted, backing_off, oldest_backing_off = summary
    return OutboxStats(
        counts=counts,
        oldest_pending_created_at=oldest,
        earliest_due_at=earliest_due,
        last_error=last_error,
        blind_resends=int(blind),
        adopted=int(adopted),
        backing_off=int(backing_off),
        oldest_backing_off_created_at=oldest_backing_off,
    )


def _db_value(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value
