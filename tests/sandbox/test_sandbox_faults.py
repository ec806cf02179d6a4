"""Fault injection (Python API and /_sandbox/ control plane) and the stats it feeds."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from sandbox_helpers import CHANNEL, Api, make_event, wait_until

from kit.errors import ConfigError
from kit.sandbox import Fault, FaultKind, Sandbox, SandboxConfig, SandboxServer, fault_from_json
from kit.testing import running_sandbox

DISCONNECTED = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


async def _raw_post_event(server: SandboxServer, token: str, body: dict[str, Any]) -> None:
    """A fresh raw client (no pooled connection to hide behind), as a real first send would be."""
    async with aiohttp.ClientSession() as http:
        await http.post(
            server.url + "/events", json=body, headers={"Authorization": f"Bearer {token}"}
        )


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, b'{"Message":"This service is temporarily unavailable"}'),
        (
            500,
            b'{"Message":"The server encountered an unexpected condition which prevented it '
            b'from fulfilling the request."}',
        ),
        (502, b'{"Message":"Bad Gateway"}'),
    ],
)
async def test_status_fault_answers_without_processing(api: Api, status: int, body: bytes) -> None:
    api.server.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=status, times=1)
    )
    failed = await api.post_event(make_event())
    assert (failed.status, failed.raw) == (status, body)
    assert api.server.sandbox.accepted_events() == []
    assert (await api.post_event(make_event())).status == 202  # times=1: spent


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "GET",
            "/event-types",
            b'{"Error":"Service Unavailable","ErrorDescription":"Service Unavailable"}',
        ),
        (
            "GET",
            "/invite-settings",
            b'{"Error":"Service Unavailable","ErrorDescription":"Service Unavailable"}',
        ),
        ("GET", "/channels", b""),
        ("GET", f"/channels/{CHANNEL}/invites", b""),
    ],
)
async def test_status_fault_uses_each_services_body_shape(
    api: Api, method: str, path: str, body: bytes
) -> None:
    api.server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, path=path))
    reply = await api.call(method, path)
    assert (reply.status, reply.raw) == (503, body)


async def test_any_path_fault_spares_the_token_endpoint_unless_named(api: Api) -> None:
    sandbox = api.server.sandbox
    sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=500))
    await api.token()  # would raise on a 500
    assert (await api.call("GET", "/channels")).status == 500
    sandbox.clear_faults()
    sandbox.add_fault(Fault(kind=FaultKind.STATUS, path="/oauth/token", status=503, times=1))
    async with api.http.post(api.server.token_url, data={"grant_type": "client_credentials"}) as r:
        assert r.status == 503
        assert await r.json() == {"error": "temporarily_unavailable"}
    assert sandbox.token_requests == 2  # api.token() and the one api.call() fetched


@pytest.mark.parametrize(
    ("retry_after", "header"), [(2, "2"), (2.0, "2"), (0.5, "0.5"), (None, None)]
)
async def test_rate_limit_fault(api: Api, retry_after: float | None, header: str | None) -> None:
    api.server.sandbox.add_fault(
        Fault(kind=FaultKind.RATE_LIMIT, path="/events", retry_after=retry_after)
    )
    reply = await api.post_event(make_event())
    assert reply.status == 429
    assert reply.headers.get("Retry-After") == header
    assert reply.json == {"Message": "Too Many Requests"}
    assert api.server.sandbox.accepted_events() == []


async def test_drop_after_accept_processes_then_cuts_the_connection(api: Api) -> None:
    sandbox = api.server.sandbox
    token = await api.token()
    sandbox.add_fault(Fault(kind=FaultKind.DROP_AFTER_ACCEPT, path="/events", times=1))
    with pytest.raises(DISCONNECTED):
        await _raw_post_event(api.server, token, make_event("order-lost-answer"))
    [accepted] = sandbox.accepted_events()
    assert accepted.transaction_reference == "order-lost-answer"
    # The event was really processed: readable, and its invite is there to reconcile with.
    assert (await api.call("GET", f"/events/{accepted.event_ref}")).status == 200
    listing = await api.call(
        "GET", f"/channels/{CHANNEL}/invites", params={"query": "order-lost-answer"}
    )
    assert [i["event"] for i in listing.json["items"]] == [accepted.event_ref]
    assert sandbox.request_count("POST", "/events") == 1
    assert sandbox.stats()["requests"][-1] == {
        "method": "POST",
        "path": "/oauth/token",
        "status": 200,
        "count": 2,
    }
    assert {"method": "POST", "path": "/events", "status": 0, "count": 1} in sandbox.stats()[
        "requests"
    ]


async def test_drop_before_accept_cuts_the_connection_without_processing(api: Api) -> None:
    sandbox = api.server.sandbox
    token = await api.token()
    sandbox.add_fault(Fault(kind=FaultKind.DROP_BEFORE_ACCEPT, path="/events", times=1))
    with pytest.raises(DISCONNECTED):
        await _raw_post_event(api.server, token, make_event())
    assert sandbox.accepted_events() == []
    assert (await api.call("GET", f"/channels/{CHANNEL}/invites")).json["items"] == []
    await _raw_post_event(api.server, token, make_event())
    assert len(sandbox.accepted_events()) == 1


async def test_late_answer_processes_first_and_answers_after_the_delay(api: Api) -> None:
    sandbox = api.server.sandbox
    sandbox.add_fault(Fault(kind=FaultKind.LATE_ANSWER, path="/events", delay=0.05, times=1))
    reply = await api.post_event(make_event())
    assert reply.status == 202
    assert [e.event_ref for e in sandbox.accepted_events()] == [reply.json["EventRef"]]


async def test_late_answer_times_the_client_out_after_the_event_was_stored() -> None:
    server = SandboxServer(Sandbox(SandboxConfig()))
    await server.start()
    try:
        server.sandbox.add_fault(Fault(kind=FaultKind.LATE_ANSWER, path="/events", delay=3600))
        async with aiohttp.ClientSession() as http:
            api = Api(server, http)
            token = await api.token()
            timeout = aiohttp.ClientTimeout(total=0.3)
            with pytest.raises(asyncio.TimeoutError):
                await http.post(
                    server.url + "/events",
                    json=make_event(),
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=timeout,
                )
            assert len(server.sandbox.accepted_events()) == 1
    finally:
        # An hour-long late answer must not hold the shutdown up.
        await asyncio.wait_for(server.stop(), timeout=10)


async def test_server_stop_cuts_pending_late_answers() -> None:
    async with running_sandbox() as server, aiohttp.ClientSession() as http:
        server.sandbox.add_fault(Fault(kind=FaultKind.LATE_ANSWER, path="/events", delay=3600))
        token = await Api(server, http).token()
        request = asyncio.create_task(
            http.post(
                server.url + "/events",
                json=make_event(),
                headers={"Authorization": f"Bearer {token}"},
            )
        )
        # Processed: from now on the handler is waiting to answer.
        await wait_until(lambda: bool(server.sandbox.accepted_events()))
        await asyncio.wait_for(server.stop(), timeout=10)
        with pytest.raises(DISCONNECTED):
            await asyncio.wait_for(request, timeout=10)


async def test_method_and_path_matching(api: Api) -> None:
    sandbox = api.server.sandbox
    ref = (await api.post_event(make_event())).json["EventRef"]
    sandbox.add_fault(Fault(kind=FaultKind.STATUS, method="get", path="/events", status=500))
    assert (await api.call("GET", f"/events/{ref}")).status == 200  # exact path only
    assert (await api.post_event(make_event("o-2"))).status == 202  # other method
    sandbox.add_fault(Fault(kind=FaultKind.STATUS, method="GET", path="/events/*", status=502))
    assert (await api.call("GET", f"/events/{ref}")).status == 502
    assert (await api.call("GET", "/event-types")).status == 200  # "/events/*" is not "/event"


async def test_faults_match_in_order_and_count_against_times(api: Api) -> None:
    sandbox = api.server.sandbox
    first = sandbox.add_fault(Fault(kind=FaultKind.STATUS, path="/channels", status=500, times=2))
    second = sandbox.add_fault(Fault(kind=FaultKind.STATUS, path="/channels*", status=503))
    statuses = [(await api.call("GET", "/channels")).status for _ in range(4)]
    assert statuses == [500, 500, 503, 503]
    described = {f["id"]: f for f in sandbox.faults()}
    assert described[first]["fired"] == 2
    assert described[first]["exhausted"] is True
    assert described[second]["fired"] == 2
    assert sandbox.remove_fault(second) is True
    assert sandbox.remove_fault(second) is False
    assert (await api.call("GET", "/channels")).status == 200


async def _fire_pattern(seed: int, probability: float) -> list[int]:
    async with running_sandbox(SandboxConfig(seed=seed)) as server, aiohttp.ClientSession() as h:
        api = Api(server, h)
        server.sandbox.add_fault(
            Fault(kind=FaultKind.STATUS, path="/channels", probability=probability)
        )
        return [(await api.call("GET", "/channels")).status for _ in range(30)]


async def test_probability_is_seeded_and_reproducible() -> None:
    first = await _fire_pattern(seed=42, probability=0.5)
    again = await _fire_pattern(seed=42, probability=0.5)
    assert first == again
    assert set(first) == {200, 503}  # 30 fair coin flips: both outcomes (seeded, so certain)
    assert set(await _fire_pattern(seed=42, probability=0.0)) == {200}


async def test_seed_makes_ids_reproducible() -> None:
    async def refs(seed: int) -> list[str]:
        async with (
            running_sandbox(SandboxConfig(seed=seed)) as server,
            aiohttp.ClientSession() as h,
        ):
            api = Api(server, h)
            return [(await api.post_event(make_event(f"o-{n}"))).json["EventRef"] for n in range(3)]

    assert await refs(9) == await refs(9)
    assert await refs(9) != await refs(10)


# -- the control plane ---------------------------------------------------------------------


async def test_control_plane_faults_roundtrip(api: Api) -> None:
    spec = {"kind": "status", "method": "POST", "path": "/events", "status": 503, "times": 1}
    added = await api.call("POST", "/_sandbox/faults", json_body=spec, auth=False)
    assert added.status == 201
    fault_id = added.json["id"]
    listing = (await api.call("GET", "/_sandbox/faults", auth=False)).json
    assert listing == [
        {
            "id": fault_id,
            "kind": "status",
            "method": "POST",
            "path": "/events",
            "status": 503,
            "retry_after": None,
            "delay": 0.0,
            "times": 1,
            "probability": 1.0,
            "fired": 0,
            "exhausted": False,
        }
    ]
    assert (await api.post_event(make_event())).status == 503
    assert (await api.call("DELETE", f"/_sandbox/faults/{fault_id}", auth=False)).status == 204
    assert (await api.call("DELETE", f"/_sandbox/faults/{fault_id}", auth=False)).status == 404
    await api.call("POST", "/_sandbox/faults", json_body={"kind": "rate_limit"}, auth=False)
    assert (await api.call("DELETE", "/_sandbox/faults", auth=False)).status == 204
    assert (await api.call("GET", "/_sandbox/faults", auth=False)).json == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[]",
        b'{"kind": "explode"}',
        b'{"status": 503}',
        b'{"kind": "status", "colour": "red"}',
        b'{"kind": "status", "status": "503"}',
        b'{"kind": "status", "status": 99}',
        b'{"kind": "status", "probability": 1.5}',
        b'{"kind": "late_answer", "delay": -1}',
        b'{"kind": "status", "times": true}',
        b'{"kind": "status", "path": "events"}',
    ],
)
async def test_control_plane_rejects_bad_faults(api: Api, raw: bytes) -> None:
    reply = await api.call("POST", "/_sandbox/faults", raw_body=raw, auth=False)
    assert reply.status == 400
    assert isinstance(reply.json["error"], str)
    assert api.server.sandbox.faults() == []


async def test_control_plane_is_never_faulted_or_authenticated(api: Api) -> None:
    api.server.sandbox.add_fault(Fault(kind=FaultKind.DROP_BEFORE_ACCEPT))
    reply = await api.call("GET", "/_sandbox/stats", auth=False)
    assert reply.status == 200


async def test_control_plane_events_stats_and_reset(api: Api) -> None:
    sandbox = api.server.sandbox
    first = (await api.post_event(make_event("order-1"))).json["EventRef"]
    await api.call("GET", f"/events/{first}")
    await api.call("GET", "/events/evt-unknown")
    sandbox.add_fault(Fault(kind=FaultKind.STATUS, path="/channels"))
    await api.call("GET", "/channels")

    events = (await api.call("GET", "/_sandbox/events", auth=False)).json
    assert events == [
        {
            "eventRef": first,
            "type": "checkout",
            "channelId": CHANNEL,
            "transactionReference": "order-1",
            "createdAt": "2026-01-01T00:00:00.000Z",
        }
    ]
    stats = (await api.call("GET", "/_sandbox/stats", auth=False)).json
    assert stats["tokenRequests"] == 1
    assert stats["acceptedEvents"] == 1
    assert stats["faultsFired"] == 1
    assert stats["requests"] == [
        {"method": "GET", "path": "/channels", "status": 503, "count": 1},
        {"method": "GET", "path": "/events/{ref}", "status": 200, "count": 1},
        {"method": "GET", "path": "/events/{ref}", "status": 404, "count": 1},
        {"method": "POST", "path": "/events", "status": 202, "count": 1},
        {"method": "POST", "path": "/oauth/token", "status": 200, "count": 1},
    ]
    assert sandbox.request_count("GET", "/events") == 2
    assert sandbox.request_count("GET", f"/events/{first}") == 1
    assert sandbox.request_count("*", "/") == 5

    assert (await api.call("POST", "/_sandbox/reset", auth=False)).status == 204
    assert sandbox.accepted_events() == []
    assert sandbox.faults() == []
    assert sandbox.request_count("*", "/") == 0
    # Tokens survive a reset; the account is fresh again.
    assert (await api.call("GET", f"/events/{first}")).status == 404
    second = (await api.post_event(make_event("order-1"))).json["EventRef"]
    assert second != first
    [invite] = (await api.call("GET", f"/channels/{CHANNEL}/invites")).json["items"]
    assert invite["status"] == {"name": "SCHEDULED"}


async def test_unknown_api_paths_are_plain_404(api: Api) -> None:
    reply = await api.call("GET", "/reviews", auth=False)
    assert reply.status == 404
    assert api.server.sandbox.request_count("GET", "/reviews") == 1


def test_fault_from_json_builds_the_same_fault() -> None:
    fault = Fault(
        kind=FaultKind.RATE_LIMIT,
        method="post",
        path="/events*",
        retry_after=1.5,
        times=3,
        probability=0.25,
    )
    assert fault.method == "POST"
    assert fault_from_json(fault.to_json()) == fault


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": 600},
        {"probability": -0.1},
        {"times": -1},
        {"delay": -0.5},
        {"retry_after": -1},
        {"path": "no-slash"},
    ],
)
def test_invalid_faults_raise_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        Fault(kind=FaultKind.STATUS, **kwargs)
