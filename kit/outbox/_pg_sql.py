"""The PostgreSQL outbox's SQL text and row mapping, apart from the code that runs them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from kit.outbox._pg_flush_sql import FlushSql
from kit.outbox.lifecycle import initial_due_at, payload_sha256
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Entry,
    NewEntry,
    OutboxStats,
    State,
)

_ENTRY_FIELDS = tuple(attrs.fields_dict(Entry))  # the columns carry the attribute names
_ENTRY_COLUMNS = ", ".join(_ENTRY_FIELDS)
_ATTEMPT_COLUMNS = "attempt, kind, started_at, duration_ms, outcome, http_status, error"


def moved_in(schema: str) -> str:
    """Where migrate-outbox moved the outbox of ``schema`` (a scalar subquery's text)."""
    return f"SELECT value FROM \"{schema}\".meta WHERE name = 'moved_to'"


def not_moved_in(schema: str) -> str:
    """The condition every write of an intake carries (an entry inserted, cancelled or
    amended, a delivery journaled): nothing is written once the outbox was moved; when the
    row count says nothing was, the writer asks :func:`moved_in` why."""
    return f"NOT EXISTS ({moved_in(schema)})"


def entry_from_row(row: Any) -> Entry:
    values = {name: row[name] for name in _ENTRY_FIELDS}
    values["state"] = State(values["state"])
    return Entry(**values)


def attempt_from_row(row: Any) -> AttemptRecord:
    return AttemptRecord(
        attempt=row["attempt"],
        kind=AttemptKind(row["kind"]),
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        outcome=row["outcome"],
        http_status=row["http_status"],
        error=row["error"],
    )


class Sql:
    """Every statement, built once from constant fragments and the quoted schema name."""

    def __init__(self, schema: str) -> None:
        s = f'"{schema}"'
        t, a, h, m = f"{s}.entries", f"{s}.attempts", f"{s}.holds", f"{s}.meta"
        not_moved = not_moved_in(schema)
        self.create_schema = f"CREATE SCHEMA IF NOT EXISTS {s}"
        self.search_path = f"SET LOCAL search_path TO {s}"
        self.create_version = (
            f"CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        self.version = f"SELECT coalesce(max(version), 0) FROM {s}.schema_version"
        self.version_table = f"{s}.schema_version"
        self.has_version = "SELECT to_regclass($1)"
        self.record_version = f"INSERT INTO {s}.schema_version (version, name) VALUES ($1, $2)"
        # Known keys are filtered out before the INSERT so they do not use up ids (the ledger
        # stays dense); ON CONFLICT still settles a race with a concurrent enqueue of the same key.
        self.enqueue = f"""
            WITH ins AS (
                INSERT INTO {t} (key, state, event_type, channel_id, transaction_reference,
                                 payload, payload_sha256, email_hash, due_at, created_at,
                                 updated_at)
                SELECT n.key, 'pending', n.event_type, n.channel_id, n.transaction_reference,
                       n.payload, n.payload_sha256, n.email_hash, n.due_at, $1, $1
                FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                            $7::text[], $8::text[], $9::float8[])
                     WITH ORDINALITY AS n(key, event_type, channel_id, transaction_reference,
                                          payload, payload_sha256, email_hash, due_at, ord)
                WHERE NOT EXISTS (SELECT 1 FROM {t} AS x WHERE x.key = n.key)
                  AND {not_moved}
                  AND ($11::text IS NULL OR current_database() = $11::text)
                ORDER BY n.ord
                ON CONFLICT (key) DO NOTHING
                RETURNING key
            )
            SELECT (SELECT coalesce(array_agg(key), '{{}}') FROM ins) AS keys,
                   CASE WHEN EXISTS (SELECT 1 FROM ins)
                        THEN (SELECT true FROM pg_notify($10, '')) ELSE false END AS notified
        """
        # One entry, the common case: a plain INSERT, no arrays to build or unnest. It returns a
        # row only if it inserted, and only then NOTIFYs (delivered at COMMIT, as above).
        self.enqueue_one = f"""
            WITH ins AS (
                INSERT INTO {t} (key, state, event_type, channel_id, transaction_reference,
                                 payload, payload_sha256, email_hash, due_at, created_at,
                                 updated_at)
                SELECT $2::text, 'pending', $3::text, $4::text, $5::text, $6::text, $7::text,
                       $8::text, $9::float8, $1::float8, $1::float8
                WHERE NOT EXISTS (SELECT 1 FROM {t} AS x WHERE x.key = $2)
                  AND {not_moved}
                  AND ($11::text IS NULL OR current_database() = $11::text)
                ON CONFLICT (key) DO NOTHING
                RETURNING 1
            )
            SELECT pg_notify($10, '') FROM ins
        """
        # Bulk enqueue (see PostgresStorage._enqueue_copy): the keys already stored, then COPY of
        # the rest and one NOTIFY for the batch, in one transaction. The NOTIFY reads the moved
        # mark after the COPY took its lock, so a move either sees the COPY's rows (it waits
        # for writers under way) or the COPY sees the mark and rolls back.
        self.known_keys = (
            f"SELECT coalesce(array_agg(key), '{{}}') FROM {t} WHERE key = ANY($1::text[])"
        )
        self.notify_unless_moved = (
            f"SELECT pg_notify($1, ''), (SELECT value FROM {m} WHERE name = 'moved_to')"
        )
        # The enqueue statements insert nothing once migrate-outbox moved the outbox away (their
        # NOT EXISTS on 'moved_to'), nor, given the outbox's database as $11 (enqueue_in), on a
        # connection to another database; this tells both from duplicates.
        self.moved = moved_in(schema)
        self.skipped_why = f"SELECT ({self.moved}) AS moved_to, current_database() AS database"
        self.database = "SELECT current_database()"
        self.set_moved = (
            f"INSERT INTO {m} (name, value) VALUES ('moved_to', $1)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        )
        self.clear_moved = f"DELETE FROM {m} WHERE name = 'moved_to'"
        # SHARE conflicts with the ROW EXCLUSIVE lock every INSERT/UPDATE holds to its COMMIT:
        # taking (and at once releasing) it waits out the write transactions under way.
        self.wait_for_writers = f"LOCK TABLE {t} IN SHARE MODE"
        # Only a pending entry, in an outbox that was not moved; when nothing changed,
        # ``unchanged_why`` tells a moved outbox from an unknown key or another state.
        self.cancel = (
            f"UPDATE {t} SET state = 'cancelled', updated_at = $2"
            f" WHERE key = $1 AND state = 'pending' AND {not_moved} RETURNING id"
        )
        # The rule of amend_entry (lifecycle.py); $5 is initial_due_at(), computed in Python.
        self.amend = (
            f"UPDATE {t} SET payload = $2, payload_sha256 = $3, email_hash = $4, due_at = $5,"
            f" updated_at = $6 WHERE key = $1 AND state = 'pending' AND {not_moved} RETURNING id"
        )
        self.unchanged_why = (
            f"SELECT ({self.moved}) AS moved_to, EXISTS (SELECT 1 FROM {t} WHERE key = $1) AS known"
        )
        # The flusher's two statements, claim (by limit) and finish, live in _pg_flush_sql.
        flush = FlushSql(t, a, h, m)
        self.claim_with_holds = flush.claim_with_holds
        self.finish = flush.finish
        self.retry_dead = (
            f"UPDATE {t} SET state = 'pending', due_at = $2, sends = 0, in_doubt_since = NULL,"
            " updated_at = $2 WHERE state = 'dead' AND payload IS NOT NULL"
            " AND ($1::text[] IS NULL OR key = ANY($1::text[]))"
        )
        self.drop_dead = (
            f"UPDATE {t} SET state = 'cancelled', payload = NULL, email_hash = NULL,"
            " updated_at = $2"
            " WHERE state = 'dead' AND ($1::text[] IS NULL OR key = ANY($1::text[]))"
        )
        self.purge = (
            f"UPDATE {t} SET payload = NULL, email_hash = NULL WHERE payload IS NOT NULL"
            " AND state IN ('delivered', 'dead', 'cancelled') AND updated_at < $1"
        )
        # Entries in flight are left alone (counted); the rest lose payload and e-mail hash, and
        # the unfinished ones are cancelled.
        self.forget = _forget(t, "email_hash = $1")
        self.forget_keys = _forget(
            t, "key = ANY($1::text[]) AND (payload IS NOT NULL OR email_hash IS NOT NULL)"
        )
        self.set_hold = (
            f"INSERT INTO {h} (name, until, reason) VALUES ($1, $2, $3)"
            " ON CONFLICT (name) DO UPDATE SET until = excluded.until, reason = excluded.reason"
        )
        self.clear_hold = f"DELETE FROM {h} WHERE name = $1"
        self.holds = f"SELECT name, until, reason FROM {h} WHERE until > $1 ORDER BY name"
        self.get = f"SELECT {_ENTRY_COLUMNS} FROM {t} WHERE key = $1"
        self.entries = (
            f"SELECT {_ENTRY_COLUMNS} FROM {t} WHERE id > $1"
            " AND ($2::text IS NULL OR state = $2::text) ORDER BY id LIMIT $3"
        )
        self.attempts = (
            f"SELECT {_ATTEMPT_COLUMNS} FROM {a}"
            f" WHERE entry_id = (SELECT id FROM {t} WHERE key = $1) ORDER BY seq"
        )
        self.attempts_of = (
            f"SELECT entry_id, {_ATTEMPT_COLUMNS} FROM {a}"
            " WHERE entry_id = ANY($1::bigint[]) ORDER BY entry_id, seq"
        )
        self.stats = f"""
            SELECT
                (SELECT coalesce(array_agg(state), '{{}}') FROM
                    (SELECT state FROM {t} GROUP BY state ORDER BY state) AS g) AS states,
                (SELECT coalesce(array_agg(n), '{{}}') FROM
                    (SELECT count(*) AS n FROM {t} GROUP BY state ORDER BY state) AS g) AS counts,
                (SELECT min(created_at) FROM {t} WHERE state = 'pending') AS oldest,
                (SELECT min(due_at) FROM {t} WHERE state = 'pending') AS earliest_due,
                (SELECT last_error FROM {t} WHERE last_error IS NOT NULL
                 ORDER BY updated_at DESC, id DESC LIMIT 1) AS last_error,
                (SELECT coalesce(sum(blind_resends), 0) FROM {t}
                 WHERE blind_resends > 0) AS blind_resends,
                (SELECT count(*) FROM {t} WHERE adopted) AS adopted,
                (SELECT count(*) FROM {t}
                 WHERE state = 'pending' AND last_error IS NOT NULL) AS backing_off,
                (SELECT min(created_at) FROM {t}
                 WHERE state = 'pending' AND last_error IS NOT NULL) AS oldest_backing_off
        """
        self.load = f"""
            INSERT INTO {t} (key, state, event_type, channel_id, transaction_reference, payload,
                             payload_sha256, email_hash, attempt, sends, due_at, created_at,
                             updated_at, first_sent_at, in_doubt_since, event_ref, delivered_at,
                             adopted, blind_resends, last_error, lease_owner, lease_expires_at)
            SELECT r.key, r.state, r.event_type, r.channel_id, r.transaction_reference,
                   r.payload, r.payload_sha256, r.email_hash, r.attempt, r.sends, r.due_at,
                   r.created_at, r.updated_at, r.first_sent_at, r.in_doubt_since, r.event_ref,
                   r.delivered_at, r.adopted, r.blind_resends, r.last_error, r.lease_owner,
                   r.lease_expires_at
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                        $7::text[], $8::text[], $9::int[], $10::int[], $11::float8[],
                        $12::float8[], $13::float8[], $14::float8[], $15::float8[], $16::text[],
                        $17::float8[], $18::bool[], $19::int[], $20::text[], $21::text[],
                        $22::float8[])
                 WITH ORDINALITY AS r(key, state, event_type, channel_id, transaction_reference,
                                      payload, payload_sha256, email_hash, attempt, sends,
                                      due_at, created_at, updated_at, first_sent_at,
                                      in_doubt_since, event_ref, delivered_at, adopted,
                                      blind_resends, last_error, lease_owner, lease_expires_at,
                                      ord)
            WHERE NOT EXISTS (SELECT 1 FROM {t} AS x WHERE x.key = r.key)
            ORDER BY r.ord
            ON CONFLICT (key) DO NOTHING
            RETURNING key
        """
        self.load_attempts = f"""
            INSERT INTO {a} (entry_id, attempt, kind, started_at, duration_ms, outcome,
                             http_status, error)
            SELECT e.id, r.attempt, r.kind, r.started_at, r.duration_ms, r.outcome,
                   r.http_status, r.error
            FROM unnest($1::text[], $2::int[], $3::text[], $4::float8[], $5::float8[],
                        $6::text[], $7::int[], $8::text[])
                 WITH ORDINALITY AS r(key, attempt, kind, started_at, duration_ms, outcome,
                                      http_status, error, ord)
            JOIN {t} AS e ON e.key = r.key
            ORDER BY r.ord
        """


def enqueue_args(entries: Sequence[NewEntry], now: float) -> list[list[Any]]:
    """The column arrays of ``enqueue`` ($2 to $9): the first copy of each key, in order."""
    rows = first_of_each_key(entries)
    return [
        [e.key for e in rows],
        [e.event_type for e in rows],
        [e.channel_id for e in rows],
        [e.transaction_reference for e in rows],
        [e.payload for e in rows],
        [payload_sha256(e.payload) for e in rows],
        [e.email_hash for e in rows],
        [initial_due_at(e, now) for e in rows],
    ]


# The columns ``copy_records`` fills, in its order; the rest take their defaults.
COPY_COLUMNS = (
    "key",
    "state",
    "event_type",
    "channel_id",
    "transaction_reference",
    "payload",
    "payload_sha256",
    "email_hash",
    "due_at",
    "created_at",
    "updated_at",
)
# The name PostgreSQL gives ``key ... UNIQUE`` in 0001_initial.sql.
KEY_CONSTRAINT = "entries_key_key"


def first_of_each_key(entries: Sequence[NewEntry]) -> list[NewEntry]:
    first: dict[str, NewEntry] = {}
    for entry in entries:
        first.setdefault(entry.key, entry)
    return list(first.values())


def copy_records(entries: Sequence[NewEntry], now: float) -> list[tuple[Any, ...]]:
    """New pending rows for ``COPY`` (columns as ``COPY_COLUMNS``), in the order given."""
    return [
        (
            e.key,
            "pending",
            e.event_type,
            e.channel_id,
            e.transaction_reference,
            e.payload,
            payload_sha256(e.payload),
            e.email_hash,
            initial_due_at(e, now),
            now,
            now,
        )
        for e in entries
    ]


def enqueue_one_args(entry: NewEntry, now: float) -> list[Any]:
    """The parameters $2 to $9 of ``enqueue_one``."""
    return [
        entry.key,
        entry.event_type,
        entry.channel_id,
        entry.transaction_reference,
        entry.payload,
        payload_sha256(entry.payload),
        entry.email_hash,
        initial_due_at(entry, now),
    ]


def amend_args(entry: NewEntry, now: float) -> list[Any]:
    """The parameters $1 to $6 of ``amend``."""
    return [
        entry.key,
        entry.payload,
        payload_sha256(entry.payload),
        entry.email_hash,
        initial_due_at(entry, now),
        now,
    ]


def stats_from_row(row: Any) -> OutboxStats:
    counts = dict.fromkeys(State, 0)
    for state, n in zip(row["states"], row["counts"], strict=True):
        counts[State(state)] = n
    return OutboxStats(
        counts=counts,
        oldest_pending_created_at=row["oldest"],
        earliest_due_at=row["earliest_due"],
        last_error=row["last_error"],
        blind_resends=row["blind_resends"],
        adopted=row["adopted"],
        backing_off=row["backing_off"],
        oldest_backing_off_created_at=row["oldest_backing_off"],
    )


def load_args(rows: Sequence[Entry]) -> list[list[Any]]:
    cols = [[getattr(e, name) for e in rows] for name in _ENTRY_FIELDS if name != "id"]
    cols[1] = [str(state) for state in cols[1]]
    return cols


def attempt_args(logs: Sequence[tuple[str, AttemptRecord]]) -> list[list[Any]]:
    return [
        [key for key, _ in logs],
        [a.attempt for _, a in logs],
        [str(a.kind) for _, a in logs],
        [a.started_at for _, a in logs],
        [a.duration_ms for _, a in logs],
        [a.outcome for _, a in logs],
        [a.http_status for _, a in logs],
        [a.error for _, a in logs],
    ]


def keys_arg(keys: Sequence[str] | None) -> list[str] | None:
    return None if keys is None else list(keys)


def _forget(t: str, which: str) -> str:
    """The forget rule for the entries ``which`` selects (one e-mail hash, or an erased
    account's keys): entries in flight are left alone (counted); the rest lose payload and
    e-mail hash, and the unfinished ones are cancelled."""
    return f"""
        WITH m AS (
            SELECT id, state FROM {t} WHERE {which} FOR UPDATE
        ), u AS (
            UPDATE {t} AS e SET
                payload = NULL,
                email_hash = NULL,
                state = CASE WHEN m.state IN ('pending', 'in_doubt', 'dead')
                             THEN 'cancelled' ELSE e.state END,
                lease_owner = CASE WHEN m.state IN ('pending', 'in_doubt', 'dead')
                                   THEN NULL ELSE e.lease_owner END,
                lease_expires_at = CASE WHEN m.state IN ('pending', 'in_doubt', 'dead')
                                        THEN NULL ELSE e.lease_expires_at END,
                updated_at = CASE WHEN m.state IN ('pending', 'in_doubt', 'dead')
                                  THEN $2 ELSE e.updated_at END
            FROM m
            WHERE e.id = m.id AND m.state <> 'sending'
            RETURNING e.id
        )
        SELECT (SELECT count(*) FROM u) AS purged,
               (SELECT count(*) FROM m WHERE state = 'sending') AS skipped
    """
