"""The PostgreSQL outbox backend (``pip install 'etrusted-kit[postgres]'``).

For fleets: many flusher processes share one outbox. Claims use ``FOR UPDATE SKIP LOCKED`` over
partial indexes, so claimers never wait on each other and a claim costs the same with ten or a
million entries waiting; expired leases are recovered inside the claim itself, so no sweeper has
to run. Enqueues ``NOTIFY`` a channel derived from the schema in the same transaction, which
:meth:`PostgresStorage.listen` turns into wake-ups for flushers in other processes.

Times are stored as ``double precision`` epoch seconds, the same floats as
:mod:`kit.outbox.types`: they round-trip exactly (``timestamptz`` keeps only microseconds, so a
migrated outbox would no longer compare equal), and every backend sorts them the same way.

asyncpg is optional: this module imports without it, and constructing :class:`PostgresStorage`
then raises :class:`~kit.errors.ConfigError` naming the extra to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from kit.errors import (
    ConfigError,
    KitError,
    MigrationError,
    OutboxError,
    StorageError,
    StorageUnavailableError,
)
from kit.outbox.memory import initial_due_at, payload_sha256
from kit.outbox.migrations import load_migrations
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Claimed,
    ClaimMode,
    Completion,
    Dead,
    Delivered,
    EnqueueResult,
    Entry,
    EntryRecord,
    ForgetResult,
    Hold,
    InDoubt,
    NewEntry,
    OutboxStats,
    Release,
    Resend,
    Retry,
    State,
)

try:
    import asyncpg as _asyncpg
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    _asyncpg = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'etrusted-kit[postgres]'"
# Room for the "_wake" suffix inside PostgreSQL's 63-byte identifier limit (the channel name).
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,57}$")
_ENTRY_FIELDS = tuple(attrs.fields_dict(Entry))  # the columns carry the attribute names
_ENTRY_COLUMNS = ", ".join(_ENTRY_FIELDS)
_ATTEMPT_COLUMNS = "attempt, kind, started_at, duration_ms, outcome, http_status, error"
# Server answers that mean "the database is not reachable right now" rather than "bad query".
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")  # connection, resources, operator/timeout

# Listener reconnect backoff: first retry at once, then doubling with jitter up to the cap.
_LISTEN_BACKOFF_START = 0.1
_LISTEN_BACKOFF_CAP = 5.0
_LISTEN_HEALTH_INTERVAL = 30.0


def _redact_url(dsn: str) -> str:
    """The DSN without its password (in the netloc or as a ``password=`` query parameter)."""
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{hostport}" if user else hostport
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _entry(row: Any) -> Entry:
    values = {name: row[name] for name in _ENTRY_FIELDS}
    values["state"] = State(values["state"])
    return Entry(**values)


def _attempt(row: Any) -> AttemptRecord:
    return AttemptRecord(
        attempt=row["attempt"],
        kind=AttemptKind(row["kind"]),
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        outcome=row["outcome"],
        http_status=row["http_status"],
        error=row["error"],
    )


class _Sql:
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
                ORDER BY n.ord
                ON CONFLICT (key) DO NOTHING
                RETURNING key
            )
            SELECT (SELECT coalesce(array_agg(key), '{{}}') FROM ins) AS keys,
                   CASE WHEN EXISTS (SELECT 1 FROM ins)
                        THEN (SELECT true FROM pg_notify($10, '')) ELSE false END AS notified
        """
        self.cancel = (
            f"UPDATE {t} SET state = 'cancelled', updated_at = $2"
            " WHERE key = $1 AND state = 'pending' RETURNING id"
        )
        self.exists = f"SELECT 1 FROM {t} WHERE key = $1"
        # Three index scans, each stopping after $2 unlocked rows; the union is re-ordered and
        # cut to $2 (rows locked but not picked are released when the statement commits).
        self.claim = f"""
            WITH p AS (
                SELECT id, due_at AS k FROM {t}
                WHERE state = 'pending' AND due_at <= $1
                ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
            ), s AS (
                SELECT id, lease_expires_at AS k FROM {t}
                WHERE state = 'sending' AND lease_expires_at <= $1
                ORDER BY lease_expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
            ), d AS (
                SELECT id, due_at AS k FROM {t}
                WHERE state = 'in_doubt' AND due_at <= $1
                  AND (lease_expires_at IS NULL OR lease_expires_at <= $1)
                ORDER BY due_at, id LIMIT $2 FOR UPDATE SKIP LOCKED
            ), pick AS (
                SELECT id, k FROM (SELECT * FROM p UNION ALL SELECT * FROM s
                                   UNION ALL SELECT * FROM d) AS u
                ORDER BY k, id LIMIT $2
            )
            UPDATE {t} AS e SET
                state = CASE WHEN e.state = 'pending' THEN 'sending' ELSE 'in_doubt' END,
                attempt = e.attempt + 1,
                lease_owner = $3,
                lease_expires_at = $1 + $4::float8,
                first_sent_at = CASE WHEN e.state = 'pending'
                                     THEN coalesce(e.first_sent_at, $1) ELSE e.first_sent_at END,
                in_doubt_since = CASE WHEN e.state = 'pending' THEN e.in_doubt_since
                                      ELSE coalesce(e.in_doubt_since, $1) END,
                due_at = CASE WHEN e.state = 'sending' THEN e.lease_expires_at ELSE e.due_at END,
                updated_at = $1
            FROM pick WHERE e.id = pick.id
            RETURNING e.id, e.key, e.attempt, e.state, e.payload, e.event_type, e.channel_id,
                      e.transaction_reference, e.sends, e.first_sent_at, e.in_doubt_since,
                      e.lease_expires_at, pick.k
        """
        # One round of completions (keys unique within it), applied and logged in one statement.
        self.finish = f"""
            WITH c AS (
                SELECT * FROM unnest($2::text[], $3::int[], $4::text[], $5::float8[], $6::text[],
                                     $7::text[], $8::bool[], $9::int[], $10::int[], $11::text[],
                                     $12::float8[], $13::float8[], $14::text[], $15::int[],
                                     $16::text[])
                    WITH ORDINALITY AS c(key, attempt, outcome, due_at, error, event_ref,
                                         adopted, sends_inc, r_attempt, r_kind, r_started_at,
                                         r_duration_ms, r_outcome, r_http_status, r_error, idx)
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
            f"UPDATE {t} SET state = 'cancelled', payload = NULL, updated_at = $2"
            " WHERE state = 'dead' AND ($1::text[] IS NULL OR key = ANY($1::text[]))"
        )
        self.purge = (
            f"UPDATE {t} SET payload = NULL WHERE payload IS NOT NULL"
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


class PostgresStorage:
    """The outbox in a PostgreSQL schema, shared safely by any number of flusher processes.

    ``pool``: an asyncpg pool owned by the application; it is used as is and never closed here.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "etrusted_kit",
        pool: asyncpg.Pool[Any] | None = None,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 30.0,
    ) -> None:
        if _asyncpg is None:
            raise ConfigError(f"the PostgreSQL outbox needs asyncpg: {INSTALL_HINT}")
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise ConfigError("a PostgreSQL outbox URL starts with postgresql:// or postgres://")
        if not _SCHEMA_RE.match(schema):
            raise ConfigError(
                f"invalid schema name {schema!r}: letters, digits and _, not starting with a"
                " digit, at most 58 characters"
            )
        if not 0 < min_size <= max_size:
            raise ConfigError(f"need 0 < min_size <= max_size, got {min_size}, {max_size}")
        if command_timeout <= 0:
            raise ConfigError(f"command_timeout must be > 0, got {command_timeout!r}")
        self._dsn = dsn
        self._url = _redact_url(dsn)
        self._schema = schema
        self._channel = f"{schema}_wake"
        self._sql = _Sql(schema)
        self._pool: asyncpg.Pool[Any] | None = pool
        self._own_pool = pool is None
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._closed = False
        self._listeners: set[_Listener] = set()

    def __repr__(self) -> str:
        return f"PostgresStorage({self._url!r}, schema={self._schema!r})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def channel(self) -> str:
        """The NOTIFY channel that enqueues signal (one per schema)."""
        return self._channel

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self, *, migrate: bool = True) -> None:
        async with self._open_lock:
            if self._closed:
                raise StorageError(f"{self!r} is closed; create a new storage object")
            if self._opened:
                return
            if self._own_pool:
                with self._translate("connect"):
                    self._pool = await _asyncpg.create_pool(
                        self._dsn,
                        min_size=self._min_size,
                        max_size=self._max_size,
                        command_timeout=self._command_timeout,
                        timeout=self._command_timeout,
                    )
            self._opened = True
            try:
                if migrate:
                    await self._migrate()
                else:
                    await self._refuse_newer_schema()
            except BaseException:
                self._opened = False
                pool = self._pool
                if self._own_pool and pool is not None:
                    self._pool = None
                    pool.terminate()
                raise
        log.info(
            "outbox opened at %s (schema %s)",
            self._url,
            self._schema,
            extra={"action": "outbox.open", "backend": "postgres"},
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in list(self._listeners):
            await listener.aclose()
        pool, self._pool = self._pool, None
        if pool is not None and self._own_pool:
            with self._translate("close"):
                await pool.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def migrate(self) -> int:
        """Bring the schema to the newest version under a transaction-scoped advisory lock.

        Processes starting together queue on the lock; the later ones find nothing to do.
        """
        return await self._migrate()

    async def _migrate(self) -> int:
        migrations = load_migrations("postgres")
        latest = max((m.version for m in migrations), default=0)
        with self._translate("migrate", failure=MigrationError):
            async with self._conn() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"etrusted_kit.migrate.{self._schema}",
                )
                await conn.execute(self._sql.create_schema)
                await conn.execute(self._sql.create_version)
                current: int = await conn.fetchval(self._sql.version)
                if current > latest:
                    raise self._newer_schema(current, latest)
                await conn.execute(self._sql.search_path)
                for m in migrations:
                    if m.version <= current:
                        continue
                    await conn.execute(m.sql)
                    await conn.execute(self._sql.record_version, m.version, m.name)
                    log.info(
                        "applied outbox migration %04d_%s",
                        m.version,
                        m.name,
                        extra={"action": "outbox.migrate", "schema": self._schema},
                    )
                return max(current, latest)

    async def _refuse_newer_schema(self) -> None:
        latest = max((m.version for m in load_migrations("postgres")), default=0)
        with self._translate("open"):
            async with self._conn() as conn:
                if await conn.fetchval(self._sql.has_version, self._sql.version_table) is None:
                    return
                current: int = await conn.fetchval(self._sql.version)
        if current > latest:
            raise self._newer_schema(current, latest)

    def _newer_schema(self, current: int, latest: int) -> MigrationError:
        return MigrationError(
            f"outbox schema {self._schema!r} at {self._url} is at version {current},"
            f" newer than this kit knows ({latest}); upgrade etrusted-kit"
        )

    # -- writing --------------------------------------------------------------------------

    async def enqueue(self, entries: Sequence[NewEntry], *, now: float) -> list[EnqueueResult]:
        if not entries:
            return []
        with self._translate("enqueue"):
            async with self._conn() as conn:
                return await self._enqueue_on(conn, entries, now)

    async def enqueue_in(
        self, connection: Any, entries: Sequence[NewEntry], *, now: float
    ) -> list[EnqueueResult]:
        """Enqueue on the caller's ``asyncpg`` connection, inside its open transaction.

        The NOTIFY rides in the same transaction, so listeners wake only after the caller's
        COMMIT, and never after a ROLLBACK. This object need not be open.
        """
        if not isinstance(connection, _asyncpg.Connection | _asyncpg.pool.PoolConnectionProxy):
            raise OutboxError(
                f"enqueue_in needs an asyncpg connection, got {type(connection).__name__}"
            )
        if not connection.is_in_transaction():
            raise OutboxError(
                "enqueue_in needs a connection inside an open transaction"
                " (async with connection.transaction(): ...)"
            )
        if not entries:
            return []
        with self._translate("enqueue_in"):
            return await self._enqueue_on(connection, entries, now)

    async def _enqueue_on(
        self, conn: Any, entries: Sequence[NewEntry], now: float
    ) -> list[EnqueueResult]:
        first: dict[str, NewEntry] = {}
        for entry in entries:
            first.setdefault(entry.key, entry)
        rows = list(first.values())
        record = await conn.fetchrow(  # returns exactly one row
            self._sql.enqueue,
            now,
            [e.key for e in rows],
            [e.event_type for e in rows],
            [e.channel_id for e in rows],
            [e.transaction_reference for e in rows],
            [e.payload for e in rows],
            [payload_sha256(e.payload) for e in rows],
            [e.email_hash for e in rows],
            [initial_due_at(e, now) for e in rows],
            self._channel,
        )
        inserted = set(record["keys"])
        results: list[EnqueueResult] = []
        for entry in entries:
            fresh = entry.key in inserted
            inserted.discard(entry.key)  # later copies of the same key are duplicates
            results.append(EnqueueResult(entry.key, duplicate=not fresh))
        return results

    async def cancel(self, key: str, *, now: float) -> bool:
        with self._translate("cancel"):
            async with self._conn() as conn:
                if await conn.fetchval(self._sql.cancel, key, now) is not None:
                    return True
                if await conn.fetchval(self._sql.exists, key) is None:
                    raise OutboxError(f"unknown outbox key {key!r}")
                return False

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[Claimed]:
        if limit <= 0:
            return []
        with self._translate("claim"):
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.claim, now, limit, owner, lease_seconds)
        rows = sorted(rows, key=lambda r: (r["k"], r["id"]))
        return [
            Claimed(
                key=r["key"],
                attempt=r["attempt"],
                mode=ClaimMode.SEND if r["state"] == State.SENDING else ClaimMode.RECONCILE,
                payload=r["payload"],
                event_type=r["event_type"],
                channel_id=r["channel_id"],
                transaction_reference=r["transaction_reference"],
                sends=r["sends"],
                first_sent_at=r["first_sent_at"],
                in_doubt_since=r["in_doubt_since"],
                lease_expires_at=r["lease_expires_at"],
            )
            for r in rows
        ]

    async def finish(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        results = [False] * len(completions)
        if not completions:
            return results
        # A key may end twice in one call (it should not, but then the second sees the first's
        # effect, as if applied one by one): split into rounds with unique keys.
        rounds: list[list[int]] = []
        depth: dict[str, int] = {}
        for i, c in enumerate(completions):
            n = depth.get(c.key, 0)
            depth[c.key] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(i)
        with self._translate("finish"):
            async with self._conn() as conn, conn.transaction():
                for indices in rounds:
                    batch = [completions[i] for i in indices]
                    done = await conn.fetch(self._sql.finish, now, *_finish_args(batch))
                    for row in done:
                        results[indices[row["idx"] - 1]] = True
        return results

    # -- operators ------------------------------------------------------------------------

    async def retry_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        return await self._count("retry_dead", self._sql.retry_dead, _keys(keys), now)

    async def drop_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        return await self._count("drop_dead", self._sql.drop_dead, _keys(keys), now)

    async def purge(self, *, before: float, now: float) -> int:
        return await self._count("purge", self._sql.purge, before)

    async def forget_customer(self, email_hash: str, *, now: float) -> ForgetResult:
        with self._translate("forget_customer"):
            async with self._conn() as conn:
                row = _one(await conn.fetchrow(self._sql.forget, email_hash, now))
        return ForgetResult(purged=row["purged"], skipped_in_flight=row["skipped"])

    # -- holds ----------------------------------------------------------------------------

    async def set_hold(self, hold: Hold) -> None:
        with self._translate("set_hold"):
            async with self._conn() as conn:
                await conn.execute(self._sql.set_hold, hold.name, hold.until, hold.reason)

    async def clear_hold(self, name: str) -> None:
        with self._translate("clear_hold"):
            async with self._conn() as conn:
                await conn.execute(self._sql.clear_hold, name)

    async def holds(self, *, now: float) -> list[Hold]:
        with self._translate("holds"):
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.holds, now)
        return [Hold(name=r["name"], until=r["until"], reason=r["reason"]) for r in rows]

    # -- reading --------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        with self._translate("get"):
            async with self._conn() as conn:
                row = await conn.fetchrow(self._sql.get, key)
        return None if row is None else _entry(row)

    async def entries(
        self, *, state: State | None = None, limit: int = 100, after_id: int = 0
    ) -> list[Entry]:
        if limit <= 0:
            return []
        state_value = None if state is None else State(state).value
        with self._translate("entries"):
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.entries, after_id, state_value, limit)
        return [_entry(r) for r in rows]

    async def attempts(self, key: str) -> list[AttemptRecord]:
        with self._translate("attempts"):
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.attempts, key)
        return [_attempt(r) for r in rows]

    async def stats(self) -> OutboxStats:
        with self._translate("stats"):
            async with self._conn() as conn:
                row = _one(await conn.fetchrow(self._sql.stats))
        counts = dict.fromkeys(State, 0)
        for state, n in zip(row["states"], row["counts"], strict=True):
            counts[State(state)] = n
        return OutboxStats(
            counts=counts,
            oldest_pending_created_at=row["oldest"],
            last_error=row["last_error"],
            blind_resends=row["blind_resends"],
            adopted=row["adopted"],
        )

    # -- moving an outbox between backends ------------------------------------------------

    async def dump(self, *, batch: int = 500) -> AsyncIterator[list[EntryRecord]]:
        after, batch = 0, max(1, batch)
        while True:
            with self._translate("dump"):
                # One snapshot per batch, so an entry and its log always agree.
                async with (
                    self._conn() as conn,
                    conn.transaction(isolation="repeatable_read", readonly=True),
                ):
                    rows = await conn.fetch(self._sql.entries, after, None, batch)
                    if not rows:
                        return
                    log_rows = await conn.fetch(self._sql.attempts_of, [r["id"] for r in rows])
            logs: dict[int, list[AttemptRecord]] = {}
            for r in log_rows:
                logs.setdefault(r["entry_id"], []).append(_attempt(r))
            yield [
                EntryRecord(entry=_entry(r), attempts=tuple(logs.get(r["id"], ()))) for r in rows
            ]
            after = rows[-1]["id"]

    async def load(self, records: Sequence[EntryRecord]) -> int:
        first: dict[str, EntryRecord] = {}
        for record in records:
            first.setdefault(record.entry.key, record)
        rows = [r.entry for r in first.values()]
        if not rows:
            return 0
        with self._translate("load"):
            async with self._conn() as conn, conn.transaction():
                inserted = {r["key"] for r in await conn.fetch(self._sql.load, *_load_args(rows))}
                logs = [
                    (key, a) for key, rec in first.items() if key in inserted for a in rec.attempts
                ]
                if logs:
                    await conn.execute(self._sql.load_attempts, *_attempt_args(logs))
        return len(inserted)

    # -- wake-ups -------------------------------------------------------------------------

    def listen(self) -> _Listener:
        """Wake-ups on a dedicated connection; see :class:`_Listener`. Close with ``aclose()``."""
        if self._closed:
            raise StorageError(f"{self!r} is closed")
        listener = _Listener(
            connect=self._listen_connect,
            channel=self._channel,
            url=self._url,
            on_close=self._listeners.discard,
        )
        self._listeners.add(listener)
        return listener

    async def _listen_connect(self) -> asyncpg.Connection[Any]:
        return await _asyncpg.connect(
            self._dsn,
            timeout=self._command_timeout,
            command_timeout=self._command_timeout,
            server_settings={"application_name": "etrusted-kit listener"},
        )

    # -- plumbing -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[Any]]:
        pool = self._pool
        if pool is None or not self._opened:
            state = "closed" if self._closed else "not open (call open() or use async with)"
            raise StorageError(f"{self!r} is {state}")
        async with pool.acquire(timeout=self._command_timeout) as conn:
            yield conn

    @contextlib.contextmanager
    def _translate(
        self, operation: str, *, failure: type[StorageError] = StorageError
    ) -> Iterator[None]:
        """Turn driver errors into :mod:`kit.errors`, naming the operation and the safe URL.

        ``failure`` is raised for a database that answered with an error; one that cannot be
        reached is always :class:`StorageUnavailableError`.
        """
        try:
            yield
        except KitError:
            raise
        except OSError as exc:  # refused, unreachable, TimeoutError (asyncio's included)
            raise StorageUnavailableError(self._message(operation, exc)) from exc
        except _asyncpg.PostgresError as exc:
            sqlstate = str(getattr(exc, "sqlstate", "") or "")
            if isinstance(exc, _asyncpg.PostgresConnectionError) or sqlstate.startswith(
                _UNAVAILABLE_SQLSTATE_CLASSES
            ):
                raise StorageUnavailableError(self._message(operation, exc)) from exc
            raise failure(self._message(operation, exc)) from exc
        except _asyncpg.ClientConfigurationError as exc:
            raise ConfigError(self._message(operation, exc)) from exc
        except (_asyncpg.InterfaceError, _asyncpg.exceptions.InternalClientError) as exc:
            raise failure(self._message(operation, exc)) from exc

    def _message(self, operation: str, exc: BaseException) -> str:
        return f"PostgreSQL outbox {operation} failed ({self._url}): {type(exc).__name__}: {exc}"

    async def _count(self, operation: str, sql: str, *args: Any) -> int:
        with self._translate(operation):
            async with self._conn() as conn:
                status: str = await conn.execute(sql, *args)
        return int(status.rsplit(" ", 1)[-1])


