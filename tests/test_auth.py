"""The token provider over real HTTP: the sandbox's token endpoint and small loopback servers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kit.auth import TokenProvider
from kit.config import ClientConfig
from kit.errors import AuthenticationError, FailureKind, TokenUnavailableError
from kit.sandbox import Fault, FaultKind, SandboxConfig, SandboxServer
from kit.testing import running_sandbox

SECRET = "s3cret-do-not-log"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(token_expires_in=120)) as server:
        yield server


class TokenServer:
    """A token endpoint whose answer each test scripts; counts and records requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.forms: list[dict[str, str]] = []
        self.handler: Handler = self._ok
        self.release = asyncio.Event()
        app = web.Application()
        app.router.add_post("/oauth/token", self._dispatch)
        self.server = TestServer(app, host="127.0.0.1")

    @property
    def token_url(self) -> str:
        return str(self.server.make_url("/oauth/token"))

    def config(self, **overrides: Any) -> ClientConfig:
        values: dict[str, Any] = {
            "client_id": "client-1",
            "client_secret": SECRET,
            "api_url": str(self.server.make_url("")),
            "token_url": self.token_url,
        }
        values.update(overrides)
        return ClientConfig(**values)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.forms.append({k: str(v) for k, v in (await request.post()).items()})
        return await self.handler(request)

    async def _ok(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {"access_token": f"tok-{self.requests}", "expires_in": 300, "token_type": "Bearer"}
        )


@pytest.fixture
async def token_server() -> AsyncIterator[TokenServer]:
    fake = TokenServer()
    await fake.server.start_server()
    try:
        yield fake
    finally:
        fake.release.set()
        await fake.server.close()


# -- against the sandbox --------------------------------------------------------------------


