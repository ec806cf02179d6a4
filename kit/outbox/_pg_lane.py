"""A connection of its own for one-entry enqueues, beside the pool."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from kit.outbox._pg_listen import close_quietly

if TYPE_CHECKING:
    import asyncpg

# The backend's logger name, which operators already filter on.
log = logging.getLogger("kit.outbox.postgres")

# After a failed connect the lane stands aside this long; the pool serves meanwhile.
RETRY_AFTER = 30.0


class Lane:
    """One connection for one caller at a time; whoever finds it taken uses the pool.

    ``Outbox.enqueue`` is the application's hot path, and on the pool the acquire and release
    around its single statement cost about as much client CPU as the statement itself (asyncpg
    runs every release in a task of its own). The lane skips both; a second one does the same
    for the flusher's claims, holds and results. It connects on first use, so a process that
    never uses it never opens it, and a connection found closed (the server went away) or
    handed back as broken is replaced on the next call. Callers leave no session state behind
    (no open transaction, no settings), so nothing needs resetting between them.

    It is an optimisation, never a new way to fail: if it cannot connect (say the server is at
    ``max_connections`` while the pool still has room), callers use the pool for a while.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection[Any]]],
        *,
        purpose: str = "enqueue",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._purpose = purpose  # names the lane in its log records
        self._clock = clock
        self._conn: asyncpg.Connection[Any] | None = None
        self._busy = False
        self._closed = False
        self._retry_at = 0.0

    async def take(self) -> asyncpg.Connection[Any] | None:
        """The lane's connection, or None if it is in use or closed. Hand it back with ``give``."""
        if self._busy or self._closed or self._clock() < self._retry_at:
            return None
        self._busy = True
        conn = self._conn
        if conn is None or conn.is_closed():
            self._conn = None
            try:
                conn = self._conn = await self._connect()
            except Exception as exc:  # noqa: BLE001 - the pool serves, and reports real failures
                self._busy = False
                self._retry_at = self._clock() + RETRY_AFTER
                log.warning(
                    "outbox %s connection failed (%s: %s); using the pool, trying again in %.0f s",
                    self._purpose,
                    type(exc).__name__,
                    exc,
                    RETRY_AFTER,
                    extra={"action": f"outbox.{self._purpose}_connection.failed"},
                )
                return None
            except BaseException:
                self._busy = False
                raise
        return conn

    async def give(self, *, broken: bool = False) -> None:
        """Hand the connection back; ``broken``: it may be unusable, so close it now."""
        self._busy = False
        if broken and self._conn is not None:
            self._conn.terminate()
            self._conn = None
        if self._closed:  # closed while in use: the last user closes it
            await self._drop()

    async def aclose(self) -> None:
        self._closed = True
        if not self._busy:
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await close_quietly(conn)
