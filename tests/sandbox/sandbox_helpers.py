"""Helpers shared by the sandbox tests (imported by conftest and the test modules)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import attrs

from kit.sandbox import SEEDED_CHANNEL_IDS, SandboxServer

CHANNEL = SEEDED_CHANNEL_IDS[0]
OTHER_CHANNEL = SEEDED_CHANNEL_IDS[1]


class FakeClock:
    """An injectable clock: time moves only when a test says so."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class Reply:
    status: int
    raw: bytes
    headers: Any

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class Api:
    """Raw HTTP against a running sandbox; keeps one token and sends it unless told not to."""

    def __init__(self, server: SandboxServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self._token: str | None = None

    async def token(self) -> str:
        config = self.server.sandbox.config
        async with self.http.post(
            self.server.token_url,
            data={
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "grant_type": "client_credentials",
                "audience": "https://api.etrusted.com",
            },
        ) as resp:
            assert resp.status == 200, await resp.text()
            token: str = (await resp.json())["access_token"]
        return token

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw_body: bytes | None = None,
        params: dict[str, str] | None = None,
        auth: bool = True,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent_headers = dict(headers or {})
        if auth and "Authorization" not in sent_headers:
            if self._token is None:
                self._token = await self.token()
            sent_headers["Authorization"] = f"Bearer {self._token}"
        if json_body is not None:
            raw_body = json.dumps(json_body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        async with self.http.request(
            method, self.server.url + path, data=raw_body, params=params, headers=sent_headers
        ) as resp:
            return Reply(resp.status, await resp.read(), resp.headers)

    async def post_event(self, body: dict[str, Any]) -> Reply:
        return await self.call("POST", "/events", json_body=body)


def make_event(
    reference: str = "order-1",
    *,
    type: str = "checkout",
    channel: str = CHANNEL,
    email: str = "jane.doe@example.com",
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": type,
        "customer": {"email": email, "firstName": "Jane", "lastName": "Doe"},
        "channel": {"id": channel, "type": "etrusted"},
        "transaction": {"reference": reference, "date": "2026-01-01T10:00:00.000Z"},
        "system": "etrusted-kit-tests",
        "systemVersion": "1.0",
    }
    body.update(extra)
    return body


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition with a deadline (the deadline only matters when something hangs)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)