def _one(row: Any) -> Any:
    if row is None:  # pragma: no cover - aggregate queries always return one row
        raise StorageError("the database returned no row for an aggregate query")
    return row


def _keys(keys: Sequence[str] | None) -> list[str] | None:
    return None if keys is None else list(keys)


def _finish_args(batch: Sequence[Completion]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(15)]
    for c in batch:
        o = c.outcome
        due = error = ref = None
        adopted = False
        if isinstance(o, Delivered):
            kind, ref, adopted = "delivered", o.event_ref, o.adopted
        elif isinstance(o, Retry):
            kind, due, error = "retry", o.due_at, o.error
        elif isinstance(o, InDoubt):
            kind, due, error = "in_doubt", o.due_at, o.error
        elif isinstance(o, Dead):
            kind, error = "dead", o.reason
        elif isinstance(o, Resend):
            kind, due, error = "resend", o.due_at, o.reason
        elif isinstance(o, Release):
            kind = "release"
        else:  # pragma: no cover - the Outcome union is closed
            raise OutboxError(f"unknown outcome {o!r}")
        r = c.record
        values = [
            c.key,
            c.attempt,
            kind,
            due,
            error,
            ref,
            adopted,
            1 if r is not None and r.kind == AttemptKind.SEND else 0,
            None if r is None else r.attempt,
            None if r is None else str(r.kind),
            None if r is None else r.started_at,
            None if r is None else r.duration_ms,
            None if r is None else r.outcome,
            None if r is None else r.http_status,
            None if r is None else r.error,
        ]
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols


