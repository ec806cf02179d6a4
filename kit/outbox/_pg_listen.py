"""Wake-ups for flushers from PostgreSQL LISTEN/NOTIFY, on a connection of their own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Self

from kit.errors import StorageUnavailableError

if TYPE_CHECKING:
    import asyncpg

# The backend's logger name, which operators already filter on.
log = logging.getLogger("kit.outbox.postgres")

# Listener reconnect backoff: first retry at once, then doubling with jitter up to the cap.
_LISTEN_BACKOFF_START = 0.1
_LISTEN_BACKOFF_CAP = 5.0
_LISTEN_HEALTH_INTERVAL = 30.0


class Listener:
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
        on_close: Callable[[Listener], None],
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
            try:
                conn = await self._connect()
            except Exception as exc:  # noqa: BLE001 - a hint only: log, back off, try again
                await asyncio.sleep(self._failed("cannot connect to", "connect_failed", exc))
                continue
            wait = 0.0
            try:
                await self._listen_on(conn)
            except Exception as exc:  # noqa: BLE001 - same: never raise into the flusher
                wait = self._failed("lost its connection to", "lost", exc)
            finally:
                await close_quietly(conn)
            await asyncio.sleep(wait)

    def _failed(self, what: str, action: str, exc: Exception) -> float:
        """Log one failed try with the wait before the next (returned): at once after the
        first failure, then doubling with jitter up to the cap."""
        self._failures += 1
        wait = 0.0
        if self._failures > 1:
            delay = min(_LISTEN_BACKOFF_CAP, _LISTEN_BACKOFF_START * 2 ** (self._failures - 2))
            wait = delay * random.uniform(0.5, 1.0)
        log.warning(
            "outbox listener %s %s: %s: %s; trying again in %.1f s (try %d)",
            what,
            self._url,
            type(exc).__name__,
            exc,
            wait,
            self._failures,
            extra={"action": f"outbox.listen.{action}", "failures": self._failures},
        )
        return wait

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


async def close_quietly(conn: asyncpg.Connection[Any]) -> None:
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
