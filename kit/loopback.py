"""An aiohttp application served on a free loopback port while a block runs.

For the demo and the bench, which put the real intake behind real HTTP without a fixed port.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(app: web.Application, *, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` on ``host`` at a port the system picks; yields the base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        bound_host, port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{port}"
    finally:
        await runner.cleanup()


__all__ = ["serving"]