def _load_args(rows: Sequence[Entry]) -> list[list[Any]]:
    cols = [[getattr(e, name) for e in rows] for name in _ENTRY_FIELDS if name != "id"]
    cols[1] = [str(state) for state in cols[1]]
    return cols


def _attempt_args(logs: Sequence[tuple[str, AttemptRecord]]) -> list[list[Any]]:
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


class _Listener:
    """Wake-ups from PostgreSQL NOTIFY, as an async iterator that never raises into its user.

    It yields once as soon as it listens and again after every reconnect (notifications sent
    while it was not listening are lost, so the user should look for work), and once per burst
    of notifications that arrived since the previous yield. A dropped connection is logged and
    re-established with backoff. Cancelling a pending ``__anext__`` (e.g. ``wait_for`` with a
    poll timeout) is safe: the connection lives in a background task. ``aclose()`` ends it.
    """

    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[asyncpg.Connection[Any]]],
        channel: str,
        url: str,
        on_close: Callable[[_Listener], None],
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._url = url
        self._on_close = on_close
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._failures = 0  # consecutive failures, for the backoff
        self.connects = 0  # how many times a listening connection was established
        self.received = 0  # notifications received (several may make one wake-up)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> None:
        if self._closed:
            raise StopAsyncIteration
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-listen-{self._channel}")
        await self._wake.wait()
        if self._closed:
            raise StopAsyncIteration
        self._wake.clear()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()  # release a pending __anext__, which then stops
        self._on_close(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _notified(self, *_: object) -> None:
        self.received += 1
        self._wake.set()

    async def _run(self) -> None:
        while not self._closed:
            if self._failures > 1:  # the first retry after a failure goes at once
                delay = _LISTEN_BACKOFF_START * 2 ** (self._failures - 2)
                await asyncio.sleep(min(_LISTEN_BACKOFF_CAP, delay) * random.uniform(0.5, 1.0))
            try:
                conn = await self._connect()
            except Exception as exc:  # noqa: BLE001 - a hint only: log, back off, try again
                self._failed("cannot connect to", "outbox.listen.connect_failed", exc)
                continue
            try:
                await self._listen_on(conn)
            except Exception as exc:  # noqa: BLE001 - same: never raise into the flusher
                self._failed("lost its connection to", "outbox.listen.lost", exc)
            finally:
                await _close_quietly(conn)

    def _failed(self, what: str, action: str, exc: Exception) -> None:
        self._failures += 1
        log.warning(
            "outbox listener %s %s: %s: %s",
            what,
            self._url,
            type(exc).__name__,
            exc,
            extra={"action": action, "failures": self._failures},
        )

    async def _listen_on(self, conn: asyncpg.Connection[Any]) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(self._channel, self._notified)
        self._failures = 0
        self.connects += 1
        log.info(
            "outbox listener listening on %s",
            self._url,
            extra={"action": "outbox.listen.connected", "connects": self.connects},
        )
        self._wake.set()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), _LISTEN_HEALTH_INTERVAL)
            if lost.is_set() or conn.is_closed():
                raise StorageUnavailableError("the listening connection was terminated")
            await conn.execute("SELECT 1")  # a silently dead socket surfaces here


async def _close_quietly(conn: asyncpg.Connection[Any]) -> None:
    """Close gracefully if the server still answers, else just drop the socket."""
    if conn.is_closed():
        return
    try:
        await conn.close(timeout=1.0)
    except asyncio.CancelledError:
        conn.terminate()
        raise
    except Exception:  # noqa: BLE001 - closing a broken connection may fail in any way
        conn.terminate()


__all__ = ["PostgresStorage"]
