"""The PostgreSQL statements a flusher runs every round, claim and finish, and their mapping.

These two run once per claimed batch and once per result batch, so both are shaped for the
client's CPU and the plan cache as much as for what they do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kit import jsonenc
from kit.outbox.transitions import effect_of
from kit.outbox.types import Claimed, ClaimMode, Completion, Hold, State


class FlushSql:
    """The claim (per limit) and finish statements for one schema's tables (quoted names)."""

    def __init__(self, entries: str, attempts: str, holds: str, meta: str) -> None:
        t, a, h, m = entries, attempts, holds, meta
        # Three index scans, each stopping after {limit} unlocked rows; the union is re-ordered
        # and cut to {limit} (rows locked but not picked are released when the statement
        # commits). Nothing is picked once the outbox was moved. The claimed rows ('c'), the
        # holds in force ('h') and the moved mark ('m') come back in one statement (one round
        # trip, one snapshot), sorted by the server: claimed rows first, in claim order, then
        # the holds by name. See claim_with_holds() for why the limit is in the text.
        self._claim_with_holds = f"""
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
                WHERE NOT EXISTS (SELECT 1 FROM {m} WHERE name = 'moved_to')
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
                          e.lease_expires_at, pick.k, e.created_at
            )
            SELECT row_kind, key, attempt, state, payload, event_type, channel_id,
                   transaction_reference, sends, first_sent_at, in_doubt_since,
                   lease_expires_at, name, until, reason, created_at, id
            FROM (
                SELECT 'c' AS row_kind, k, id, key, attempt, state, payload, event_type,
                       channel_id, transaction_reference, sends, first_sent_at, in_doubt_since,
                       lease_expires_at, NULL::text AS name, NULL::float8 AS until,
                       NULL::text AS reason, created_at
                FROM claimed
                UNION ALL
                SELECT 'h', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                       NULL, NULL, name, until, reason, NULL
                FROM {h} WHERE until > $1
                UNION ALL
                SELECT 'm', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                       NULL, NULL, name, NULL, value, NULL
                FROM {m} WHERE name = 'moved_to'
            ) AS u
            ORDER BY row_kind, k, id, name
        """
        self._claims: dict[int, str] = {}
        # One round of completions (keys unique within it), applied and logged in one statement.
        # Each completion's changes are an Effect resolved from the transition table
        # (kit/outbox/transitions.py), sent as one JSON array of objects (see finish_args; a
        # missing or null key is NULL): c.due_at, c.event_ref, c.delivered_at, c.adopted NULL
        # keep the stored value; c.since and c.last_error name what to do with those fields.
        # A row is found by the id its claim gave (by key when there is none), and its key must
        # match too, so a wrong id never touches another entry.
        self.finish = f"""
            WITH c AS (
                SELECT * FROM json_to_recordset($2::text::json) AS c(
                    idx int, id bigint, key text, attempt int, to_from_sending text,
                    to_from_in_doubt text, due_at float8, since text, event_ref text,
                    delivered_at float8, adopted bool, blind_resends int, sends int,
                    last_error text, error text, r_attempt int, r_kind text,
                    r_started_at float8, r_duration_ms float8, r_outcome text,
                    r_http_status int, r_error text)
            ), done AS (
                UPDATE {t} AS e SET
                    state = CASE WHEN e.state = 'sending' THEN c.to_from_sending
                                 ELSE c.to_from_in_doubt END,
                    due_at = coalesce(c.due_at, e.due_at),
                    in_doubt_since = CASE c.since WHEN 'keep' THEN e.in_doubt_since
                                     WHEN 'set_if_unset' THEN coalesce(e.in_doubt_since, $1)
                                     ELSE NULL END,
                    event_ref = coalesce(c.event_ref, e.event_ref),
                    delivered_at = coalesce(c.delivered_at, e.delivered_at),
                    adopted = coalesce(c.adopted, e.adopted),
                    blind_resends = e.blind_resends + c.blind_resends,
                    sends = e.sends + c.sends,
                    last_error = CASE c.last_error WHEN 'keep' THEN e.last_error
                                 ELSE c.error END,
                    lease_owner = NULL,
                    lease_expires_at = NULL,
                    updated_at = $1
                FROM c
                WHERE e.id = coalesce(c.id, (SELECT id FROM {t} WHERE key = c.key))
                  AND e.key = c.key AND e.attempt = c.attempt
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

    def claim_with_holds(self, limit: int) -> str:
        """The claim statement for ``limit`` entries ($1 now, $2 owner, $3 lease seconds).

        The limit is written into the text (an int, never outside input) rather than passed as
        a parameter: PostgreSQL costs a generic plan's ``LIMIT $n`` as a tenth of the rows the
        scan may return, so with a large backlog the cached generic plan looks dearer than a
        fresh one and every claim is planned anew (about half a millisecond of server CPU, the
        one cost of a claim that grew with the backlog). With the limit known, the generic
        plan costs the same at any size and is used from the sixth claim on. A flusher asks
        for at most its concurrency, so only a few texts are ever prepared. A limit of 0 or
        less claims nothing but still reads the holds and the moved mark.
        """
        limit = max(0, int(limit))
        text = self._claims.get(limit)
        if text is None:
            text = self._claims[limit] = self._claim_with_holds.replace("{limit}", str(limit))
        return text


def claim_result(rows: Sequence[Any]) -> tuple[list[Claimed], list[Hold], str | None]:
    """The claimed entries (in claim order), the holds (by name) and the moved mark, if set,
    from the rows of ``claim_with_holds`` (in the order it sorts them)."""
    claimed: list[Claimed] = []
    holds: list[Hold] = []
    moved = None
    for r in rows:
        kind = r[0]
        if kind == "c":
            claimed.append(claimed_from_row(r))
        elif kind == "h":
            holds.append(Hold(name=r[12], until=r[13], reason=r[14]))
        else:
            moved = r[14]
    return claimed, holds, moved


# Read once per claimed row: module constants, as on Python 3.11 an enum member read through its
# class is a call of Python code.
_SENDING, _SEND_MODE, _RECONCILE_MODE = State.SENDING, ClaimMode.SEND, ClaimMode.RECONCILE


def claimed_from_row(r: Any) -> Claimed:
    """A claimed row of ``claim_with_holds``, read by position (cheaper than by name)."""
    _, key, attempt, state, payload, event_type, channel_id, reference, sends, first, doubt = r[:11]
    return Claimed(
        key=key,
        attempt=attempt,
        entry_id=r[16],
        mode=_SEND_MODE if state == _SENDING else _RECONCILE_MODE,
        payload=payload,
        event_type=event_type,
        channel_id=channel_id,
        transaction_reference=reference,
        sends=sends,
        first_sent_at=first,
        in_doubt_since=doubt,
        lease_expires_at=r[11],
        created_at=r[15],
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


# The fields of one completion in the JSON of ``finish``, in the order finish_args lists them.
_FINISH_FIELDS = (
    "idx",
    "id",
    "key",
    "attempt",
    "to_from_sending",
    "to_from_in_doubt",
    "due_at",
    "since",
    "event_ref",
    "delivered_at",
    "adopted",
    "blind_resends",
    "sends",
    "last_error",
    "error",
)
_RECORD_FIELDS = (
    "r_attempt",
    "r_kind",
    "r_started_at",
    "r_duration_ms",
    "r_outcome",
    "r_http_status",
    "r_error",
)


def finish_args(batch: Sequence[Completion], now: float) -> list[str]:
    """The parameter $2 of ``finish``: the batch as one JSON array of objects.

    One text parameter instead of twenty arrays: asyncpg checks every element of an array
    parameter against abstract base classes before it encodes it, which cost the client about
    as much as the rest of the statement. Floats are written as ``repr`` writes them, so they
    come back bit for bit; a non-finite one (JSON has no number for it) goes as text, which
    ``float8`` reads the same way.
    """
    rows: list[dict[str, Any]] = []
    for i, c in enumerate(batch, 1):
        e = effect_of(c.outcome, c.record, now)
        row = dict(
            zip(
                _FINISH_FIELDS,
                (
                    i,
                    c.entry_id,
                    c.key,
                    c.attempt,
                    e.to_from_sending,
                    e.to_from_in_doubt,
                    _number(e.due_at),
                    e.in_doubt_since,
                    e.event_ref,
                    _number(e.delivered_at),
                    e.adopted,
                    e.blind_resends,
                    e.sends,
                    e.last_error,
                    e.error,
                ),
                strict=True,
            )
        )
        r = c.record
        if r is not None:  # without one the r_ fields are missing, so NULL
            row.update(
                zip(
                    _RECORD_FIELDS,
                    (
                        r.attempt,
                        str(r.kind),
                        _number(r.started_at),
                        _number(r.duration_ms),
                        r.outcome,
                        r.http_status,
                        r.error,
                    ),
                    strict=True,
                )
            )
        rows.append(row)
    return [jsonenc.encode_values(rows)]


def _number(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else repr(value)
