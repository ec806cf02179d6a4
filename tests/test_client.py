"""The eTrusted client over real HTTP against the bundled sandbox on loopback.

``aioresponses`` is used only for answers the sandbox cannot give on purpose (non-JSON bodies,
garbled 2xx, a Retry-After on 503, specific aiohttp exceptions).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aioresponses import aioresponses
from builders import CHANNEL, event

from kit.client import ETrustedClient
from kit.codec import to_wire
from kit.config import ClientConfig
from kit.errors import (
    AuthenticationError,
    ConflictError,
    ConnectError,
    ETrustedError,
    EventConflictError,
    FailureKind,
    GatewayError,
    InDoubtError,
    KitError,
    NetworkError,
    NotFoundError,
    PermanentAPIError,
    RateLimitedError,
    RetryableAPIError,
    ServerError,
    UnauthorizedError,
    ValidationError,
)
from kit.models import (
    ChannelType,
    ChannelUpdate,
    Customer,
    Event,
    EventChannel,
    InviteConfigurationUpdate,
    InviteSettingsUpdate,
    Product,
    Transaction,
)
from kit.sandbox import SEEDED_CHANNEL_IDS, Fault, FaultKind, SandboxConfig, SandboxServer
from kit.testing import running_sandbox

EMAIL = "john.doe@example.com"


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _body(reference: str = "order-1", event_type: str = "checkout", **extra: Any) -> dict[str, Any]:
    return event(
        reference,
        email=EMAIL,
        type_=event_type,
        channel_type="etrusted",
        first_name="John",
        date="2024-05-01T10:00:00.000Z",
        system="test",
        system_version="1",
        **extra,
    )


def _statuses(server: SandboxServer, method: str, route: str) -> list[int]:
    """Every status the sandbox answered for ``method route``, one entry per request."""
    out: list[int] = []
    for row in server.sandbox.stats()["requests"]:
        if row["method"] == method and row["path"] == route:
            out.extend([row["status"]] * row["count"])
    return sorted(out)


@pytest.fixture
async def server() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(seed=7)) as server:
        yield server


@pytest.fixture
async def client(server: SandboxServer) -> AsyncIterator[ETrustedClient]:
    async with ETrustedClient(server.client_config(request_timeout=5.0)) as client:
        yield client


# -- the whole surface ----------------------------------------------------------------------


async def test_events_round_trip(server: SandboxServer, client: ETrustedClient) -> None:
    event = Event(
        type="checkout",
        customer=Customer(email=EMAIL, first_name="John"),
        channel=EventChannel(id=CHANNEL, type=ChannelType.ETRUSTED),
        transaction=Transaction(reference="order-42", date=datetime(2024, 5, 1, tzinfo=UTC)),
        system="test",
        system_version="1",
        products=[Product(name="Shirt", sku="SKU-1", url="https://shop.example/shirt")],
        metadata={"source": "unit"},
    )
    accepted = await client.create_event(event, allow_checkout=True)
    assert accepted.event_ref.startswith("evt-")
    assert accepted.message is not None
    assert accepted.event_ref in accepted.message

    details = await client.get_event(accepted.event_ref)
    assert details.id == accepted.event_ref
    assert details.transaction is not None
    assert details.transaction.reference == "order-42"
    assert details.customer is not None
    assert details.customer["email"] == EMAIL
    assert details.products == [to_wire(p) for p in event.products or []]
    assert details.metadata == {"source": "unit"}
    assert details.created_at is not None

    sent = server.sandbox.accepted_events()
    assert [e.event_ref for e in sent] == [accepted.event_ref]
    assert sent[0].body == event.to_body()


async def test_post_event_json_sends_the_body_unchanged(
    server: SandboxServer, client: ETrustedClient
) -> None:
    text = json.dumps(_body("order-7"), separators=(",", ":"))
    first = await client.post_event_json(text)
    second = await client.post_event_json(text.encode())
    assert first.event_ref != second.event_ref  # eTrusted does not deduplicate
    bodies = [e.body for e in server.sandbox.accepted_events()]
    assert bodies == [json.loads(text), json.loads(text)]


async def test_mapping_events_are_validated_before_anything_is_sent(
    server: SandboxServer, client: ETrustedClient
) -> None:
    with pytest.raises(ValidationError) as info:
        await client.create_event(_body(customer={"email": "nope"}))  # type: ignore[arg-type]
    assert "customer.email" in info.value.paths
    with pytest.raises(ValidationError) as info:
        await client.create_event(_body())  # checkout without allow_checkout
    assert info.value.paths == ("type",)
    assert server.sandbox.request_count("POST", "/events") == 0
    assert server.sandbox.token_requests == 0  # not even a token was fetched


async def test_duplicates_and_invites(server: SandboxServer, client: ETrustedClient) -> None:
    refs = [
        (await client.create_event(_body("order-dup"), allow_checkout=True)).event_ref
        for _ in range(2)
    ]
    for n in range(5):
        await client.create_event(_body(f"order-other-{n}"), allow_checkout=True)

    page = await client.list_invites(CHANNEL, query="order-dup")
    by_ref = {invite.event_ref: invite for invite in page.items}
    assert set(by_ref) == set(refs)
    first, second = by_ref[refs[0]], by_ref[refs[1]]
    assert first.status is not None
    assert second.status is not None
    assert first.status.name == "SCHEDULED"
    assert (second.status.name, second.status.reason) == ("REJECTED", "DUPLICATE")
    assert first.transaction is not None
    assert first.transaction.reference == "order-dup"

    # Pages of 2 over 7 invites: the iterator follows the cursor to the very end.
    seen = [invite.id async for invite in client.iter_invites(CHANNEL, page_size=2)]
    assert len(seen) == 7
    assert len(set(seen)) == 7
    one_page = await client.list_invites(CHANNEL, count=3)
    assert len(one_page.items) == 3
    assert one_page.after == one_page.items[-1].id
    older = await client.list_invites(CHANNEL, count=3, after=one_page.after)
    assert [i.id for i in older.items] == seen[3:6]
    newer = await client.list_invites(CHANNEL, count=3, before=older.before)
    assert [i.id for i in newer.items] == seen[0:3]
    assert [i async for i in client.iter_invites(CHANNEL, query="no-such-order")] == []


async def test_event_types(client: ETrustedClient) -> None:
    names = {t.name for t in await client.list_event_types()}
    assert "checkout" in names
    created = await client.create_event_type("order_shipped")
    assert created.id.startswith("ety-")
    assert created.active
    assert await client.get_event_type(created.id) == created
    assert await client.find_event_type("order_shipped") == created
    assert await client.find_event_type("no_such_type") is None
    assert [t.name for t in await client.list_event_types("order_shipped")] == ["order_shipped"]

    deactivated = await client.set_event_type_active(created.id, False)
    assert not deactivated.active
    with pytest.raises(PermanentAPIError) as info:  # inactive types are refused by eTrusted
        await client.create_event(_body(event_type="order_shipped"))
    assert info.value.status == 400
    assert "order_shipped" in info.value.message

    with pytest.raises(ConflictError) as conflict:
        await client.create_event_type("order_shipped")
    assert conflict.value.status == 409
    assert conflict.value.kind is FailureKind.PERMANENT

    await client.delete_event_type(created.id)
    with pytest.raises(NotFoundError):
        await client.get_event_type(created.id)
    with pytest.raises(NotFoundError):
        await client.delete_event_type(created.id)
    with pytest.raises(ValidationError):
        await client.create_event_type("All Orders")


async def test_invite_settings(client: ETrustedClient) -> None:
    event_type = await client.create_event_type("delivered")
    settings = await client.list_invite_settings(event_type_id=event_type.id)
    assert {s.channel_id for s in settings} == set(SEEDED_CHANNEL_IDS)
    one = settings[0]
    assert await client.get_invite_settings(one.id) == one
    assert await client.list_invite_settings(id=one.id) == [one]
    in_channel = await client.list_invite_settings(channel_id=one.channel_id)
    assert one in in_channel

    updated = await client.update_invite_settings(
        one.id,
        InviteSettingsUpdate(
            enabled=True,
            service_invite_configuration=InviteConfigurationUpdate(
                sending_delay_in_days=7, sending_time_of_day="09:30:00Z"
            ),
        ),
    )
    assert updated.enabled is True
    assert updated.service_invite_configuration is not None
    assert updated.service_invite_configuration.sending_delay_in_days == 7
    assert updated.service_invite_configuration.sending_time_of_day == "09:30:00Z"
    # Fields not sent stay as they were.
    assert updated.product_invite_configuration == one.product_invite_configuration

    everywhere = await client.update_invite_settings_for_event_type(
        event_type.id, {"productInviteConfiguration": {"enabled": True}}
    )
    assert len(everywhere) == len(SEEDED_CHANNEL_IDS)
    assert all(
        s.product_invite_configuration and s.product_invite_configuration.enabled
        for s in everywhere
    )

    with pytest.raises(ValidationError) as info:
        await client.update_invite_settings(
            one.id,
            InviteSettingsUpdate(
                product_invite_configuration=InviteConfigurationUpdate(sending_delay_in_days=181)
            ),
        )
    assert info.value.paths == ("productInviteConfiguration.sendingDelayInDays",)
    with pytest.raises(PermanentAPIError) as unknown:  # documented: unknown id -> 400, not 404
        await client.update_invite_settings("is-nope", InviteSettingsUpdate(enabled=False))
    assert unknown.value.status == 400
    assert "is-nope" in unknown.value.message
    with pytest.raises(NotFoundError):
        await client.get_invite_settings("is-nope")


async def test_channels(client: ETrustedClient) -> None:
    channels = await client.list_channels()
    assert [c.id for c in channels] == list(SEEDED_CHANNEL_IDS)
    assert channels[0].account_ref is not None
    confirmed = await client.update_channel(
        CHANNEL, ChannelUpdate(name="Renamed shop", locale="de_DE")
    )
    assert confirmed == CHANNEL
    renamed = {c.id: c for c in await client.list_channels()}[CHANNEL]
    assert (renamed.name, renamed.locale) == ("Renamed shop", "de_DE")
    with pytest.raises(NotFoundError) as info:
        await client.update_channel("chl-nope", {"name": "x"})
    assert info.value.message == "(empty body)"  # channels answer errors without a body


async def test_ids_cannot_escape_their_path_segment(
    server: SandboxServer, client: ETrustedClient
) -> None:
    with pytest.raises(NotFoundError):
        await client.get_event("../channels")
    assert server.sandbox.request_count("GET", "/channels") == 0


# -- tokens ---------------------------------------------------------------------------------


async def test_concurrent_first_calls_make_one_token_request(
    server: SandboxServer, client: ETrustedClient
) -> None:
    results = await asyncio.gather(*(client.list_channels() for _ in range(20)))
    assert all(len(r) == len(SEEDED_CHANNEL_IDS) for r in results)
    assert server.sandbox.token_requests == 1


async def test_a_401_drops_the_token_and_retries_exactly_once(
    server: SandboxServer, client: ETrustedClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await client.list_channels()
    server.sandbox.expire_tokens()
    accepted = await client.create_event(_body("after-expiry"), allow_checkout=True)
    assert accepted.event_ref
    assert server.sandbox.token_requests == 2
    assert _statuses(server, "POST", "/events") == [202, 401]
    assert len(server.sandbox.accepted_events()) == 1
    assert [r.action for r in caplog.records if hasattr(r, "action")].count("token_rejected") == 1


async def test_a_second_401_raises_unauthorized(
    server: SandboxServer, client: ETrustedClient
) -> None:
    server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=401, path="/channels", times=2))
    with pytest.raises(UnauthorizedError) as info:
        await client.list_channels()
    assert info.value.kind is FailureKind.UNAUTHORIZED
    assert info.value.status == 401
    assert server.sandbox.token_requests == 2
    assert server.sandbox.request_count("GET", "/channels") == 2
    assert len(await client.list_channels()) == 2  # the fault is spent; the token works


async def test_token_expiry_mid_run_refreshes_before_the_server_refuses() -> None:
    wall = FakeClock(1_700_000_000.0)  # the sandbox's clock (epoch seconds)
    mono = FakeClock(100.0)  # the client's clock
    async with running_sandbox(SandboxConfig(token_expires_in=60), clock=wall) as server:
        config = server.client_config(token_refresh_margin=10)
        async with ETrustedClient(config, clock=mono) as client:
            for _ in range(3):
                await client.list_event_types()
                wall.now += 25
                mono.now += 25
            # 75 s in: the first token (60 s) has run out; the client renewed it at 50 s.
            await client.list_event_types()
            assert server.sandbox.token_requests == 2
            assert 401 not in _statuses(server, "GET", "/event-types")

            # The second token was fetched at 50 s: the server ends it at 110 s, the client
            # would renew it at 100 s. A client clock that lags the server's by 50 s still
            # uses it at 145 s, meets a 401 and recovers with exactly one refresh.
            wall.now += 70
            mono.now += 20
            await client.list_event_types()
            assert server.sandbox.token_requests == 3
            assert _statuses(server, "GET", "/event-types").count(401) == 1


async def test_bad_credentials_surface_as_authentication_errors(server: SandboxServer) -> None:
    async with ETrustedClient(server.client_config(client_secret="wrong")) as client:
        with pytest.raises(ETrustedError) as info:
            await client.list_channels()
    assert info.value.kind is FailureKind.UNAUTHORIZED
    assert server.sandbox.request_count("GET", "/channels") == 0


# -- failure classification against the sandbox's faults ----------------------------------


async def test_400_is_permanent_with_the_servers_message(
    server: SandboxServer, client: ETrustedClient
) -> None:
    with pytest.raises(PermanentAPIError) as info:
        await client.post_event_json(json.dumps({"type": "checkout"}))
    assert info.value.kind is FailureKind.PERMANENT
    assert info.value.status == 400
    assert info.value.message.startswith("Invalid request")
    assert "customer" in info.value.message
    server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=400, times=1))
    with pytest.raises(PermanentAPIError):
        await client.list_event_types()


async def test_503_is_retryable(server: SandboxServer, client: ETrustedClient) -> None:
    server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=503, path="/events"))
    with pytest.raises(RetryableAPIError) as info:
        await client.create_event(_body(), allow_checkout=True)
    assert type(info.value) is RetryableAPIError
    assert info.value.kind is FailureKind.RETRYABLE
    assert info.value.status == 503
    assert info.value.retry_after is None
    assert server.sandbox.accepted_events() == []


@pytest.mark.parametrize(
    ("kind", "stored"), [(FaultKind.STATUS, 0), (FaultKind.FAIL_AFTER_ACCEPT, 1)]
)
async def test_a_500_to_a_post_is_in_doubt_whether_or_not_the_event_was_stored(
    server: SandboxServer, client: ETrustedClient, kind: FaultKind, stored: int
) -> None:
    """The client cannot tell a 500 that stored the event from one that did not, so neither is
    a licence to resend: both are ``ServerError``, an ``InDoubtError``."""
    server.sandbox.add_fault(Fault(kind=kind, status=500, method="POST", path="/events"))
    with pytest.raises(ServerError) as info:
        await client.create_event(_body(), allow_checkout=True)
    assert isinstance(info.value, InDoubtError)
    assert info.value.kind is FailureKind.IN_DOUBT
    assert info.value.status == 500
    assert len(server.sandbox.accepted_events()) == stored


@pytest.mark.parametrize(("retry_after", "expected"), [(2, 2.0), (0.5, 0.5), (None, None)])
async def test_429_is_rate_limited_with_retry_after(
    server: SandboxServer,
    client: ETrustedClient,
    retry_after: float | None,
    expected: float | None,
) -> None:
    server.sandbox.add_fault(Fault(kind=FaultKind.RATE_LIMIT, retry_after=retry_after, times=1))
    with pytest.raises(RateLimitedError) as info:
        await client.create_event(_body(), allow_checkout=True)
    assert info.value.kind is FailureKind.RETRYABLE
    assert info.value.status == 429
    assert info.value.retry_after == expected
    assert server.sandbox.accepted_events() == []


@pytest.mark.parametrize("status", [502, 504, 522, 524])
async def test_gateway_errors_on_post_events_are_in_doubt(
    server: SandboxServer, client: ETrustedClient, status: int
) -> None:
    server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=status))
    with pytest.raises(GatewayError) as post:
        await client.create_event(_body(), allow_checkout=True)
    assert post.value.kind is FailureKind.IN_DOUBT
    with pytest.raises(RetryableAPIError) as get:
        await client.list_channels()
    assert get.value.kind is FailureKind.RETRYABLE


async def test_conflict_on_post_events_is_in_doubt_but_permanent_elsewhere(
    server: SandboxServer, client: ETrustedClient
) -> None:
    server.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=409, times=1)
    )
    with pytest.raises(EventConflictError) as post:
        await client.create_event(_body(), allow_checkout=True)
    assert post.value.kind is FailureKind.IN_DOUBT
    await client.create_event_type("twice")
    with pytest.raises(ConflictError) as again:
        await client.create_event_type("twice")
    assert again.value.kind is FailureKind.PERMANENT


async def test_drop_after_accept_is_in_doubt_and_the_event_exists(
    server: SandboxServer, client: ETrustedClient
) -> None:
    server.sandbox.add_fault(Fault(kind=FaultKind.DROP_AFTER_ACCEPT, path="/events", times=1))
    with pytest.raises(InDoubtError) as info:
        await client.create_event(_body("order-dropped"), allow_checkout=True)
    assert info.value.kind is FailureKind.IN_DOUBT
    assert isinstance(info.value.__cause__, aiohttp.ClientError)
    # It was in doubt for a reason: eTrusted did take the event.
    assert [e.transaction_reference for e in server.sandbox.accepted_events()] == ["order-dropped"]


async def test_drop_before_accept_is_also_in_doubt_for_a_post(
    server: SandboxServer, client: ETrustedClient
) -> None:
    server.sandbox.add_fault(Fault(kind=FaultKind.DROP_BEFORE_ACCEPT, path="/events", times=1))
    with pytest.raises(InDoubtError):  # the client cannot tell the two drops apart
        await client.create_event(_body(), allow_checkout=True)
    assert server.sandbox.accepted_events() == []


async def test_a_dropped_idempotent_call_is_a_retryable_network_error(
    server: SandboxServer, client: ETrustedClient
) -> None:
    # times=2: aiohttp itself retries an idempotent request once when a pooled connection dies.
    server.sandbox.add_fault(Fault(kind=FaultKind.DROP_AFTER_ACCEPT, method="GET", times=2))
    with pytest.raises(NetworkError) as info:
        await client.list_channels()
    assert type(info.value) is NetworkError
    assert info.value.kind is FailureKind.RETRYABLE


async def test_late_answer_past_the_timeout_is_in_doubt(server: SandboxServer) -> None:
    server.sandbox.add_fault(Fault(kind=FaultKind.LATE_ANSWER, path="/events", delay=60))
    async with ETrustedClient(server.client_config(request_timeout=0.3)) as client:
        await client.list_channels()  # token fetched outside the slow path
        with pytest.raises(InDoubtError) as info:
            await client.create_event(_body("order-late"), allow_checkout=True)
        assert info.value.kind is FailureKind.IN_DOUBT
        assert "TimeoutError" in info.value.message
        server.sandbox.add_fault(Fault(kind=FaultKind.LATE_ANSWER, path="/channels", delay=60))
        with pytest.raises(NetworkError) as get:
            await client.list_channels()
        assert get.value.kind is FailureKind.RETRYABLE
    assert [e.transaction_reference for e in server.sandbox.accepted_events()] == ["order-late"]


async def test_closed_port_is_a_connect_error(server: SandboxServer, unused_port: int) -> None:
    config = server.client_config(api_url=f"http://127.0.0.1:{unused_port}")
    async with ETrustedClient(config) as client:
        with pytest.raises(ConnectError) as info:
            await client.create_event(_body(), allow_checkout=True)
    assert info.value.kind is FailureKind.RETRYABLE
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


async def test_empty_404_body_reads_as_such(client: ETrustedClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.get_event("evt-00000000-0000-4000-8000-000000000000")
    assert info.value.status == 404
    assert info.value.message == "(empty body)"
    assert info.value.kind is FailureKind.PERMANENT


async def test_one_warning_per_failed_call_without_secrets(
    server: SandboxServer, client: ETrustedClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await client.tokens.token(client._get_session())
    server.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=503, path="/events", times=1))
    with pytest.raises(RetryableAPIError):
        await client.create_event(_body(), allow_checkout=True)
    failures = [
        r for r in caplog.records if getattr(r, "action", None) == "etrusted_request_failed"
    ]
    assert len(failures) == 1
    record = failures[0]
    assert record.levelno == logging.WARNING
    assert (record.operation, record.status, record.kind) == ("create_event", 503, "retryable")  # type: ignore[attr-defined]
    for r in caplog.records:
        text = r.getMessage() + repr(r.__dict__)
        assert token not in text
        assert server.sandbox.config.client_secret not in text
        assert EMAIL not in text


# -- lifecycle ------------------------------------------------------------------------------


async def test_an_injected_session_is_not_closed(server: SandboxServer) -> None:
    async with aiohttp.ClientSession() as session:
        async with ETrustedClient(server.client_config(), session=session) as client:
            await client.list_channels()
        assert client.closed
        assert not session.closed
        async with ETrustedClient(server.client_config(), session=session) as again:
            assert len(await again.list_channels()) == 2


async def test_an_injected_session_that_raises_for_status_changes_nothing(
    server: SandboxServer,
) -> None:
    async with aiohttp.ClientSession(raise_for_status=True) as session:
        async with ETrustedClient(server.client_config(), session=session) as client:
            with pytest.raises(NotFoundError):
                await client.get_event("evt-unknown")
        bad_config = server.client_config(client_secret="wrong")
        async with ETrustedClient(bad_config, session=session) as bad:
            with pytest.raises(AuthenticationError) as info:
                await bad.list_channels()
        assert info.value.kind is FailureKind.UNAUTHORIZED


async def test_its_own_session_is_closed_and_aclose_is_idempotent(server: SandboxServer) -> None:
    client = ETrustedClient(server.client_config())
    await client.list_channels()
    session = client._session
    assert session is not None
    assert not session.closed
    await client.aclose()
    assert session.closed
    await client.aclose()
    with pytest.raises(KitError, match="closed"):
        await client.list_channels()
    with pytest.raises(KitError):
        async with client:
            pass


async def test_closing_an_unused_client_creates_nothing(server: SandboxServer) -> None:
    client = ETrustedClient(server.client_config())
    await client.aclose()
    assert client._session is None
    assert server.sandbox.token_requests == 0


async def test_reprs_do_not_show_credentials(server: SandboxServer) -> None:
    async with ETrustedClient(server.client_config()) as client:
        secret = server.sandbox.config.client_secret
        assert secret not in repr(client)
        assert secret not in repr(client.config)
        assert secret not in repr(client.tokens)


# -- answers the sandbox does not give: a scripted loopback server --------------------------

Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ScriptedAPI:
    """A real HTTP server with a token endpoint and one scripted answer per method and path."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], Reply] = {}
        app = web.Application()
        app.router.add_post("/oauth/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.server = TestServer(app, host="127.0.0.1")

    def on(self, method: str, path: str, reply: Reply) -> None:
        self.replies[(method, path)] = reply

    def answer(self, method: str, path: str, **kwargs: Any) -> None:
        async def reply(request: web.Request) -> web.StreamResponse:
            return web.Response(**kwargs)

        self.on(method, path, reply)

    def config(self) -> ClientConfig:
        return ClientConfig(
            client_id="c",
            client_secret="s",
            api_url=str(self.server.make_url("")).rstrip("/"),
            token_url=str(self.server.make_url("/oauth/token")),
        )

    async def _token(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"access_token": "tok", "expires_in": 300})

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        reply = self.replies.get((request.method, request.path))
        if reply is None:
            return web.Response(status=599, text="unscripted")
        return await reply(request)


