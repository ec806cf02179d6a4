"""The token endpoint and bearer authentication, with an injectable clock for expiry."""

from __future__ import annotations

import base64

import aiohttp
import pytest
from sandbox_helpers import CHANNEL, Api, FakeClock, make_event

from kit.sandbox import SandboxConfig, SandboxServer


async def _token_call(
    http: aiohttp.ClientSession, server: SandboxServer, form: dict[str, str], **kw: object
) -> tuple[int, dict[str, object], object]:
    async with http.post(server.token_url, data=form, **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.json(), resp.headers


def _form(**overrides: str) -> dict[str, str]:
    form = {
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "grant_type": "client_credentials",
        "audience": "https://api.etrusted.com",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v != "<omit>"}


async def test_token_has_the_keycloak_shape(
    server: SandboxServer, http: aiohttp.ClientSession
) -> None:
    status, body, headers = await _token_call(http, server, _form())
    assert status == 200
    assert set(body) == {
        "access_token",
        "expires_in",
        "refresh_expires_in",
        "token_type",
        "not-before-policy",
        "scope",
    }
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) >= 32
    assert body["expires_in"] == 300
    assert body["refresh_expires_in"] == 0
    assert body["token_type"] == "Bearer"
    assert body["not-before-policy"] == 0
    assert body["scope"] == "profile email"
    assert headers["Cache-Control"] == "no-store"  # type: ignore[index]
    assert server.sandbox.token_requests == 1


@pytest.mark.parametrize(
    "form",
    [
        _form(client_secret="wrong"),
        _form(client_id="someone-else"),
        _form(client_secret="<omit>"),
        _form(client_id="<omit>", client_secret="<omit>"),
    ],
    ids=["wrong-secret", "unknown-client", "no-secret", "no-credentials"],
)
async def test_bad_credentials_are_401_invalid_client(
    server: SandboxServer, http: aiohttp.ClientSession, form: dict[str, str]
) -> None:
    status, body, _ = await _token_call(http, server, form)
    assert status == 401
    assert body["error"] == "invalid_client"
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert server.sandbox.token_requests == 0


async def test_wrong_grant_type_is_400(server: SandboxServer, http: aiohttp.ClientSession) -> None:
    status, body, _ = await _token_call(http, server, _form(grant_type="password"))
    assert (status, body) == (400, {"error": "unsupported_grant_type"})
    status, body, _ = await _token_call(http, server, _form(grant_type="<omit>"))
    assert status == 400
    assert body["error"] == "invalid_request"


async def test_http_basic_client_credentials_are_accepted(
    server: SandboxServer, http: aiohttp.ClientSession
) -> None:
    basic = base64.b64encode(b"sandbox-client:sandbox-secret").decode()
    status, _, _ = await _token_call(
        http,
        server,
        _form(client_id="<omit>", client_secret="<omit>"),
        headers={"Authorization": f"Basic {basic}"},
    )
    assert status == 200


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/events", b'{"Message":"Access to this resource is forbidden"}'),
        ("GET", "/events/evt-1", b'{"Message":"Access to this resource is forbidden"}'),
        ("GET", "/event-types", b""),
        ("POST", "/event-types", b""),
        ("GET", "/invite-settings", b""),
        ("GET", "/channels", b""),
        ("GET", f"/channels/{CHANNEL}/invites", b""),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-a-token", "Basic c2FuZGJveC1jbGllbnQ6c2FuZGJveC1zZWNyZXQ=", "Bearer "],
    ids=["missing", "unknown-token", "wrong-scheme", "empty-token"],
)
async def test_missing_or_invalid_bearer_is_401_in_the_services_shape(
    api: Api, method: str, path: str, expected: bytes, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = await api.call(method, path, auth=False, headers=headers, json_body={})
    assert reply.status == 401
    assert reply.raw == expected
    assert api.server.sandbox.accepted_events() == []


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(token_expires_in=1)])
async def test_token_expires_after_expires_in_on_the_sandbox_clock(
    api: Api, clock: FakeClock
) -> None:
    token = await api.token()
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.call("GET", "/channels", headers=headers)).status == 200
    clock.advance(0.999)
    assert (await api.call("GET", "/channels", headers=headers)).status == 200
    clock.advance(0.001)
    expired = await api.call("POST", "/events", headers=headers, json_body=make_event())
    assert expired.status == 401
    assert expired.json == {"Message": "Access to this resource is forbidden"}
    fresh = {"Authorization": f"Bearer {await api.token()}"}
    assert (await api.call("POST", "/events", headers=fresh, json_body=make_event())).status == 202


async def test_expire_tokens_revokes_every_issued_token(api: Api) -> None:
    first, second = await api.token(), await api.token()
    api.server.sandbox.expire_tokens()
    for token in (first, second):
        reply = await api.call("GET", "/channels", headers={"Authorization": f"Bearer {token}"})
        assert reply.status == 401
    third = await api.token()
    reply = await api.call("GET", "/channels", headers={"Authorization": f"Bearer {third}"})
    assert reply.status == 200
    assert api.server.sandbox.token_requests == 3


async def test_expire_tokens_over_the_control_plane(api: Api) -> None:
    assert (await api.call("GET", "/channels")).status == 200
    assert (await api.call("POST", "/_sandbox/expire-tokens", auth=False)).status == 204
    assert (await api.call("GET", "/channels")).status == 401
