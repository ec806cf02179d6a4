"""The HTTP part of ``serve``: one aiohttp site, started and closed in the order a graceful
stop needs."""

from __future__ import annotations

import logging

import attrs
from aiohttp import web

from kit.errors import ConfigError

logger = logging.getLogger(__name__)


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
    """Serves ``app`` on ``host:port`` until :meth:`close`.

    :meth:`close` closes the listening socket first, so nothing new gets in; then lets the
    requests in flight finish, for at most ``grace`` seconds (aiohttp cancels what is left); then
    closes the connections. Idempotent.
    """

    def __init__(self, app: web.Application, *, host: str, port: int, grace: float) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._grace = grace
        self._runner: web.AppRunner | None = None
        self._addresses: tuple[Address, ...] = ()

    @property
    def addresses(self) -> tuple[Address, ...]:
        """Every bound address (a host name may resolve to several); empty until started."""
        return self._addresses

    async def start(self) -> None:
        if self._runner is not None:
            raise ConfigError("this listener is already started")
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=self._grace)
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
        if runner is not None:
            await runner.cleanup()


__all__ = ["Address", "Listener"]