@pytest.fixture
async def scripted() -> AsyncIterator[ScriptedAPI]:
    api = ScriptedAPI()
    await api.server.start_server()
    try:
        yield api
    finally:
        await api.server.close()


@pytest.fixture
async def scripted_client(scripted: ScriptedAPI) -> AsyncIterator[ETrustedClient]:
    async with ETrustedClient(scripted.config(), wall_clock=lambda: 1_714_564_800.0) as client:
        yield client


async def test_non_json_error_body(scripted: ScriptedAPI, scripted_client: ETrustedClient) -> None:
    scripted.answer(
        "POST",
        "/events",
        status=502,
        text="<html>\n<h1>502 Bad Gateway</h1>\n</html>",
        content_type="text/html",
    )
    with pytest.raises(GatewayError) as info:
        await scripted_client.create_event(_body(), allow_checkout=True)
    assert info.value.kind is FailureKind.IN_DOUBT
    assert info.value.message.endswith("(non-JSON body) <html> <h1>502 Bad Gateway</h1> </html>")


async def test_retry_after_on_503_as_seconds_and_http_date(
    scripted: ScriptedAPI, scripted_client: ETrustedClient
) -> None:
    scripted.answer("GET", "/channels", status=503, headers={"Retry-After": "12"})
    with pytest.raises(RetryableAPIError) as seconds:
        await scripted_client.list_channels()
    assert seconds.value.retry_after == 12.0
    scripted.answer(
        "GET", "/channels", status=503, headers={"Retry-After": "Wed, 01 May 2024 12:01:00 GMT"}
    )
    with pytest.raises(RetryableAPIError) as date:
        await scripted_client.list_channels()
    assert date.value.retry_after == 60.0  # the client's wall clock says 2024-05-01T12:00:00Z
    scripted.answer("GET", "/channels", status=429, headers={"Retry-After": "soon"})
    with pytest.raises(RateLimitedError) as unreadable:
        await scripted_client.list_channels()
    assert unreadable.value.retry_after is None


