"""POST /events and GET /events/{ref}: validation order, acceptance, processing, duplicates."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
from etrusted_examples import documented_event
from sandbox_helpers import CHANNEL, OTHER_CHANNEL, Api, FakeClock, make_event

from kit.sandbox import SEEDED_ACCOUNT_REF, SandboxConfig

EVENT_REF = re.compile(r"evt-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


async def test_accepted_event_answers_202_with_the_documented_body(api: Api) -> None:
    body = make_event()
    reply = await api.post_event(body)
    assert reply.status == 202
    ref = reply.json["EventRef"]
    assert EVENT_REF.fullmatch(ref)
    assert reply.json == {
        "Message": f"Your event (`{ref}`) was accepted for processing.",
        "EventRef": ref,
    }
    [accepted] = api.server.sandbox.accepted_events()
    assert accepted.event_ref == ref
    assert (accepted.type, accepted.channel_id, accepted.transaction_reference) == (
        "checkout",
        CHANNEL,
        "order-1",
    )
    assert accepted.body == body
    assert accepted.created_at == "2026-01-01T00:00:00.000Z"  # the fake clock's time


async def test_get_event_returns_the_body_plus_server_fields(api: Api, clock: FakeClock) -> None:
    clock.advance(0.25)
    body = make_event(metadata={"k": "v"}, estimatedDeliveryDate="2026-01-07")
    ref = (await api.post_event(body)).json["EventRef"]
    reply = await api.call("GET", f"/events/{ref}")
    assert reply.status == 200
    assert reply.json == {
        **body,
        "id": ref,
        "accountRef": SEEDED_ACCOUNT_REF,
        "tracking": {"client": "PUBLIC_EVENTS_API", "medium": "API"},
        "createdAt": "2026-01-01T00:00:00.250Z",
    }
    assert ISO_MS.fullmatch(reply.json["createdAt"])


async def test_unknown_event_is_404_without_body(api: Api) -> None:
    for ref in ("evt-00000000-0000-4000-8000-000000000000", "nonsense"):
        reply = await api.call("GET", f"/events/{ref}")
        assert (reply.status, reply.raw) == (404, b"")


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(processing_delay=5.0)])
async def test_event_is_unreadable_until_processing_delay_passed(
    api: Api, clock: FakeClock
) -> None:
    ref = (await api.post_event(make_event())).json["EventRef"]
    invites = f"/channels/{CHANNEL}/invites"
    assert (await api.call("GET", f"/events/{ref}")).status == 404
    assert (await api.call("GET", invites)).json["items"] == []
    clock.advance(4.999)
    assert (await api.call("GET", f"/events/{ref}")).status == 404
    clock.advance(0.001)
    assert (await api.call("GET", f"/events/{ref}")).status == 200
    [invite] = (await api.call("GET", invites)).json["items"]
    assert invite["event"] == ref
    # Accepted is recorded at once, processed or not.
    assert [e.event_ref for e in api.server.sandbox.accepted_events()] == [ref]


def _without(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, leaf = path.split(".")

    def mutate(body: dict[str, Any]) -> None:
        node = body
        for part in parents:
            node = node[part]
        del node[leaf]

    return mutate


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    *parents, leaf = path.split(".")

    def mutate(body: dict[str, Any]) -> None:
        node = body
        for part in parents:
            node = node[part]
        node[leaf] = value

    return mutate


REQUIRED = 'Invalid request: {} requires property "{}"'


@pytest.mark.parametrize(
    ("mutations", "message"),
    [
        ([_without("type")], REQUIRED.format("instance", "type")),
        ([_without("customer")], REQUIRED.format("instance", "customer")),
        ([_without("customer.email")], REQUIRED.format("instance.customer", "email")),
        ([_without("channel")], REQUIRED.format("instance", "channel")),
        ([_without("channel.id")], REQUIRED.format("instance.channel", "id")),
        ([_without("transaction")], REQUIRED.format("instance", "transaction")),
        (
            [_without("transaction.reference")],
            REQUIRED.format("instance.transaction", "reference"),
        ),
        ([_without("system")], REQUIRED.format("instance", "system")),
        ([_without("systemVersion")], REQUIRED.format("instance", "systemVersion")),
        (
            [_set("products", [{"name": "n", "sku": "s", "url": "u"}, {"name": "n", "url": "u"}])],
            REQUIRED.format("instance.products[1]", "sku"),
        ),
        (
            [_set("products", [{"sku": "s"}])],
            REQUIRED.format("instance.products[0]", "name"),
        ),
        (
            [_set("transaction.date", "2026-01-01 10:00")],
            'Invalid request: instance.transaction.date does not conform to the "date-time" format',
        ),
        (
            [_set("estimatedDeliveryDate", "2026-02-30")],
            'Invalid request: instance.estimatedDeliveryDate does not conform to the "date" format',
        ),
        (
            [_set("channel.type", "shop")],
            "Invalid request: instance.channel.type is not one of enum values: "
            "user_defined,etrusted",
        ),
        (
            [_set("customer.email", "not-an-address")],
            'Invalid request: instance.customer.email does not conform to the "email" format',
        ),
        (
            [_set("metadata", {"count": 3})],
            "Invalid request: instance.metadata.count is not of a type(s) string",
        ),
        (
            [_set("metadata", ["a"])],
            "Invalid request: instance.metadata is not of a type(s) object",
        ),
        ([_set("type", 7)], "Invalid request: instance.type is not of a type(s) string"),
        ([_set("customer", "x")], "Invalid request: instance.customer is not of a type(s) object"),
        (
            [_set("products", {"name": "n"})],
            "Invalid request: instance.products is not of a type(s) array",
        ),
        (
            [_set("products", None)],
            "Invalid request: instance.products is not of a type(s) array",
        ),
        (
            [_set("createdAt", "yesterday")],
            'Invalid request: instance.createdAt does not conform to the "date-time" format',
        ),
        ([_set("createdAt", 5)], "Invalid request: instance.createdAt is not of a type(s) string"),
        # Several problems: the first in the documented order wins.
        ([_without("system"), _without("type")], REQUIRED.format("instance", "type")),
        (
            [_without("systemVersion"), _without("channel.id"), _without("customer.email")],
            REQUIRED.format("instance.customer", "email"),
        ),
        (
            [_set("customer.email", "bad"), _without("systemVersion")],
            REQUIRED.format("instance", "systemVersion"),
        ),
        (
            [_set("products", [{"name": "n"}]), _set("transaction.date", "yesterday")],
            REQUIRED.format("instance.products[0]", "sku"),
        ),
    ],
)
async def test_invalid_events_are_400_in_the_documented_order(
    api: Api, mutations: list[Callable[[dict[str, Any]], None]], message: str
) -> None:
    body = make_event()
    for mutate in mutations:
        mutate(body)
    reply = await api.post_event(body)
    assert reply.status == 400
    assert reply.json == {"Message": message}
    assert api.server.sandbox.accepted_events() == []


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T10:00:00Z",
        "2026-01-01T10:00:00.79Z",
        "2026-01-01T10:00:00.123456+02:00",
        "2026-01-01t10:00:00-05:30",
    ],
)
async def test_rfc3339_date_times_with_any_fraction_are_accepted(api: Api, value: str) -> None:
    body = make_event()
    body["transaction"]["date"] = value
    assert (await api.post_event(body)).status == 202


@pytest.mark.parametrize(
    "raw",
    [b"{", b"", b"\xff\xfe{}", b"[1, 2", b"null", b"[]", b'"event"'],
)
async def test_malformed_or_non_object_bodies_are_400(api: Api, raw: bytes) -> None:
    reply = await api.call(
        "POST", "/events", raw_body=raw, headers={"Content-Type": "application/json"}
    )
    assert reply.status == 400
    assert set(reply.json) == {"Message"}
    assert reply.json["Message"].startswith("Invalid request: ")


async def test_event_type_must_exist_and_be_active(api: Api) -> None:
    reply = await api.post_event(make_event(type="delivery"))
    assert reply.status == 400
    assert reply.json == {
        "Message": 'Invalid request: the event type "delivery" does not exist or is not active'
    }
    created = await api.call("POST", "/event-types", json_body={"name": "delivery"})
    assert created.status == 201
    assert (await api.post_event(make_event(type="delivery"))).status == 202
    put = await api.call("PUT", f"/event-types/{created.json['id']}", json_body={"active": False})
    assert put.status == 200
    assert (await api.post_event(make_event("order-2", type="delivery"))).status == 400
    assert len(api.server.sandbox.accepted_events()) == 1


async def test_unknown_channel_is_accepted_but_never_processed(api: Api) -> None:
    body = make_event(channel="chl-00000000-0000-4000-8000-0000000000ff")
    reply = await api.post_event(body)
    assert reply.status == 202
    ref = reply.json["EventRef"]
    assert [e.event_ref for e in api.server.sandbox.accepted_events()] == [ref]
    assert (await api.call("GET", f"/events/{ref}")).status == 404
    for channel in (CHANNEL, body["channel"]["id"]):
        listing = await api.call("GET", f"/channels/{channel}/invites")
        assert listing.status in (200, 404)
        if listing.status == 200:
            assert listing.json["items"] == []


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(strict_channels=True)])
async def test_strict_channels_reject_unknown_channels(api: Api) -> None:
    reply = await api.post_event(make_event(channel="my-own-shop"))
    assert reply.status == 400
    assert reply.json == {"Message": 'Invalid request: the channel "my-own-shop" does not exist'}
    assert (await api.post_event(make_event())).status == 202


async def test_repeated_event_gets_new_ref_and_a_rejected_duplicate_invite(api: Api) -> None:
    body = make_event("order-77")
    first = (await api.post_event(body)).json["EventRef"]
    second = (await api.post_event(copy.deepcopy(body))).json["EventRef"]
    assert first != second
    listing = await api.call("GET", f"/channels/{CHANNEL}/invites", params={"query": "order-77"})
    newest, oldest = listing.json["items"]
    assert newest["event"] == second
    assert newest["status"] == {"name": "REJECTED", "reason": "DUPLICATE"}
    assert oldest["event"] == first
    assert oldest["status"] == {"name": "SCHEDULED"}
    assert newest["transaction"]["id"] == oldest["transaction"]["id"]
    # Both events exist and are readable: nothing is deduplicated at the event level.
    for ref in (first, second):
        assert (await api.call("GET", f"/events/{ref}")).status == 200
    assert [e.event_ref for e in api.server.sandbox.accepted_events()] == [first, second]


async def test_same_reference_for_another_touchpoint_is_not_a_duplicate(api: Api) -> None:
    assert (await api.call("POST", "/event-types", json_body={"name": "delivery"})).status == 201
    await api.post_event(make_event("order-5"))
    await api.post_event(make_event("order-5", type="delivery"))
    await api.post_event(make_event("order-5", channel=OTHER_CHANNEL))
    for channel in (CHANNEL, OTHER_CHANNEL):
        listing = await api.call("GET", f"/channels/{channel}/invites", params={"query": "order-5"})
        assert {i["status"]["name"] for i in listing.json["items"]} == {"SCHEDULED"}


async def test_documented_sample_event_is_accepted(api: Api) -> None:
    # The request sample of the Events API reference (etrusted-api.md §5), with a known
    # channel and an event type that exists; ``createdAt`` is server-set and ignored.
    assert (await api.call("POST", "/event-types", json_body={"name": "delivery"})).status == 201
    sample = documented_event()
    sample["channel"]["id"] = CHANNEL
    reply = await api.post_event(sample)
    assert reply.status == 202
    ref = reply.json["EventRef"]
    [invite] = (
        await api.call("GET", f"/channels/{CHANNEL}/invites", params={"query": "ORDER-12345"})
    ).json["items"]
    assert invite["event"] == ref
    assert invite["reviewType"] == "SERVICE_AND_PRODUCT_REVIEW"
    assert invite["locale"] == "de_DE"
    assert invite["estimatedDeliveryDate"] == "2017-01-07"
    assert invite["transaction"]["date"] == "2017-01-01T13:30:15.000Z"
    assert invite["customer"]["email"] == "john.doe@example.com"


async def _invites_for(api: Api, reference: str) -> list[dict[str, Any]]:
    listing = await api.call("GET", f"/channels/{CHANNEL}/invites", params={"query": reference})
    items: list[dict[str, Any]] = listing.json["items"]
    return items


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(seed=7, invites_follow_settings=True)])
async def test_invites_can_follow_the_invite_settings(api: Api) -> None:
    created = await api.call("POST", "/event-types", json_body={"name": "delivery"})
    type_id = created.json["id"]
    settings = await api.call("GET", "/invite-settings", params={"event-type-id": type_id})
    (mine,) = [s for s in settings.json if s["channelId"] == CHANNEL]
    assert mine["enabled"] is False  # how a type created through the API starts

    off = (await api.post_event(make_event("order-off", type="delivery"))).json["EventRef"]
    assert (await api.call("GET", f"/events/{off}")).status == 200  # stored all the same
    assert await _invites_for(api, "order-off") == []

    patch = await api.call("PATCH", f"/invite-settings/{mine['id']}", json_body={"enabled": True})
    assert patch.status == 200
    on = (await api.post_event(make_event("order-on", type="delivery"))).json["EventRef"]
    assert [i["event"] for i in await _invites_for(api, "order-on")] == [on]


async def test_invites_ignore_the_invite_settings_by_default(api: Api) -> None:
    await api.call("POST", "/event-types", json_body={"name": "delivery"})
    ref = (await api.post_event(make_event("order-9", type="delivery"))).json["EventRef"]
    assert [i["event"] for i in await _invites_for(api, "order-9")] == [ref]
