"""Event types, invite settings and channels over real HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sandbox_helpers import CHANNEL, OTHER_CHANNEL, Api, FakeClock, make_event

from kit.errors import ConfigError
from kit.sandbox import SEEDED_ACCOUNT_REF, SEEDED_CHANNEL_IDS, Sandbox, SandboxConfig

ETY = re.compile(r"ety-[0-9a-f-]{36}")


# -- event types ---------------------------------------------------------------------------


async def test_checkout_is_seeded_active(api: Api) -> None:
    reply = await api.call("GET", "/event-types")
    assert reply.status == 200
    [checkout] = reply.json
    assert checkout["name"] == "checkout"
    assert checkout["active"] is True
    assert ETY.fullmatch(checkout["id"])
    assert checkout["createdAt"] == checkout["updatedAt"] == "2026-01-01T00:00:00.000Z"


async def test_name_filter(api: Api) -> None:
    await api.call("POST", "/event-types", json_body={"name": "delivery"})
    assert [t["name"] for t in (await api.call("GET", "/event-types")).json] == [
        "checkout",
        "delivery",
    ]
    only = await api.call("GET", "/event-types", params={"name": "delivery"})
    assert [t["name"] for t in only.json] == ["delivery"]
    none = await api.call("GET", "/event-types", params={"name": "returns"})
    assert (none.status, none.json) == (200, [])
    empty = await api.call("GET", "/event-types", params={"name": ""})
    assert empty.status == 400
    assert set(empty.json) == {"Error", "ErrorDescription"}


async def test_create_event_type(api: Api, clock: FakeClock) -> None:
    clock.advance(60)
    reply = await api.call("POST", "/event-types", json_body={"name": "after_sales"})
    assert reply.status == 201
    assert reply.json == {
        "id": reply.json["id"],
        "createdAt": "2026-01-01T00:01:00.000Z",
        "updatedAt": "2026-01-01T00:01:00.000Z",
        "active": True,
        "name": "after_sales",
    }
    fetched = await api.call("GET", f"/event-types/{reply.json['id']}")
    assert (fetched.status, fetched.json) == (200, reply.json)
    inactive = await api.call("POST", "/event-types", json_body={"name": "x-1", "active": False})
    assert inactive.json["active"] is False


async def test_duplicate_name_is_409(api: Api) -> None:
    reply = await api.call("POST", "/event-types", json_body={"name": "checkout"})
    assert reply.status == 409
    assert reply.json == {
        "Error": "Conflict",
        "ErrorDescription": "An event type with the name 'checkout' already exists",
    }


NAME_PATTERN_ERROR = (
    'Invalid event: instance.name does not match pattern "(?!^all$)'
    '(^[a-z0-9][-_a-z0-9]{1,253}[a-z0-9]$)"'
)


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({}, 'Invalid event: instance requires property "name"'),
        ({"name": 5}, "Invalid event: instance.name is not of a type(s) string"),
        (
            {"name": "delivery", "active": "true"},
            "Invalid event: instance.active is not of a type(s) boolean",
        ),
        ([], "Invalid event: instance is not of a type(s) object"),
        ({"name": "all"}, NAME_PATTERN_ERROR),
        ({"name": "ab"}, NAME_PATTERN_ERROR),
        ({"name": "Delivery"}, NAME_PATTERN_ERROR),
        ({"name": "-delivery"}, NAME_PATTERN_ERROR),
        ({"name": "delivery_"}, NAME_PATTERN_ERROR),
        ({"name": "de livery"}, NAME_PATTERN_ERROR),
        ({"name": "delivery\n"}, NAME_PATTERN_ERROR),
        ({"name": "a" * 256}, NAME_PATTERN_ERROR),
    ],
)
async def test_invalid_event_type_bodies_are_400(api: Api, body: Any, description: str) -> None:
    reply = await api.call("POST", "/event-types", json_body=body)
    assert reply.status == 400
    assert reply.json == {"Error": "Invalid request", "ErrorDescription": description}


@pytest.mark.parametrize("name", ["abc", "a" * 255, "all-orders", "0_9", "al1"])
async def test_names_at_the_edges_of_the_pattern_are_accepted(api: Api, name: str) -> None:
    assert (await api.call("POST", "/event-types", json_body={"name": name})).status == 201


async def test_put_toggles_active_only(api: Api, clock: FakeClock) -> None:
    created = (await api.call("POST", "/event-types", json_body={"name": "delivery"})).json
    clock.advance(1.5)
    reply = await api.call(
        "PUT", f"/event-types/{created['id']}", json_body={"active": False, "name": "renamed"}
    )
    assert reply.status == 200
    assert reply.json == {
        **created,
        "active": False,
        "updatedAt": "2026-01-01T00:00:01.500Z",
    }


@pytest.mark.parametrize(
    ("body", "description"),
    [
        ({}, 'Invalid event: instance requires property "active"'),
        ({"active": "true"}, "Invalid event: instance.active is not of a type(s) boolean"),
    ],
)
async def test_put_needs_a_boolean_active(api: Api, body: Any, description: str) -> None:
    [checkout] = (await api.call("GET", "/event-types")).json
    reply = await api.call("PUT", f"/event-types/{checkout['id']}", json_body=body)
    assert reply.status == 400
    assert reply.json["ErrorDescription"] == description


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_unknown_event_type_is_404_client_error(api: Api, method: str) -> None:
    reply = await api.call(method, "/event-types/ety-nope", json_body={"active": True})
    assert reply.status == 404
    assert reply.json == {
        "Error": "Not found",
        "ErrorDescription": "The event type with ID 'ety-nope' does not exist",
    }


async def test_delete_event_type(api: Api) -> None:
    created = (await api.call("POST", "/event-types", json_body={"name": "delivery"})).json
    reply = await api.call("DELETE", f"/event-types/{created['id']}")
    assert (reply.status, reply.raw) == (204, b"")
    assert (await api.call("GET", f"/event-types/{created['id']}")).status == 404
    assert (await api.call("DELETE", f"/event-types/{created['id']}")).status == 404
    settings = await api.call("GET", "/invite-settings", params={"event-type-id": created["id"]})
    assert settings.json == []
    assert (await api.post_event(make_event(type="delivery"))).status == 400
    # The name is free again.
    assert (await api.call("POST", "/event-types", json_body={"name": "delivery"})).status == 201


# -- invite settings -----------------------------------------------------------------------


async def test_each_event_type_has_settings_per_channel_with_defaults(api: Api) -> None:
    created = (await api.call("POST", "/event-types", json_body={"name": "delivery"})).json
    reply = await api.call("GET", "/invite-settings", params={"event-type-id": created["id"]})
    assert reply.status == 200
    assert sorted(s["channelId"] for s in reply.json) == sorted(SEEDED_CHANNEL_IDS)
    for settings in reply.json:
        assert settings["id"].startswith("is-")
        assert settings["eventTypeId"] == created["id"]
        assert settings["enabled"] is False
        for key in ("productInviteConfiguration", "serviceInviteConfiguration"):
            config = settings[key]
            assert config["sendingDelayInDays"] == 3
            assert config["sendingTimeOfDay"] == "07:15:00Z"
            assert config["inviteTemplateId"].startswith("tpl-")
            assert config["questionnaireTemplateId"].startswith("qst-")
            assert config["enabled"] is False
    # Seeded checkout settings exist for both channels too: 4 in all.
    assert len((await api.call("GET", "/invite-settings")).json) == 4


async def test_invite_settings_filters_combine(api: Api) -> None:
    everything = (await api.call("GET", "/invite-settings")).json
    one = everything[0]
    by_id = await api.call("GET", "/invite-settings", params={"id": one["id"]})
    assert by_id.json == [one]
    by_channel = await api.call("GET", "/invite-settings", params={"channel-id": OTHER_CHANNEL})
    assert {s["channelId"] for s in by_channel.json} == {OTHER_CHANNEL}
    both = await api.call(
        "GET",
        "/invite-settings",
        params={"channel-id": OTHER_CHANNEL, "event-type-id": one["eventTypeId"]},
    )
    assert len(both.json) == 1
    mismatch = await api.call(
        "GET", "/invite-settings", params={"id": one["id"], "channel-id": "chl-other"}
    )
    assert mismatch.json == []
    single = await api.call("GET", f"/invite-settings/{one['id']}")
    assert (single.status, single.json) == (200, one)


async def test_unknown_invite_settings_get_is_404_without_body(api: Api) -> None:
    reply = await api.call("GET", "/invite-settings/is-nope")
    assert (reply.status, reply.raw) == (404, b"")


async def test_patch_unknown_invite_settings_is_the_documented_400(api: Api) -> None:
    reply = await api.call("PATCH", "/invite-settings/is-nope", json_body={"enabled": True})
    assert reply.status == 400
    assert reply.json == {
        "Error": "Invalid request",
        "ErrorDescription": "The invite settings with ID 'is-nope' does not exist",
    }


async def test_patch_one_invite_settings(api: Api, clock: FakeClock) -> None:
    target = (await api.call("GET", "/invite-settings", params={"channel-id": CHANNEL})).json[0]
    clock.advance(2)
    patch = {
        "enabled": False,
        "serviceInviteConfiguration": {"sendingDelayInDays": 0, "sendingTimeOfDay": "23:59:59Z"},
    }
    reply = await api.call("PATCH", f"/invite-settings/{target['id']}", json_body=patch)
    assert reply.status == 200
    expected = {
        **target,
        "enabled": False,
        "updatedAt": "2026-01-01T00:00:02.000Z",
        "serviceInviteConfiguration": {
            **target["serviceInviteConfiguration"],
            "sendingDelayInDays": 0,
            "sendingTimeOfDay": "23:59:59Z",
        },
    }
    assert reply.json == expected
    assert (await api.call("GET", f"/invite-settings/{target['id']}")).json == expected
    # New invites of checkout on this channel are scheduled with the new timing.
    await api.post_event(make_event("order-9"))
    [invite] = (await api.call("GET", f"/channels/{CHANNEL}/invites")).json["items"]
    assert invite["scheduledAt"] == "2026-01-01T23:59:59.000Z"


async def test_default_schedule_is_three_days_later_at_quarter_past_seven(api: Api) -> None:
    await api.post_event(make_event())
    [invite] = (await api.call("GET", f"/channels/{CHANNEL}/invites")).json["items"]
    assert invite["scheduledAt"] == "2026-01-04T07:15:00.000Z"


@pytest.mark.parametrize(
    ("patch", "problem"),
    [
        ({"enabled": "yes"}, "instance.enabled is not of a type(s) boolean"),
        (
            {"productInviteConfiguration": {"sendingDelayInDays": 181}},
            "instance.productInviteConfiguration.sendingDelayInDays must be less than or equal "
            "to 180",
        ),
        (
            {"serviceInviteConfiguration": {"sendingDelayInDays": -1}},
            "instance.serviceInviteConfiguration.sendingDelayInDays must be greater than or "
            "equal to 0",
        ),
        (
            {"serviceInviteConfiguration": {"sendingDelayInDays": "3"}},
            "instance.serviceInviteConfiguration.sendingDelayInDays is not of a type(s) number",
        ),
        (
            {"serviceInviteConfiguration": {"sendingTimeOfDay": "24:00:00Z"}},
            "instance.serviceInviteConfiguration.sendingTimeOfDay does not match pattern "
            '"^([0-1][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"',
        ),
        (
            {"serviceInviteConfiguration": {"sendingTimeOfDay": "07:15:00"}},
            "instance.serviceInviteConfiguration.sendingTimeOfDay does not match pattern "
            '"^([0-1][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"',
        ),
        (
            {"productInviteConfiguration": {"inviteTemplateId": ""}},
            "instance.productInviteConfiguration.inviteTemplateId does not meet minimum length "
            "of 1",
        ),
        (
            {"productInviteConfiguration": []},
            "instance.productInviteConfiguration is not of a type(s) object",
        ),
        (["enabled"], "instance is not of a type(s) object"),
    ],
)
async def test_invalid_invite_settings_patches_are_400(api: Api, patch: Any, problem: str) -> None:
    target = (await api.call("GET", "/invite-settings")).json[0]
    for path, params in (
        (f"/invite-settings/{target['id']}", None),
        ("/invite-settings", {"event-type-id": target["eventTypeId"]}),
    ):
        reply = await api.call("PATCH", path, json_body=patch, params=params)
        assert reply.status == 400
        assert reply.json == {
            "Error": "Invalid request",
            "ErrorDescription": f"Invalid request body: {problem}",
        }
    assert (await api.call("GET", f"/invite-settings/{target['id']}")).json == target


async def test_patch_by_event_type_updates_every_channel(api: Api) -> None:
    [checkout] = (await api.call("GET", "/event-types")).json
    patch = {
        "serviceInviteConfiguration": {"enabled": True},
        "productInviteConfiguration": {"sendingDelayInDays": 5, "enabled": False},
    }
    reply = await api.call(
        "PATCH", "/invite-settings", params={"event-type-id": checkout["id"]}, json_body=patch
    )
    assert reply.status == 200
    assert sorted(s["channelId"] for s in reply.json) == sorted(SEEDED_CHANNEL_IDS)
    for settings in (await api.call("GET", "/invite-settings")).json:
        assert settings["serviceInviteConfiguration"]["enabled"] is True
        assert settings["productInviteConfiguration"]["sendingDelayInDays"] == 5
        assert settings["productInviteConfiguration"]["enabled"] is False
    missing = await api.call("PATCH", "/invite-settings", json_body=patch)
    assert missing.status == 400
    assert set(missing.json) == {"Error", "ErrorDescription"}
    unknown = await api.call(
        "PATCH", "/invite-settings", params={"event-type-id": "ety-nope"}, json_body=patch
    )
    assert (unknown.status, unknown.json) == (200, [])


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(invite_settings_delay=2.0)])
async def test_settings_of_a_new_event_type_appear_after_the_delay(
    api: Api, clock: FakeClock
) -> None:
    created = (await api.call("POST", "/event-types", json_body={"name": "delivery"})).json
    params = {"event-type-id": created["id"]}
    assert (await api.call("GET", "/invite-settings", params=params)).json == []
    patched = await api.call("PATCH", "/invite-settings", params=params, json_body={})
    assert patched.json == []
    clock.advance(2)
    assert len((await api.call("GET", "/invite-settings", params=params)).json) == 2
    # The seeded ones were there from the start.
    assert len((await api.call("GET", "/invite-settings")).json) == 4


# -- channels ------------------------------------------------------------------------------


async def test_channels_are_seeded(api: Api) -> None:
    reply = await api.call("GET", "/channels")
    assert reply.status == 200
    assert [c["id"] for c in reply.json] == list(SEEDED_CHANNEL_IDS)
    for channel in reply.json:
        assert set(channel) == {
            "id",
            "createdAt",
            "updatedAt",
            "name",
            "address",
            "url",
            "logoUrl",
            "accountRef",
            "locale",
        }
        assert channel["accountRef"] == SEEDED_ACCOUNT_REF
    assert (await api.call("GET", "/channels/")).json == reply.json


async def test_update_channel(api: Api, clock: FakeClock) -> None:
    clock.advance(3)
    body = {"name": "My shop", "url": "https://shop.example", "locale": "en_GB"}
    reply = await api.call("PUT", f"/channels/{CHANNEL}", json_body=body)
    assert (reply.status, reply.json) == (200, {"id": CHANNEL})
    [channel] = [c for c in (await api.call("GET", "/channels")).json if c["id"] == CHANNEL]
    assert channel["name"] == "My shop"
    assert channel["url"] == "https://shop.example"
    assert channel["locale"] == "en_GB"
    assert channel["updatedAt"] == "2026-01-01T00:00:03.000Z"


async def test_update_channel_errors_have_no_body(api: Api) -> None:
    unknown = await api.call("PUT", "/channels/chl-nope", json_body={"name": "x"})
    assert (unknown.status, unknown.raw) == (404, b"")
    invalid = await api.call("PUT", f"/channels/{CHANNEL}", json_body={"url": "https://x"})
    assert (invalid.status, invalid.raw) == (400, b"")


@pytest.mark.parametrize(
    "sandbox_config",
    [SandboxConfig(channel_ids=("chl-a", "chl-b", "chl-c"), event_types=("checkout", "delivery"))],
)
async def test_configured_channels_and_event_types(api: Api) -> None:
    assert [c["id"] for c in (await api.call("GET", "/channels")).json] == [
        "chl-a",
        "chl-b",
        "chl-c",
    ]
    types = (await api.call("GET", "/event-types")).json
    assert [(t["name"], t["active"]) for t in types] == [("checkout", True), ("delivery", True)]
    assert len((await api.call("GET", "/invite-settings")).json) == 6
    assert (await api.post_event(make_event(type="delivery", channel="chl-c"))).status == 202


# -- seeded event types follow the API's name rules --------------------------------------


@pytest.mark.parametrize("name", ["OrderShipped", "order shipped", "all", "ab"])
def test_sandbox_refuses_to_seed_names_etrusted_refuses(name: str) -> None:
    """The sandbox seeds only event type names eTrusted accepts (3-255 characters of the
    documented pattern), so a suite never passes against a type that cannot exist in eTrusted."""
    with pytest.raises(ConfigError, match="must be 3-255 characters"):
        Sandbox(SandboxConfig(event_types=("checkout", name)))
