"""The :class:`Sandbox`: account state, tokens, faults and the aiohttp application around them.

Every API request passes one middleware that counts it, fires a matching fault and checks the
bearer token, in that order: an injected 503 or disconnect happens in front of eTrusted, so it
does not care whether the token was good. The ``/_sandbox/`` control plane bypasses all three.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kit.sandbox.api import ApiRoutes
from kit.sandbox.auth import TokenStore, bearer_token
from kit.sandbox.config import SandboxConfig
from kit.sandbox.control import CONTROL_PREFIX, ControlRoutes
from kit.sandbox.faults import Fault, FaultKind, FaultRegistry
from kit.sandbox.records import AcceptedEvent
from kit.sandbox.responses import AUTHENTICATED, error, service_for
from kit.sandbox.state import SandboxState

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DROPPED = 0  # the status recorded for a request that got no answer at all


def _rng(seed: int | None, purpose: str) -> random.Random:
    # Separate streams, so that adding a fault never shifts the ids of a seeded run.
    return random.Random(f"{seed}:{purpose}") if seed is not None else random.Random()


def _resolve(waiter: asyncio.Future[bool], value: bool) -> None:
    if not waiter.done():
        waiter.set_result(value)


def _retry_after(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else format(value, "g")


class Sandbox:
    """A local eTrusted account and its HTTP API. No I/O here; :class:`SandboxServer` serves it."""

    def __init__(
        self, config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config if config is not None else SandboxConfig()
        self.clock = clock
        self._id_rng = _rng(self.config.seed, "ids")
        self._faults = FaultRegistry(_rng(self.config.seed, "faults"))
        self.tokens = TokenStore(config=self.config, clock=clock)
        self.state = self._fresh_state()
        self.token_requests = 0
        self._counts: Counter[tuple[str, str, int]] = Counter()  # (method, path, status)
        self._route_counts: Counter[tuple[str, str, int]] = Counter()  # (method, route, ...)
        self._late_waiters: set[asyncio.Future[bool]] = set()
        self.app = web.Application(middlewares=[self._middleware])
        self.app.add_routes(ApiRoutes(self).routes())
        self.app.add_routes(ControlRoutes(self).routes())

    def _fresh_state(self) -> SandboxState:
        state = SandboxState(self.config, clock=self.clock, rng=self._id_rng)
        state.seed()
        return state

    # -- the Python control API ------------------------------------------------------------

    def add_fault(self, fault: Fault) -> str:
        fault_id = self._faults.add(fault)
        logger.debug("fault added", extra={"action": "sandbox_fault_added", "fault_id": fault_id})
        return fault_id

    def remove_fault(self, fault_id: str) -> bool:
        return self._faults.remove(fault_id)

    def clear_faults(self) -> None:
        self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        """Every fault with its id and how often it fired."""
        return self._faults.describe()

    def expire_tokens(self) -> None:
        """Every token issued so far stops working now."""
        self.tokens.expire_all()

    def accepted_events(self) -> list[AcceptedEvent]:
        return list(self.state.accepted)

    def request_count(self, method: str, path_prefix: str) -> int:
        """API requests (any status, dropped ones included) whose path starts with the prefix."""
        method = method.upper()
        return sum(
            n
            for (m, path, _), n in self._counts.items()
            if (method in ("*", m)) and path.startswith(path_prefix)
        )

    def stats(self) -> dict[str, Any]:
        requests = [
            {"method": m, "path": route, "status": status, "count": n}
            for (m, route, status), n in sorted(self._route_counts.items())
        ]
        return {
            "tokenRequests": self.token_requests,
            "acceptedEvents": len(self.state.accepted),
            "faultsFired": self._faults.fired(),
            "requests": requests,
        }

    def reset(self) -> None:
        """Back to a fresh account: no events, no faults, zeroed counters.

        Issued tokens keep working, and the id stream continues rather than restarting, so
        no id from before the reset is ever handed out again.
        """
        self.state = self._fresh_state()
        self._faults.clear()
        self.token_requests = 0
        self._counts.clear()
        self._route_counts.clear()

    def release_late_answers(self) -> None:
        """Stop every LATE_ANSWER wait now (the server is going away): their clients are cut."""
        for waiter in self._late_waiters:
            _resolve(waiter, True)

    # -- the request path -----------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(CONTROL_PREFIX):
            return await handler(request)
        fault = self._faults.pick(request.method, path)
        if fault is None:
            response = await self._serve(request, handler)
            self._count(request, response.status)
            return response
        return await self._inject(fault, request, handler)

    async def _serve(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        service = service_for(request.path)
        if service in AUTHENTICATED:
            token = bearer_token(request.headers.get("Authorization"))
            if token is None or not self.tokens.valid(token):
                return error(service, 401)
        try:
            return await handler(request)
        except web.HTTPException as exc:  # the router's own 404 / 405
            return web.Response(status=exc.status, text=exc.text, headers=exc.headers)

    async def _inject(
        self, fault: Fault, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        logger.debug(
            "fault fired",
            extra={"action": "sandbox_fault_fired", "kind": fault.kind.value, "path": request.path},
        )
        kind = fault.kind
        response: web.StreamResponse
        if kind is FaultKind.STATUS:
            response = error(service_for(request.path), fault.status)
        elif kind is FaultKind.RATE_LIMIT:
            response = error(service_for(request.path), 429)
            if fault.retry_after is not None:
                response.headers["Retry-After"] = _retry_after(fault.retry_after)
        elif kind is FaultKind.DROP_BEFORE_ACCEPT:
            await request.read()
            return self._drop(request, web.Response())
        elif kind is FaultKind.DROP_AFTER_ACCEPT:
            return self._drop(request, await self._serve(request, handler))
        elif kind is FaultKind.FAIL_AFTER_ACCEPT:
            await self._serve(request, handler)
            response = error(service_for(request.path), fault.status)
        else:  # LATE_ANSWER
            response = await self._serve(request, handler)
            if await self._wait(fault.delay):
                return self._drop(request, response)
        self._count(request, response.status)
        return response

    def _drop(self, request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """Cut the connection: the client sees a disconnect and never an answer."""
        self._count(request, DROPPED)
        transport = request.transport
        if transport is not None:
            transport.abort()
        # aiohttp fails to write this to the aborted transport and moves on quietly.
        return response

    async def _wait(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True when cut short by :meth:`release_late_answers`."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        timer = loop.call_later(delay, _resolve, waiter, False)
        self._late_waiters.add(waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._late_waiters.discard(waiter)

    def _count(self, request: web.Request, status: int) -> None:
        method, path = request.method, request.path
        self._counts[(method, path, status)] += 1
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else path
        self._route_counts[(method, route, status)] += 1
