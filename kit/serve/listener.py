"""The HTTP part of ``serve``: one aiohttp site, closed in the order a graceful stop needs."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler

from kit.errors import ConfigError

logger = logging.getLogger(__name__)

# After the grace: how long aiohttp may take to write the answers that are ready and to cancel
# the handlers that are not.
_LAST_WRITES = 1.0


@attrs.frozen
class Address:
    """Where a listener accepts connections; ``port`` is the real one, also after port 0."""

    host: str
    port: int

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"


class Listener:
    """Serves :attr:`app` on ``host:port`` until :meth:`close`.

    Routes go on :attr:`app` before :meth:`start`. :meth:`close` closes the listening socket
    first, so no new connection gets in; then waits, for at most ``grace`` seconds, until no
    request is in flight; then closes the connections (aiohttp cancels a handler still running
    then). It waits for the requests itself rather than leave that to aiohttp's shutdown, which
    stops reading from a connection as soon as it begins, so a delivery whose body was still
    arriving would be cut off. An answer given while closing carries ``Connection: close``, so a
    keep-alive client does not send its next request here. Idempotent.
    """

    def __init__(self, *, host: str, port: int, grace: float) -> None:
        self.app = web.Application(middlewares=[self._track])
        self._host = host
        self._port = port
        self._grace = grace
        self._runner: web.AppRunner | None = None
        self._addresses: tuple[Address, ...] = ()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False

    @property
    def addresses(self) -> tuple[Address, ...]:
        """Every bound address (a host name may resolve to several); empty until started."""
        return self._addresses

    @property
    def in_flight(self) -> int:
        """Requests being handled now."""
        return self._in_flight

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self._in_flight += 1
        self._idle.clear()
        try:
            response = await handler(request)
            if self._closing:
                response.force_close()
            return response
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def start(self) -> None:
        if self._runner is not None:
            raise ConfigError("this listener is already started")
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=min(self._grace, _LAST_WRITES)
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        self._runner = runner
        self._addresses = tuple(Address(str(a[0]), int(a[1])) for a in runner.addresses)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing = True
        for site in list(runner.sites):
            await site.stop()  # the listening socket: nothing new connects from here on
        if self._in_flight:
            logger.info(
                "waiting for %d request(s) in flight",
                self._in_flight,
                extra={"action": "serve_draining", "in_flight": self._in_flight},
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._grace):
                    await self._idle.wait()
            if self._in_flight:
                logger.warning(
                    "%d request(s) still running after the %g s grace: cancelled",
                    self._in_flight,
                    self._grace,
                    extra={"action": "serve_requests_cancelled", "in_flight": self._in_flight},
                )
        await runner.cleanup()


__all__ = ["Address", "Listener"]
