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
import functools
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kit.errors import (
    ConfigError,
    KitError,
    MigrationError,
    OutboxError,
    StorageError,
    StorageUnavailableError,
)
from kit.outbox._pg_lane import Lane
from kit.outbox._pg_listen import Listener
from kit.outbox._pg_sql import (
    COPY_COLUMNS,
    KEY_CONSTRAINT,
    Sql,
    attempt_args,
    attempt_from_row,
    claimed_from_row,
    copy_records,
    enqueue_args,
    enqueue_one_args,
    entry_from_row,
    finish_args,
    finish_rounds,
    first_of_each_key,
    keys_arg,
    load_args,
    stats_from_row,
)
from kit.outbox.migrations import load_migrations
from kit.outbox.types import (
    AttemptRecord,
    Claimed,
    Completion,
    EnqueueResult,
    Entry,
    EntryRecord,
    ForgetResult,
    Hold,
    NewEntry,
    OutboxStats,
    State,
    moved_error,
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
# Server answers that mean "the database is not reachable right now" rather than "bad query".
# Connection, resources, operator/timeout; serialization failure and deadlock (40001, 40P01)
# and lock not available (55P03) pass too: retrying later is the right answer to all of them.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "40001", "40P01", "55P03")
# From this many entries on, enqueue() writes with COPY: four more round trips, less work per
# row. Measured here, COPY costs more CPU per entry below about 64 entries and less above 128.
_COPY_MIN_ENTRIES = 100


_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def _redact_url(dsn: str) -> str:
    """The DSN without its password (in the user info, or as a query parameter).

    The user info is cut at the *last* ``@`` before urlsplit sees the URL: a password with an
    unencoded ``/``, ``#`` or ``?`` would otherwise end urlsplit's netloc early and stay in.
    """
    scheme, sep, rest = dsn.partition("://")
    if sep:
        userinfo, at, hostpart = rest.rpartition("@")
        if at:
            user = userinfo.split(":", 1)[0]
            rest = f"{user}@{hostpart}" if user else hostpart
    parts = urlsplit(f"{scheme}{sep}{rest}")
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in _SECRET_PARAMETERS]
    )
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


@contextlib.contextmanager
def _unparsable_url(safe_url: str) -> Iterator[None]:
    """asyncpg's DSN parser raises a plain ValueError whose text may quote the password."""
    try:
        yield
    except ValueError as exc:
        if isinstance(exc, _asyncpg.PostgresError | _asyncpg.InterfaceError):
            raise
        raise ConfigError(
            f"cannot parse the PostgreSQL URL {safe_url}: check the port, and percent-encode"
            " special characters in the user name and password"
        ) from None