@pytest.mark.parametrize(
    ("status", "error"),
    [(403, PermanentAPIError), (409, ConflictError), (422, PermanentAPIError)],
)
async def test_other_4xx_are_permanent(
    scripted: ScriptedAPI,
    scripted_client: ETrustedClient,
    status: int,
    error: type[PermanentAPIError],
) -> None:
    scripted.answer("GET", "/channels", status=status)
    with pytest.raises(error) as info:
        await scripted_client.list_channels()
    assert info.value.kind is FailureKind.PERMANENT
    assert info.value.message == "(empty body)"


async def test_408_and_redirects(scripted: ScriptedAPI, scripted_client: ETrustedClient) -> None:
    scripted.answer("POST", "/events", status=408)
    with pytest.raises(RetryableAPIError) as timeout:
        await scripted_client.create_event(_body(), allow_checkout=True)
    assert timeout.value.kind is FailureKind.RETRYABLE
    scripted.answer("POST", "/events", status=307, headers={"Location": "/elsewhere"})
    with pytest.raises(PermanentAPIError) as redirect:  # never silently re-sent elsewhere
        await scripted_client.create_event(_body(), allow_checkout=True)
    assert redirect.value.status == 307


async def test_error_messages_mask_customer_emails(
    scripted: ScriptedAPI, scripted_client: ETrustedClient, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.answer(
        "POST",
        "/events",
        status=400,
        text=json.dumps({"Message": f"{EMAIL} is blocked"}),
        content_type="application/json",
    )
    with pytest.raises(PermanentAPIError) as info:
        await scripted_client.create_event(_body(), allow_checkout=True)
    assert info.value.message == "j***@example.com is blocked"
    assert EMAIL not in str(info.value)
    assert caplog.records
    assert all(EMAIL not in r.getMessage() for r in caplog.records)


async def test_query_strings_stay_out_of_errors(
    scripted: ScriptedAPI, scripted_client: ETrustedClient
) -> None:
    scripted.answer("GET", f"/channels/{CHANNEL}/invites", status=500)
    with pytest.raises(RetryableAPIError) as info:
        await scripted_client.list_invites(CHANNEL, query=EMAIL)
    assert info.value.url is not None
    assert info.value.url.endswith(f"/channels/{CHANNEL}/invites")
    assert "example.com" not in str(info.value)


@pytest.mark.parametrize(
    "body",
    ["not json", '{"Message": "accepted, but no ref"}', '{"EventRef": " "}', '["evt-1"]', ""],
    ids=["not-json", "no-ref", "blank-ref", "array", "empty"],
)
async def test_a_garbled_202_is_in_doubt(
    scripted: ScriptedAPI, scripted_client: ETrustedClient, body: str
) -> None:
    scripted.answer("POST", "/events", status=202, text=body, content_type="application/json")
    with pytest.raises(InDoubtError) as info:
        await scripted_client.create_event(_body(), allow_checkout=True)
    assert info.value.status == 202
    assert "malformed" in info.value.message


async def test_a_garbled_200_on_a_read_is_a_retryable_network_error(
    scripted: ScriptedAPI, scripted_client: ETrustedClient
) -> None:
    scripted.answer("GET", "/event-types", text='{"not": "a list"}')
    with pytest.raises(NetworkError) as info:
        await scripted_client.list_event_types()
    assert type(info.value) is NetworkError
    assert info.value.kind is FailureKind.RETRYABLE
    scripted.answer("GET", "/events/evt-1", text='{"type": "checkout"}')  # no id
    with pytest.raises(NetworkError) as details:
        await scripted_client.get_event("evt-1")
    assert "id: is required" in details.value.message


async def _broken_status_line(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.write(b"HTTP/1.1 2x2 Nope\r\n\r\n")
    request.transport.close()
    return web.Response()


async def _truncated_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=202, headers={"Content-Length": "100"})
    await response.prepare(request)
    await response.write(b'{"EventRef":')
    assert request.transport is not None
    request.transport.abort()
    return response


@pytest.mark.parametrize(
    ("reply", "cause"),
    [
        (_broken_status_line, aiohttp.ClientResponseError),
        (_truncated_body, aiohttp.ClientPayloadError),
    ],
    ids=["bad-status-line", "truncated-body"],
)
async def test_broken_responses_are_in_doubt_for_posts_and_retryable_for_reads(
    scripted: ScriptedAPI,
    scripted_client: ETrustedClient,
    reply: Reply,
    cause: type[Exception],
) -> None:
    scripted.on("POST", "/events", reply)
    scripted.on("GET", "/channels", reply)
    with pytest.raises(InDoubtError) as post:
        await scripted_client.create_event(_body(), allow_checkout=True)
    assert isinstance(post.value.__cause__, cause)
    with pytest.raises(NetworkError) as get:
        await scripted_client.list_channels()
    assert type(get.value) is NetworkError
    assert isinstance(get.value.__cause__, cause)


# -- exceptions no loopback server can raise on cue (aioresponses) -------------------------

API = "https://api.test.invalid"
TOKEN_URL = "https://login.test.invalid/oauth/token"


class _NoWriter:
    output_size = 0


class _CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required ``stream_writer`` argument."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", _NoWriter())
        super().__init__(method, url, **kwargs)