async def test_fetches_with_client_credentials_and_caches(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    provider = TokenProvider(sandbox.client_config(), clock=FakeClock())
    first = await provider.token(session)
    assert first
    assert await provider.token(session) == first
    assert sandbox.sandbox.token_requests == 1
    assert provider.requests == 1


async def test_refreshes_margin_seconds_before_expiry(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    provider = TokenProvider(sandbox.client_config(token_refresh_margin=30), clock=clock)
    first = await provider.token(session)
    clock.now += 89.9  # expires_in 120 - margin 30 = refresh after 90 s
    assert await provider.token(session) == first
    assert sandbox.sandbox.token_requests == 1
    clock.now += 0.1
    second = await provider.token(session)
    assert second != first
    assert sandbox.sandbox.token_requests == 2


async def test_lifetime_shorter_than_the_margin_refreshes_at_half_of_it(
    session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    async with running_sandbox(SandboxConfig(token_expires_in=20)) as server:
        provider = TokenProvider(server.client_config(token_refresh_margin=30), clock=clock)
        first = await provider.token(session)
        clock.now += 9.99
        assert await provider.token(session) == first
        clock.now += 0.01
        assert await provider.token(session) != first
        assert server.sandbox.token_requests == 2


async def test_concurrent_callers_share_one_refresh(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    clock = FakeClock()
    provider = TokenProvider(sandbox.client_config(), clock=clock)
    tokens = await asyncio.gather(*(provider.token(session) for _ in range(25)))
    assert len(set(tokens)) == 1
    assert sandbox.sandbox.token_requests == 1
    clock.now += 1000  # all of them find the token due at once
    again = await asyncio.gather(*(provider.token(session) for _ in range(25)))
    assert len(set(again)) == 1
    assert again[0] != tokens[0]
    assert sandbox.sandbox.token_requests == 2


async def test_invalidate_only_drops_the_token_it_names(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    provider = TokenProvider(sandbox.client_config(), clock=FakeClock())
    old = await provider.token(session)
    provider.invalidate(old)
    assert not provider.has_token
    fresh = await provider.token(session)
    assert fresh != old
    provider.invalidate(old)  # a late 401 for a request that carried the old token
    assert provider.has_token
    assert await provider.token(session) == fresh
    assert sandbox.sandbox.token_requests == 2


async def test_wrong_secret_is_unauthorized(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    provider = TokenProvider(sandbox.client_config(client_secret="wrong"))
    with pytest.raises(AuthenticationError) as info:
        await provider.token(session)
    assert info.value.kind is FailureKind.UNAUTHORIZED
    assert info.value.status == 401
    assert "invalid_client" in info.value.message
    assert sandbox.sandbox.token_requests == 0


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault(kind=FaultKind.STATUS, status=503, path="/oauth/token"), 503, None),
        (Fault(kind=FaultKind.STATUS, status=500, path="/oauth/token"), 500, None),
        (Fault(kind=FaultKind.RATE_LIMIT, retry_after=7, path="/oauth/token"), 429, 7.0),
    ],
)
async def test_token_endpoint_outages_are_retryable(
    sandbox: SandboxServer,
    session: aiohttp.ClientSession,
    fault: Fault,
    status: int,
    retry_after: float | None,
) -> None:
    sandbox.sandbox.add_fault(fault)
    provider = TokenProvider(sandbox.client_config())
    with pytest.raises(TokenUnavailableError) as info:
        await provider.token(session)
    assert info.value.kind is FailureKind.RETRYABLE
    assert info.value.status == status
    assert info.value.retry_after == retry_after
    assert "retryable" in info.value.message
    sandbox.sandbox.clear_faults()
    assert await provider.token(session)  # and it recovers on the next call


async def test_dropped_connection_is_retryable(
    sandbox: SandboxServer, session: aiohttp.ClientSession
) -> None:
    sandbox.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_BEFORE_ACCEPT, path="/oauth/token", times=1)
    )
    provider = TokenProvider(sandbox.client_config())
    with pytest.raises(TokenUnavailableError) as info:
        await provider.token(session)
    assert info.value.kind is FailureKind.RETRYABLE
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


# -- against scripted servers ---------------------------------------------------------------


async def test_sends_the_documented_form(
    token_server: TokenServer, session: aiohttp.ClientSession
) -> None:
    provider = TokenProvider(token_server.config(audience="https://api.etrusted.com"))
    assert await provider.token(session) == "tok-1"
    assert token_server.forms == [
        {
            "client_id": "client-1",
            "client_secret": SECRET,
            "grant_type": "client_credentials",
            "audience": "https://api.etrusted.com",
        }
    ]


async def test_400_is_unauthorized(
    token_server: TokenServer, session: aiohttp.ClientSession
) -> None:
    async def bad_request(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    token_server.handler = bad_request
    with pytest.raises(AuthenticationError) as info:
        await TokenProvider(token_server.config()).token(session)
    assert info.value.kind is FailureKind.UNAUTHORIZED
    assert info.value.status == 400
    assert info.value.message == "client credentials refused: unsupported_grant_type"


@pytest.mark.parametrize("status", [301, 404, 405])
async def test_a_token_url_that_is_not_a_token_endpoint_says_so(
    token_server: TokenServer, session: aiohttp.ClientSession, status: int
) -> None:
    """A wrong token URL (a redirect, no such path) pauses like refused credentials, but its
    message points at the URL, not at credentials that may be right."""

    async def elsewhere(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": "https://login.example/"})

    token_server.handler = elsewhere
    with pytest.raises(AuthenticationError) as info:
        await TokenProvider(token_server.config()).token(session)
    assert info.value.status == status
    assert "credentials" not in info.value.message
    assert "token_url" in info.value.message


@pytest.mark.parametrize(
    "answer",
    [
        web.Response(text="<html>maintenance</html>", content_type="text/html"),
        web.json_response({"token_type": "Bearer"}),
        web.json_response({"access_token": "", "expires_in": 300}),
        web.json_response({"access_token": None}),
        web.json_response({"access_token": "t", "expires_in": "soon"}),
        web.json_response(["t"]),
    ],
    ids=["html", "no-token", "empty-token", "null-token", "bad-expiry", "array"],
)
async def test_malformed_success_bodies_are_retryable(
    token_server: TokenServer, session: aiohttp.ClientSession, answer: web.Response
) -> None:
    async def reply(request: web.Request) -> web.StreamResponse:
        return answer

    token_server.handler = reply
    with pytest.raises(TokenUnavailableError) as info:
        await TokenProvider(token_server.config()).token(session)
    assert info.value.kind is FailureKind.RETRYABLE
    assert "malformed" in info.value.message or "empty access_token" in info.value.message


async def test_unknown_lifetime_is_kept_until_invalidated(
    token_server: TokenServer, session: aiohttp.ClientSession
) -> None:
    async def no_expiry(request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": f"tok-{token_server.requests}"})

    token_server.handler = no_expiry
    clock = FakeClock()
    provider = TokenProvider(token_server.config(), clock=clock)
    assert await provider.token(session) == "tok-1"
    clock.now += 10**9
    assert await provider.token(session) == "tok-1"
    provider.invalidate("tok-1")
    assert await provider.token(session) == "tok-2"


async def test_failed_refresh_is_shared_by_all_waiters(
    token_server: TokenServer, session: aiohttp.ClientSession
) -> None:
    arrived = asyncio.Event()

    async def unavailable(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await token_server.release.wait()
        return web.json_response({"error": "temporarily_unavailable"}, status=503)

    token_server.handler = unavailable
    provider = TokenProvider(token_server.config())
    waiters = [asyncio.ensure_future(provider.token(session)) for _ in range(10)]
    await asyncio.wait_for(arrived.wait(), timeout=5)  # the refresh is in flight, all waiting
    token_server.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, TokenUnavailableError) for r in results)
    assert len({id(r) for r in results}) == 1  # the one failure, shared
    assert token_server.requests == 1


async def test_a_cancelled_waiter_does_not_cancel_the_shared_refresh(
    token_server: TokenServer, session: aiohttp.ClientSession
) -> None:
    arrived = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await token_server.release.wait()
        return web.json_response({"access_token": "shared", "expires_in": 300})

    token_server.handler = slow
    provider = TokenProvider(token_server.config())
    impatient = asyncio.ensure_future(provider.token(session))
    patient = asyncio.ensure_future(provider.token(session))
    await asyncio.wait_for(arrived.wait(), timeout=5)
    impatient.cancel()
    token_server.release.set()
    assert await asyncio.wait_for(patient, timeout=5) == "shared"
    assert impatient.cancelled()
    assert token_server.requests == 1


async def test_aclose_cancels_a_refresh_in_flight(
    token_server: TokenServer, session: aiohttp.ClientSession
) -> None:
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await token_server.release.wait()
        return web.json_response({"access_token": "late"})

    token_server.handler = hang
    provider = TokenProvider(token_server.config())
    waiter = asyncio.ensure_future(provider.token(session))
    await asyncio.wait_for(arrived.wait(), timeout=5)
    await provider.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not provider.has_token


async def test_timeout_is_retryable(
    token_server: TokenServer, session: aiohttp.ClientSession
) -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        await token_server.release.wait()  # set only at teardown
        return web.json_response({"access_token": "too late"})

    token_server.handler = never
    provider = TokenProvider(token_server.config(request_timeout=0.2))
    with pytest.raises(TokenUnavailableError) as info:
        await provider.token(session)
    assert info.value.kind is FailureKind.RETRYABLE
    assert "timed out" in info.value.message


async def test_connection_refused_is_retryable(
    unused_port: int, session: aiohttp.ClientSession
) -> None:
    config = ClientConfig(
        client_id="c",
        client_secret=SECRET,
        api_url=f"http://127.0.0.1:{unused_port}",
        token_url=f"http://127.0.0.1:{unused_port}/oauth/token",
    )
    with pytest.raises(TokenUnavailableError) as info:
        await TokenProvider(config).token(session)
    assert info.value.kind is FailureKind.RETRYABLE
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


async def test_secrets_and_tokens_never_reach_logs_or_reprs(
    token_server: TokenServer,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = TokenProvider(token_server.config())
    token = await provider.token(session)
    provider.invalidate(token)

    async def refused(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "invalid_client"}, status=401)

    token_server.handler = refused
    with pytest.raises(AuthenticationError) as info:
        await provider.token(session)
    texts = [repr(provider), repr(token_server.config()), str(info.value)]
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.__dict__))
    assert any(getattr(r, "action", None) == "token_request_failed" for r in caplog.records)
    assert any(getattr(r, "action", None) == "token_fetched" for r in caplog.records)
    for text in texts:
        assert SECRET not in text
        assert token not in text
