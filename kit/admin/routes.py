"""The read-only routes of the admin listener: ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from kit.admin.health import Readiness
from kit.metrics import Metrics

SCRAPE_TIMEOUT = 5.0  # Prometheus's default scrape_timeout is 10 s: answer well inside it
HEALTHZ, READYZ, METRICS = "/healthz", "/readyz", "/metrics"
MACHINE_PATHS = frozenset({HEALTHZ, READYZ, METRICS})
"""The routes machines read (probes, Prometheus), by whatever name they know the host by: they
hold counts and states, no customer data, so the Host check of the page does not apply."""


def install(
    app: web.Application, metrics: Metrics, ready: Callable[[], Awaitable[Readiness]]
) -> None:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(_: web.Request) -> web.Response:
        readiness = await ready()
        return web.json_response(readiness.as_dict(), status=200 if readiness.ready else 503)

    async def scrape(_: web.Request) -> web.Response:
        await metrics.refresh(timeout=SCRAPE_TIMEOUT)  # a failure shows as outbox_up 0
        response = web.Response(body=metrics.text())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app.router.add_get(HEALTHZ, healthz)
    app.router.add_get(READYZ, readyz)
    app.router.add_get(METRICS, scrape)


__all__ = ["MACHINE_PATHS", "install"]