def _dns_error() -> aiohttp.ClientConnectorDNSError:
    key = aiohttp.client_reqrep.ConnectionKey("api.test.invalid", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorDNSError(key, OSError(-2, "Name or service not known"))


@pytest.mark.parametrize(
    ("exception", "post_error", "get_error"),
    [
        (aiohttp.ServerDisconnectedError(), InDoubtError, NetworkError),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), InDoubtError, NetworkError),
        (aiohttp.SocketTimeoutError("read"), InDoubtError, NetworkError),
        (aiohttp.ConnectionTimeoutError("connect"), ConnectError, ConnectError),
        (_dns_error(), ConnectError, ConnectError),
    ],
    ids=["disconnect", "reset", "read-timeout", "connect-timeout", "dns"],
)
async def test_aiohttp_failures_are_translated(
    exception: Exception, post_error: type[ETrustedError], get_error: type[ETrustedError]
) -> None:
    config = ClientConfig(client_id="c", client_secret="s", api_url=API, token_url=TOKEN_URL)
    with aioresponses() as mocked:
        mocked.post(
            TOKEN_URL,
            payload={"access_token": "tok", "expires_in": 300},
            response_class=_CompatResponse,
        )
        mocked.post(f"{API}/events", exception=exception)
        mocked.get(f"{API}/channels", exception=exception)
        async with ETrustedClient(config) as client:
            with pytest.raises(post_error) as post:
                await client.create_event(_body(), allow_checkout=True)
            with pytest.raises(get_error) as get:
                await client.list_channels()
    assert type(post.value) is post_error
    assert post.value.__cause__ is exception
    assert type(get.value) is get_error
    assert get.value.kind is FailureKind.RETRYABLE
