"""The PostgreSQL outbox's lifecycle and plumbing: pools, lanes, migrations, error translation.

:class:`~kit.outbox.postgres.PostgresStorage` builds on this; see that module for the design.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Self

from kit.errors import (
    ConfigError,
    KitError,
    MigrationError,
    StorageError,
    StorageUnavailableError,
)
from kit.outbox._pg_conn import (
    _asyncpg,
    _keep_session,
    _may_be_broken,
    _rolled_back,
    _terminate,
    _unparsable_url,
)
from kit.outbox._pg_lane import Lane
from kit.outbox._pg_listen import Listener
from kit.outbox._pg_sql import Sql
from kit.outbox.migrations import load_migrations
from kit.redact import redact_url

if TYPE_CHECKING:
    import asyncpg

log = logging.getLogger("kit.outbox.postgres")  # the name operators filter on

INSTALL_HINT = "pip install 'etrusted-kit[postgres]'"
# Room for the "_wake" suffix inside PostgreSQL's 63-byte identifier limit (the channel name).
_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,57}$")
# Server answers that mean "the database is not reachable right now" rather than "bad query".
# Connection, resources, operator/timeout; serialization failure and deadlock (40001, 40P01)
# and lock not available (55P03) pass too: retrying later is the right answer to all of them.
# So do a read-only server (25006: a primary demoted to standby, the DNS of a failover not yet
# turned) and an I/O error (58030), as SQLite's READONLY and IOERR do on that backend.
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57", "40001", "40P01", "55P03", "25006", "58030")


class PgBase:
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
        self._url = redact_url(dsn)
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
        self._database: str | None = None  # current_database(), learnt by open()

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
                with self._translate("open"):
                    async with self._conn() as conn:
                        self._database = await conn.fetchval(self._sql.database)
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
    async def _conn(
        self, deadline: float | None = None
    ) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy[Any]]:
        """A pooled connection, waited for until ``deadline`` (the loop's clock), by default
        ``command_timeout`` from now."""
        pool = self._pool
        if pool is None or not self._opened:
            state = "closed" if self._closed else "not open (call open() or use async with)"
            raise StorageError(f"{self!r} is {state}")
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self._command_timeout
        # asyncio.timeout rather than acquire(timeout=...), which wraps every acquire in a task.
        async with asyncio.timeout_at(deadline):
            conn = await pool.acquire()
        try:
            yield conn
        except BaseException as exc:
            # Our pool's reset runs no query, so it would not notice a broken connection.
            if self._own_pool and _may_be_broken(exc):
                _terminate(conn)
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
        # One budget for a connection, whichever serves: a lane that spent it trying to connect
        # (a server that takes no new connections) leaves the pool none.
        deadline = asyncio.get_running_loop().time() + self._command_timeout
        own = None if lane is None else await lane.take()
        if lane is None or own is None:
            async with self._conn(deadline) as conn:
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
        except (OSError, _asyncpg.PostgresError, _asyncpg.exceptions.InternalClientError) as exc:
            # InternalClientError: asyncpg's protocol state after its socket broke mid-operation
            # ("cannot switch to state 12; another operation is in progress").
            if _unavailable(exc):
                raise StorageUnavailableError(self._message(operation, exc)) from exc
            raise failure(self._message(operation, exc)) from exc
        except _asyncpg.ClientConfigurationError as exc:
            raise ConfigError(self._message(operation, exc)) from exc
        except _asyncpg.InterfaceError as exc:
            # asyncpg's cleanup after a connection the server ended (a transaction's exit)
            # refuses the closed connection, hiding the loss it is handling: report the loss.
            lost = exc.__context__
            while isinstance(lost, _asyncpg.InterfaceError):
                lost = lost.__context__
            if lost is not None and _unavailable(lost):
                raise StorageUnavailableError(self._message(operation, lost)) from lost
            raise failure(self._message(operation, exc)) from exc

    def _message(self, operation: str, exc: BaseException) -> str:
        return f"PostgreSQL outbox {operation} failed ({self._url}): {type(exc).__name__}: {exc}"

    async def _count(self, operation: str, sql: str, *args: Any) -> int:
        with self._translate(operation):
            async with self._conn() as conn:
                status: str = await conn.execute(sql, *args)
        return int(status.rsplit(" ", 1)[-1])


def _unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached right now, rather than refused."""
    if isinstance(
        exc,
        OSError  # refused, unreachable, TimeoutError (asyncio's included)
        | _asyncpg.PostgresConnectionError
        | _asyncpg.exceptions.InternalClientError,
    ):
        return True
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    return isinstance(exc, _asyncpg.PostgresError) and sqlstate.startswith(
        _UNAVAILABLE_SQLSTATE_CLASSES
    )


def _one(row: Any) -> Any:
    if row is None:  # pragma: no cover - aggregate queries always return one row
        raise StorageError("the database returned no row for an aggregate query")
    return row
