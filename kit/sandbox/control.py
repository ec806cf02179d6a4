"""The ``/_sandbox/`` control plane: faults, token expiry, accepted events, stats, reset.

Unauthenticated on purpose: it is for tests in other processes (crash tests, the benchmark) and
for people poking at a sandbox by hand, and it only ever listens on the sandbox's own address.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aiohttp import web

from kit.errors import ConfigError
from kit.sandbox.faults import fault_from_json
from kit.sandbox.responses import empty, json_response

if TYPE_CHECKING:
    from kit.sandbox.app import Sandbox

CONTROL_PREFIX = "/_sandbox/"


class ControlRoutes:
    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        p = CONTROL_PREFIX
        return [
            web.get(p + "faults", self.list_faults),
            web.post(p + "faults", self.add_fault),
            web.delete(p + "faults", self.clear_faults),
            web.delete(p + "faults/{id}", self.remove_fault),
            web.post(p + "expire-tokens", self.expire_tokens),
            web.get(p + "events", self.events),
            web.get(p + "stats", self.stats),
            web.post(p + "reset", self.reset),
        ]

    async def list_faults(self, request: web.Request) -> web.Response:
        return json_response(self._sandbox.faults())

    async def add_fault(self, request: web.Request) -> web.Response:
        try:
            fault = fault_from_json(json.loads(await request.read()))
        except ValueError:
            return json_response({"error": "the body is not valid JSON"}, status=400)
        except ConfigError as exc:
            return json_response({"error": str(exc)}, status=400)
        return json_response({"id": self._sandbox.add_fault(fault)}, status=201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self._sandbox.clear_faults()
        return empty(204)

    async def remove_fault(self, request: web.Request) -> web.Response:
        return empty(204 if self._sandbox.remove_fault(request.match_info["id"]) else 404)

    async def expire_tokens(self, request: web.Request) -> web.Response:
        self._sandbox.expire_tokens()
        return empty(204)

    async def events(self, request: web.Request) -> web.Response:
        return json_response([e.to_json() for e in self._sandbox.state.accepted])

    async def stats(self, request: web.Request) -> web.Response:
        return json_response(self._sandbox.stats())

    async def reset(self, request: web.Request) -> web.Response:
        self._sandbox.reset()
        return empty(204)