class PostgresStorage:
    """The outbox in a PostgreSQL schema, shared safely by any number of flusher processes.

    ``pool``: an asyncpg pool owned by the application; it is used as is and never closed here.
    Without one, the storage makes its own pool, and one-entry enqueues use one more connection
    beside it (opened on first use, see :class:`~kit.outbox._pg_lane.Lane`), as ``listen()``
    does.
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
        if schema != "etrusted_kit":  # so that status/logs tell schemas of one database apart
            self._url += ("&" if "?" in self._url else "?") + f"schema={schema}"
        self._channel = f"{schema}_wake"
        self._sql = Sql(schema)
        self._pool: asyncpg.Pool[Any] | None = pool
        self._own_pool = pool is None
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._open_lock = asyncio.Lock()
        self._opened = False
        self._closed = False
        self._listeners: set[Listener] = set()
        self._lane: Lane | None = None  # one-entry enqueues; only beside a pool of our own
        self._claims: Lane | None = None  # the flusher's claims and holds; likewise
        self._results: Lane | None = None  # the flusher's results, which run beside claims

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
                with self._translate("connect"), _unparsable_url(self._url):
                    self._pool = await _asyncpg.create_pool(
                        self._dsn,
                        min_size=self._min_size,
                        max_size=self._max_size,
                        command_timeout=self._command_timeout,
                        timeout=self._command_timeout,
                        reset=_keep_session,
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
            if self._own_pool:
                self._lane = self._new_lane("enqueue")
                self._claims = self._new_lane("claims")
                self._results = self._new_lane("results")
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
        lanes = (self._lane, self._claims, self._results)
        self._lane = self._claims = self._results = None
        for lane in lanes:
            if lane is not None:
                with self._translate("close"):
                    await lane.aclose()
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

    async def schema_version(self) -> int:
        """The schema version in force; 0 when this schema holds no outbox (yet)."""
        with self._translate("open"):
            async with self._conn() as conn:
                if await conn.fetchval(self._sql.has_version, self._sql.version_table) is None:
                    return 0
                current: int = await conn.fetchval(self._sql.version)
        return current

    async def _refuse_newer_schema(self) -> None:
        latest = max((m.version for m in load_migrations("postgres")), default=0)
        current = await self.schema_version()
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
            if len(entries) == 1:
                async with self._lane_or_pool(self._lane) as conn:
                    return await self._enqueue_on(conn, entries, now)
            async with self._conn() as conn:
                if len(entries) >= _COPY_MIN_ENTRIES:
                    return await self._enqueue_copy(conn, entries, now)
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
        if len(entries) == 1:
            (entry,) = entries
            row = await conn.fetchrow(
                self._sql.enqueue_one, now, *enqueue_one_args(entry, now), self._channel
            )
            if row is None:
                await self._refuse_if_moved(conn)
            return [EnqueueResult(entry.key, duplicate=row is None)]
        record = await conn.fetchrow(  # returns exactly one row
            self._sql.enqueue, now, *enqueue_args(entries, now), self._channel
        )
        inserted = set(record["keys"])
        if len(inserted) < len(entries):
            await self._refuse_if_moved(conn)
        return _results(entries, inserted)

    async def wait_for_writers(self) -> None:
        """Return once every transaction writing entries when called has ended.

        migrate-outbox calls it after setting its hold: an enqueue that started before the
        hold (an ``enqueue_in`` inside an application's long transaction, say) saw no hold and
        could otherwise commit after the copy had read the table.
        """
        with self._translate("wait_for_writers"):
            async with self._conn() as conn, conn.transaction():
                await conn.execute(self._sql.wait_for_writers)

    async def _refuse_if_moved(self, conn: Any) -> None:
        reason = await conn.fetchval(self._sql.moved)
        if reason is not None:
            raise moved_error(self._url, reason)

    async def _enqueue_copy(
        self, conn: Any, entries: Sequence[NewEntry], now: float
    ) -> list[EnqueueResult]:
        """A batch in its own transaction: look up the known keys, COPY the rest.

        COPY cannot skip a conflicting row, so a key that a concurrent enqueue commits between
        the lookup and the COPY fails it; the batch is then written again by the statement with
        ``ON CONFLICT``, which settles such races row by row.
        """
        await self._refuse_if_moved(conn)
        rows = first_of_each_key(entries)
        known = set(await conn.fetchval(self._sql.known_keys, [e.key for e in rows]))
        fresh = [e for e in rows if e.key not in known]
        if fresh:
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "entries",
                        schema_name=self._schema,
                        columns=COPY_COLUMNS,
                        records=copy_records(fresh, now),
                    )
                    await conn.execute(self._sql.notify, self._channel)
            except _asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != KEY_CONSTRAINT:
                    raise
                return await self._enqueue_on(conn, entries, now)
        return _results(entries, {e.key for e in fresh})

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
            async with self._lane_or_pool(self._claims) as conn:
                rows = await conn.fetch(self._sql.claim(limit), now, owner, lease_seconds)
        return [claimed_from_row(r) for r in rows]  # in claim order (the statement sorts)

    async def finish(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        results = [False] * len(completions)
        if not completions:
            return results
        rounds = finish_rounds(completions)
        with self._translate("finish"):
            async with self._lane_or_pool(self._results) as conn:
                if len(rounds) == 1:  # the usual case: one statement, atomic without BEGIN/COMMIT
                    await self._finish_round(conn, completions, rounds[0], results, now)
                    return results
                async with conn.transaction():
                    for indices in rounds:
                        await self._finish_round(conn, completions, indices, results, now)
        return results

    async def _finish_round(
        self,
        conn: Any,
        completions: Sequence[Completion],
        indices: list[int],
        results: list[bool],
        now: float,
    ) -> None:
        """One statement for completions with unique keys; marks the applied ones in results."""
        batch = [completions[i] for i in indices]
        for row in await conn.fetch(self._sql.finish, now, *finish_args(batch)):
            results[indices[row["idx"] - 1]] = True

    # -- operators ------------------------------------------------------------------------

    async def retry_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        return await self._count("retry_dead", self._sql.retry_dead, keys_arg(keys), now)

    async def drop_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        return await self._count("drop_dead", self._sql.drop_dead, keys_arg(keys), now)

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
            async with self._lane_or_pool(self._claims) as conn:
                rows = await conn.fetch(self._sql.holds, now)
        return [Hold(name=r["name"], until=r["until"], reason=r["reason"]) for r in rows]

    # -- reading --------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        with self._translate("get"):
            async with self._conn() as conn:
                row = await conn.fetchrow(self._sql.get, key)
        return None if row is None else entry_from_row(row)

    async def entries(
        self, *, state: State | None = None, limit: int = 100, after_id: int = 0
    ) -> list[Entry]:
        if limit <= 0:
            return []
        state_value = None if state is None else State(state).value
        with self._translate("entries"):
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.entries, after_id, state_value, limit)
        return [entry_from_row(r) for r in rows]

    async def attempts(self, key: str) -> list[AttemptRecord]:
        with self._translate("attempts"):
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.attempts, key)
        return [attempt_from_row(r) for r in rows]

    async def stats(self) -> OutboxStats:
        with self._translate("stats"):
            async with self._conn() as conn:
                row = _one(await conn.fetchrow(self._sql.stats))
        return stats_from_row(row)

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
                logs.setdefault(r["entry_id"], []).append(attempt_from_row(r))
            yield [
                EntryRecord(entry=entry_from_row(r), attempts=tuple(logs.get(r["id"], ())))
                for r in rows
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
                inserted = {r["key"] for r in await conn.fetch(self._sql.load, *load_args(rows))}
                logs = [
                    (key, a) for key, rec in first.items() if key in inserted for a in rec.attempts
                ]
                if logs:
                    await conn.execute(self._sql.load_attempts, *attempt_args(logs))
        return len(inserted)

    # -- wake-ups -------------------------------------------------------------------------

    def listen(self) -> Listener:
        """Wake-ups on a dedicated connection; see :class:`Listener`. Close with ``aclose()``."""
        if self._closed:
            raise StorageError(f"{self!r} is closed")
        listener = Listener(
            connect=functools.partial(self._own_connect, "etrusted-kit listener"),
            channel=self._channel,
            url=self._url,
            on_close=self._listeners.discard,
        )
        self._listeners.add(listener)
        return listener

    def _new_lane(self, purpose: str) -> Lane:
        connect = functools.partial(self._own_connect, f"etrusted-kit {purpose}")
        return Lane(connect, purpose=purpose)

    async def _own_connect(self, application_name: str) -> asyncpg.Connection[Any]:
        """A connection outside the pool (a lane's, a listener's), named for pg_stat_activity."""
        return await _asyncpg.connect(
            self._dsn,
            timeout=self._command_timeout,
            command_timeout=self._command_timeout,
            server_settings={"application_name": application_name},
        )

    # -- plumbing -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[Any]]:
        pool = self._pool
        if pool is None or not self._opened:
            state = "closed" if self._closed else "not open (call open() or use async with)"
            raise StorageError(f"{self!r} is {state}")
        # asyncio.timeout rather than acquire(timeout=...), which wraps every acquire in a task.
        async with asyncio.timeout(self._command_timeout):
            conn = await pool.acquire()
        try:
            yield conn
        except BaseException as exc:
            # Our pool's reset runs no query, so it would not notice a broken connection.
            if self._own_pool and _may_be_broken(exc):
                conn.terminate()
            raise
        finally:
            await pool.release(conn)

    @contextlib.asynccontextmanager
    async def _lane_or_pool(self, lane: Lane | None) -> AsyncIterator[Any]:
        """The lane's connection if it is free, else one from the pool.

        Claims, holds and results come several times a second from a running flusher, each a
        statement or two; a lane spares them the pool's acquire and release. The flusher
        writes results while it claims, so each side has a lane of its own.
        """
        own = None if lane is None else await lane.take()
        if lane is None or own is None:
            async with self._conn() as conn:
                yield conn
            return
        try:
            yield own
        except BaseException as exc:
            # A transaction left open (cancelled mid-way) must not reach the next caller. After
            # a cancellation or timeout, is_in_transaction() may not know yet: a BEGIN can be on
            # its way to the server. So settle the connection first, as the pool's release does.
            broken = _may_be_broken(exc)
            if not broken and (
                isinstance(exc, asyncio.CancelledError | TimeoutError) or own.is_in_transaction()
            ):
                broken = not await _rolled_back(own, self._command_timeout)
            await lane.give(broken=broken)
            raise
        await lane.give()

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


async def _rolled_back(conn: Any, within: float) -> bool:
    """Whether an interrupted connection is idle outside any transaction again.

    ``reset()`` waits until a cancelled statement has finished on the server (asyncpg makes the
    next statement wait for that), rolls back whatever transaction is open, and forgets a
    transaction object left behind by a cancelled BEGIN (else the next ``transaction()`` would
    take itself for a nested one). Any failure here means: do not reuse the connection.
    """
    try:
        await conn.reset(timeout=within)
    except BaseException:  # noqa: BLE001 - the caller re-raises the original; this one is moot
        return False
    return not conn.is_in_transaction()


def _may_be_broken(exc: BaseException) -> bool:
    """Whether a connection may be unusable after ``exc``: a client-side or connection failure.

    After, say, a termination by the server, asyncpg can fail the next query with a client-side
    error before it has noticed that the socket is gone. A timeout or a cancellation is not one:
    asyncpg cancels the statement on the server and the next query waits for that, whereas a
    dropped socket would leave the statement running, and perhaps committing, on the server.
    """
    if isinstance(exc, TimeoutError):
        return False
    return isinstance(
        exc,
        OSError
        | _asyncpg.InterfaceError
        | _asyncpg.exceptions.InternalClientError
        | _asyncpg.PostgresConnectionError,
    )


def _results(entries: Sequence[NewEntry], inserted: set[str]) -> list[EnqueueResult]:
    """One result per entry; only the first copy of an inserted key is new."""
    results: list[EnqueueResult] = []
    for entry in entries:
        fresh = entry.key in inserted
        inserted.discard(entry.key)  # later copies of the same key are duplicates
        results.append(EnqueueResult(entry.key, duplicate=not fresh))
    return results


async def _keep_session(_conn: Any) -> None:
    """The own pool's reset on release: nothing to undo, so no round trip.

    asyncpg's default resets advisory locks, cursors, LISTENs and settings with one more query
    per release. The kit leaves none of them behind on a pooled connection: its advisory lock
    and ``search_path`` are transaction-scoped (``pg_advisory_xact_lock``, ``SET LOCAL``), it
    declares no cursors, and LISTEN runs on a connection of its own (:meth:`listen`). asyncpg
    still rolls back a transaction left open before it calls this. A pool handed in by the
    application keeps its own reset.
    """


def _one(row: Any) -> Any:
    if row is None:  # pragma: no cover - aggregate queries always return one row
        raise StorageError("the database returned no row for an aggregate query")
    return row


__all__ = ["PostgresStorage"]
