"""Serving a :class:`Sandbox` on a loopback port with aiohttp's runner."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from kit.config import ClientConfig
from kit.errors import ConfigError
from kit.sandbox.app import Sandbox
from kit.sandbox.faults import TOKEN_PATH

logger = logging.getLogger(__name__)

# Handlers never block for long (LATE_ANSWER waits are released on stop), so a short grace
# period is plenty and keeps test teardown fast.
_SHUTDOWN_TIMEOUT = 2.0


class SandboxServer:
    """Runs one :class:`Sandbox` on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self, sandbox: Sandbox | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.sandbox = sandbox if sandbox is not None else Sandbox()
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The API base, e.g. ``http://127.0.0.1:38211``."""
        if self._url is None:
            raise ConfigError("the sandbox server has not been started")
        return self._url

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def client_config(self, **overrides: Any) -> ClientConfig:
        """A client configuration pointing at this sandbox with its credentials."""
        values: dict[str, Any] = {
            "client_id": self.sandbox.config.client_id,
            "client_secret": self.sandbox.config.client_secret,
            "api_url": self.url,
            "token_url": self.token_url,
        }
        values.update(overrides)
        return ClientConfig(**values)

    async def start(self) -> None:
        if self._runner is not None:
            raise ConfigError("the sandbox server is already running")
        runner = web.AppRunner(
            self.sandbox.app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConfigError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.port = port
        shown = f"[{host}]" if ":" in host else host
        self._url = f"http://{shown}:{port}"
        logger.info(
            "sandbox listening on %s",
            self._url,
            extra={"action": "sandbox_started", "url": self._url},
        )

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.sandbox.release_late_answers()
        await runner.cleanup()
        logger.info("sandbox stopped", extra={"action": "sandbox_stopped", "url": self._url})

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
