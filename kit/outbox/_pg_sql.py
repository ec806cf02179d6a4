"""The PostgreSQL outbox's SQL text and row mapping, apart from the code that runs them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from kit import jsonenc
from kit.errors import OutboxError
from kit.outbox.memory import initial_due_at, payload_sha256
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Claimed,
    ClaimMode,
    Completion,
    Dead,
    Delivered,
    Entry,
    InDoubt,
    NewEntry,
    OutboxStats,
    Release,
    Resend,
    Retry,
    State,
)

_ENTRY_FIELDS = tuple(attrs.fields_dict(Entry))  # the columns carry the attribute names
_ENTRY_COLUMNS = ", ".join(_ENTRY_FIELDS)
_ATTEMPT_COLUMNS = "attempt, kind, started_at, duration_ms, outcome, http_status, error"


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
        t, a, h = f"{s}.entries", f"{s}.attempts", f"{s}.holds"
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
                  AND NOT EXISTS (SELECT 1 FROM {h} WHERE name = 'migrated')
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
                  AND NOT EXISTS (SELECT 1 FROM {h} WHERE name = 'migrated')
                ON CONFLICT (key) DO NOTHING
                RETURNING 1
            )
            SELECT pg_notify($10, '') FROM ins
        """
        # Bulk enqueue (see PostgresStorage._enqueue_copy): the keys already stored, then COPY of
        # the rest and one NOTIFY for the batch, in one transaction.
        self.known_keys = (
            f"SELECT coalesce(array_agg(key), '{{}}') FROM {t} WHERE key = ANY($1::text[])"
        )
        self.notify = "SELECT pg_notify($1, '')"
        # Once migrate-outbox moved the outbox away, the enqueue statements insert nothing
        # (their NOT EXISTS on the 'migrated' hold); this tells that from duplicates.
        self.moved = f"SELECT reason FROM {h} WHERE name = 'migrated'"
        # SHARE conflicts with the ROW EXCLUSIVE lock every INSERT/UPDATE holds to its COMMIT:
        # taking (and at once releasing) it waits out the write transactions under way.
        self.wait_for_writers = f"LOCK TABLE {t} IN SHARE MODE"
        self.cancel = (
            f"UPDATE {t} SET state = 'cancelled', updated_at = $2"
            " WHERE key = $1 AND state = 'pending' RETURNING id"
        )
        self.exists = f"SELECT 1 FROM {t} WHERE key = $1"
        # Three index scans, each stopping after {limit} unlocked rows; the union is re-ordered
        # and cut to {limit} (rows locked but not picked are released when the statement
        # commits). See claim() for why the limit is in the text.
        self._claim = f"""
            WITH p AS (
                SELECT id, due_at AS k FROM {t}
                WHERE state = 'pending' AND due_at <= $1
                ORDER BY due_at, id LIMIT {{limit}} FOR UPDATE SKIP LOCKED
            ), s AS (
                SELECT id, lease_expires_at AS k FROM {t}
                WHERE state = 'sending' AND lease_expires_at <= $1
                ORDER BY lease_expires_at, id LIMIT {{limit}} FOR UPDATE SKIP LOCKED
            ), d AS (
                SELECT id, due_at AS k FROM {t}
                WHERE state = 'in_doubt' AND due_at <= $1
                  AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
                ORDER BY due_at, id LIMIT {{limit}} FOR UPDATE SKIP LOCKED
            ), pick AS (
                SELECT id, k FROM (SELECT * FROM p UNION ALL SELECT * FROM s
                                   UNION ALL SELECT * FROM d) AS u
                ORDER BY k, id LIMIT {{limit}}
            ), claimed AS (
                UPDATE {t} AS e SET
                    state = CASE WHEN e.state = 'pending' THEN 'sending' ELSE 'in_doubt' END,
                    attempt = e.attempt + 1,
                    lease_owner = $2,
                    lease_expires_at = $1 + $3::float8,
                    first_sent_at = CASE WHEN e.state = 'pending'
                                         THEN coalesce(e.first_sent_at, $1)
                                         ELSE e.first_sent_at END,
                    in_doubt_since = CASE WHEN e.state = 'pending' THEN e.in_doubt_since
                                          ELSE coalesce(e.in_doubt_since, $1) END,
                    due_at = CASE WHEN e.state = 'sending' THEN e.lease_expires_at
                                  ELSE e.due_at END,
                    updated_at = $1
                FROM pick WHERE e.id = pick.id
                RETURNING e.id, e.key, e.attempt, e.state, e.payload, e.event_type, e.channel_id,
                          e.transaction_reference, e.sends, e.first_sent_at, e.in_doubt_since,
                          e.lease_expires_at, pick.k
            )
            SELECT key, attempt, state, payload, event_type, channel_id, transaction_reference,
                   sends, first_sent_at, in_doubt_since, lease_expires_at
            FROM claimed ORDER BY k, id
        """
        # One round of completions (keys unique within it), applied and logged in one statement.
        # The rows come as one JSON array of objects (see finish_args); a missing key is NULL.
        self.finish = f"""
            WITH c AS (
                SELECT * FROM json_to_recordset($2::text::json) AS c(
                    idx int, key text, attempt int, outcome text, due_at float8, error text,
                    event_ref text, adopted bool, sends_inc int, r_attempt int, r_kind text,
                    r_started_at float8, r_duration_ms float8, r_outcome text,
                    r_http_status int, r_error text)
            ), done AS (
                UPDATE {t} AS e SET
                    state = CASE c.outcome
                        WHEN 'delivered' THEN 'delivered' WHEN 'retry' THEN 'pending'
                        WHEN 'in_doubt' THEN 'in_doubt' WHEN 'dead' THEN 'dead'
                        WHEN 'resend' THEN 'pending'
                        ELSE CASE WHEN e.state = 'sending' THEN 'pending' ELSE 'in_doubt' END
                    END,
                    due_at = CASE WHEN c.outcome IN ('retry', 'in_doubt', 'resend') THEN c.due_at
                                  WHEN c.outcome = 'release' THEN $1 ELSE e.due_at END,
                    event_ref = CASE WHEN c.outcome = 'delivered' THEN c.event_ref
                                     ELSE e.event_ref END,
                    delivered_at = CASE WHEN c.outcome = 'delivered' THEN $1
                                        ELSE e.delivered_at END,
                    adopted = CASE WHEN c.outcome = 'delivered' THEN c.adopted ELSE e.adopted END,
                    in_doubt_since = CASE WHEN c.outcome = 'in_doubt'
                                          THEN coalesce(e.in_doubt_since, $1)
                                          WHEN c.outcome = 'resend' THEN NULL
                                          ELSE e.in_doubt_since END,
                    blind_resends = e.blind_resends
                                    + CASE WHEN c.outcome = 'resend' THEN 1 ELSE 0 END,
                    sends = e.sends + c.sends_inc,
                    last_error = CASE WHEN c.outcome = 'release' THEN e.last_error
                                      ELSE c.error END,
                    lease_owner = NULL,
                    lease_expires_at = NULL,
                    updated_at = $1
                FROM c
                WHERE e.key = c.key AND e.attempt = c.attempt
                  AND e.state IN ('sending', 'in_doubt') AND e.lease_owner IS NOT NULL
                RETURNING e.id, c.idx
            ), logged AS (
                INSERT INTO {a} (entry_id, attempt, kind, started_at, duration_ms, outcome,
                                 http_status, error)
                SELECT done.id, c.r_attempt, c.r_kind, c.r_started_at, c.r_duration_ms,
                       c.r_outcome, c.r_http_status, c.r_error
                FROM done JOIN c ON c.idx = done.idx
                WHERE c.r_kind IS NOT NULL
                ORDER BY done.idx
            )
            SELECT idx FROM done
        """
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
        self.forget = f"""
            WITH m AS (
                SELECT id, state FROM {t} WHERE email_hash = $1 FOR UPDATE
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
                (SELECT count(*) FROM {t} WHERE adopted) AS adopted
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
        self._claims: dict[int, str] = {}

    def claim(self, limit: int) -> str:
        """The claim statement for ``limit`` entries ($1 now, $2 owner, $3 lease seconds).

        The limit is written into the text (an int, never outside input) rather than passed as
        a parameter: PostgreSQL costs a generic plan's ``LIMIT $n`` as a tenth of the rows the
        scan may return, so with a large backlog the cached generic plan looks dearer than a
        fresh one and every claim is planned anew (about half a millisecond of server CPU, the
        one cost of a claim that grew with the backlog). With the limit known, the generic
        plan costs the same at any size and is used from the sixth claim on. A flusher asks
        for at most its concurrency, so only a few texts are ever prepared.
        """
        if limit <= 0:
            raise OutboxError(f"claim limit must be positive, got {limit!r}")
        text = self._claims.get(limit)
        if text is None:
            text = self._claims[limit] = self._claim.replace("{limit}", str(int(limit)))
        return text


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


def claimed_from_row(r: Any) -> Claimed:
    """A row of ``claim``, by position (cheaper than by name), in the order it selects."""
    key, attempt, state, payload, event_type, channel_id, reference, sends, first, doubt, lease = r
    return Claimed(
        key=key,
        attempt=attempt,
        mode=ClaimMode.SEND if state == State.SENDING else ClaimMode.RECONCILE,
        payload=payload,
        event_type=event_type,
        channel_id=channel_id,
        transaction_reference=reference,
        sends=sends,
        first_sent_at=first,
        in_doubt_since=doubt,
        lease_expires_at=lease,
    )


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
    )


def finish_rounds(completions: Sequence[Completion]) -> list[list[int]]:
    """Indices into ``completions``, split into rounds with unique keys (``finish`` needs that).

    A key may end twice in one call (it should not, but then the second sees the first's effect,
    as if applied one by one).
    """
    rounds: list[list[int]] = []
    depth: dict[str, int] = {}
    for i, c in enumerate(completions):
        n = depth.get(c.key, 0)
        depth[c.key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds


def finish_args(batch: Sequence[Completion]) -> list[str]:
    """The parameter $2 of ``finish``: the batch as one JSON array of objects.

    One text parameter instead of fifteen arrays: asyncpg checks every element of an array
    parameter against abstract base classes before it encodes it, which cost the client about
    as much as the rest of the statement. Floats are written as ``repr`` writes them, so they
    come back bit for bit; a non-finite one (JSON has no number for it) goes as text, which
    ``float8`` reads the same way.
    """
    rows: list[dict[str, Any]] = []
    for i, c in enumerate(batch, 1):
        o = c.outcome
        if isinstance(o, Delivered):
            row = {"outcome": "delivered", "event_ref": o.event_ref, "adopted": o.adopted}
        elif isinstance(o, Retry):
            row = {"outcome": "retry", "due_at": _number(o.due_at), "error": o.error}
        elif isinstance(o, InDoubt):
            row = {"outcome": "in_doubt", "due_at": _number(o.due_at), "error": o.error}
        elif isinstance(o, Dead):
            row = {"outcome": "dead", "error": o.reason}
        elif isinstance(o, Resend):
            row = {"outcome": "resend", "due_at": _number(o.due_at), "error": o.reason}
        elif isinstance(o, Release):
            row = {"outcome": "release"}
        else:  # pragma: no cover - the Outcome union is closed
            raise OutboxError(f"unknown outcome {o!r}")
        row["idx"], row["key"], row["attempt"] = i, c.key, c.attempt
        r = c.record
        if r is None:
            row["sends_inc"] = 0
        else:
            row["sends_inc"] = 1 if r.kind == AttemptKind.SEND else 0
            row["r_attempt"], row["r_kind"], row["r_outcome"] = r.attempt, str(r.kind), r.outcome
            row["r_started_at"] = _number(r.started_at)
            row["r_duration_ms"] = _number(r.duration_ms)
            row["r_http_status"], row["r_error"] = r.http_status, r.error
        rows.append(row)
    return [jsonenc.encode_values(rows)]


def _number(value: float) -> float | str:
    return value if math.isfinite(value) else repr(value)


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
