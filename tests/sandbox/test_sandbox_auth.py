"""The token endpoint and bearer authentication, with an injectable clock for expiry."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest
from sandbox_helpers import CHANNEL, Api, FakeClock, make_event

from kit.sandbox import Fault, FaultKind, SandboxConfig, SandboxServer
from kit.testing import running_sandbox

TOKEN_PATHS = ["/oauth/token", "/auth/realms/business/protocol/openid-connect/token"]


async def _token_call(
    http: aiohttp.ClientSession,
    server: SandboxServer,
    form: dict[str, str],
    path: str = "/oauth/token",
    **kw: object,
) -> tuple[int, dict[str, object], object]:
    url = server.url + path
    async with http.post(url, data=form, **kw) as resp:  # type: ignore[arg-type]
        return resp.status, await resp.json(), resp.headers


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Header, claims and signature, decoded with the standard library only."""
    header, claims, signature = token.split(".")
    for segment in (header, claims, signature):
        assert "=" not in segment  # base64url without padding
    return json.loads(_b64decode(header)), json.loads(_b64decode(claims)), signature


def _form(**overrides: str) -> dict[str, str]:
    form = {
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "grant_type": "client_credentials",
        "audience": "https://api.etrusted.com",
    }
    form.update(overrides)
    return {k: v for k, v in form.items() if v != "<omit>"}


@pytest.mark.parametrize("path", TOKEN_PATHS)
async def test_token_has_the_keycloak_shape(
    server: SandboxServer, http: aiohttp.ClientSession, path: str
) -> None:
    """Both the current and the older Keycloak token path answer alike."""
    status, body, headers = await _token_call(http, server, _form(), path)
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
@pytest.mark.parametrize("path", TOKEN_PATHS)
async def test_bad_credentials_are_401_invalid_client(
    server: SandboxServer, http: aiohttp.ClientSession, form: dict[str, str], path: str
) -> None:
    status, body, _ = await _token_call(http, server, form, path)
    assert status == 401
    assert body["error"] == "invalid_client"
    assert isinstance(body["error_description"], str)
    assert body["error_description"]
    assert server.sandbox.token_requests == 0


@pytest.mark.parametrize("path", TOKEN_PATHS)
async def test_wrong_grant_type_is_400(
    server: SandboxServer, http: aiohttp.ClientSession, path: str
) -> None:
    status, body, _ = await _token_call(http, server, _form(grant_type="password"), path)
    assert (status, body) == (400, {"error": "unsupported_grant_type"})
    status, body, _ = await _token_call(http, server, _form(grant_type="<omit>"), path)
    assert status == 400
    assert body["error"] == "invalid_request"


@pytest.mark.parametrize("path", TOKEN_PATHS)
async def test_wrong_audience_is_400_invalid_request(
    server: SandboxServer, http: aiohttp.ClientSession, path: str
) -> None:
    form = _form(audience="https://api.etrusted.site")
    status, body, _ = await _token_call(http, server, form, path)
    assert status == 400
    assert body["error"] == "invalid_request"
    assert "audience" in str(body["error_description"])
    assert server.sandbox.token_requests == 0


@pytest.mark.parametrize("audience", ["<omit>", ""], ids=["absent", "empty"])
async def test_a_token_request_without_audience_is_served(
    server: SandboxServer, http: aiohttp.ClientSession, audience: str
) -> None:
    """Real clients leave ``audience`` out although the spec requires it; eTrusted serves them."""
    status, body, _ = await _token_call(http, server, _form(audience=audience))
    assert status == 200
    assert _jwt_parts(str(body["access_token"]))[1]["aud"] == "https://api.etrusted.com"


async def test_the_accepted_audience_is_configurable(http: aiohttp.ClientSession) -> None:
    config = SandboxConfig(audience="https://api.etrusted.site")
    async with running_sandbox(config) as server:
        ok, _, _ = await _token_call(http, server, _form(audience="https://api.etrusted.site"))
        refused, _, _ = await _token_call(http, server, _form())
    assert (ok, refused) == (200, 400)


@pytest.mark.parametrize("path", TOKEN_PATHS)
async def test_token_is_a_jwt_whose_exp_is_expires_in_after_iat(
    api: Api, clock: FakeClock, http: aiohttp.ClientSession, path: str
) -> None:
    """Clients that decode the token read the same lifetime as ``expires_in``, on the same
    clock, and the sandbox refuses the token from ``exp`` on."""
    server = api.server
    status, body, _ = await _token_call(http, server, _form(), path)
    assert status == 200
    token = str(body["access_token"])
    header, claims, signature = _jwt_parts(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert len(_b64decode(signature)) == 32  # an HMAC-SHA256
    assert claims["iat"] == int(clock.now)
    assert claims["exp"] - claims["iat"] == body["expires_in"] == 300
    assert claims["sub"] == claims["azp"] == "sandbox-client"
    assert claims["aud"] == "https://api.etrusted.com"
    assert claims["scope"] == body["scope"]
    assert claims["iss"] == server.url + "/auth/realms/business"
    assert claims["https://etrusted.com"]["accountRef"] == server.sandbox.config.account_ref
    headers = {"Authorization": f"Bearer {token}"}
    clock.now = claims["exp"] - 0.001
    assert (await api.call("GET", "/channels", headers=headers)).status == 200
    clock.now = claims["exp"]
    assert (await api.call("GET", "/channels", headers=headers)).status == 401


async def test_tampered_or_foreign_tokens_are_refused(api: Api) -> None:
    token = await api.token()
    header, claims, signature = token.split(".")
    longer = dict(_jwt_parts(token)[1], exp=_jwt_parts(token)[1]["exp"] + 3600)
    forged_claims = _b64encode(json.dumps(longer).encode())
    unsigned_header = _b64encode(b'{"alg":"none","typ":"JWT"}')
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BA")
    async with running_sandbox(api.server.sandbox.config) as other:
        foreign = await Api(other, api.http).token()
    for bad in (
        f"{header}.{forged_claims}.{signature}",  # a longer life, same signature
        f"{unsigned_header}.{claims}.",  # alg "none"
        f"{header}.{claims}.{flipped}",
        f"{header}.{claims}",
        f"{token}.extra",
        foreign,  # another sandbox's key
    ):
        reply = await api.call("GET", "/channels", headers={"Authorization": f"Bearer {bad}"})
        assert reply.status == 401, bad
    reply = await api.call("GET", "/channels", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 200


async def test_a_fault_on_the_api_base_spares_both_token_paths(
    api: Api, http: aiohttp.ClientSession
) -> None:
    """Token endpoints live on the login host in production; a path-less fault is the API's."""
    api.server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=503))
    for path in TOKEN_PATHS:
        status, _, _ = await _token_call(http, api.server, _form(), path)
        assert status == 200
    legacy = Fault(kind=FaultKind.STATUS, status=503, path=TOKEN_PATHS[1], times=1)
    api.server.sandbox.add_fault(legacy)
    status, body, _ = await _token_call(http, api.server, _form(), TOKEN_PATHS[1])
    assert (status, body) == (503, {"error": "temporarily_unavailable"})


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
