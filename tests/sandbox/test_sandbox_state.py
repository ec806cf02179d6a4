"""In-process pieces: --state persistence, the public helpers, and validation robustness."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sandbox_helpers import CHANNEL, Api, FakeClock, make_event

from kit.config import ClientConfig
from kit.errors import ConfigError
from kit.sandbox import Sandbox, SandboxConfig, SandboxServer
from kit.sandbox.persistence import load_state, save_state
from kit.sandbox.validation import validate_event, validate_invite_settings_patch
from kit.testing import running_sandbox


async def _populate(api: Api, clock: FakeClock) -> dict[str, Any]:
    created = (await api.call("POST", "/event-types", json_body={"name": "delivery"})).json
    first = (await api.post_event(make_event("order-1"))).json["EventRef"]
    clock.advance(1)
    second = (await api.post_event(make_event("order-1"))).json["EventRef"]
    dropped = (await api.post_event(make_event("order-2", channel="chl-unknown"))).json["EventRef"]
    settings = (await api.call("GET", "/invite-settings")).json[0]
    await api.call("PATCH", f"/invite-settings/{settings['id']}", json_body={"enabled": False})
    await api.call("PUT", f"/channels/{CHANNEL}", json_body={"name": "Renamed"})
    return {"type": created, "refs": [first, second, dropped]}


async def _snapshot(api: Api, refs: list[str]) -> dict[str, Any]:
    return {
        "events": [(await api.call("GET", f"/events/{ref}")).raw for ref in refs],
        "types": (await api.call("GET", "/event-types")).json,
        "settings": (await api.call("GET", "/invite-settings")).json,
        "channels": (await api.call("GET", "/channels")).json,
        "invites": (await api.call("GET", f"/channels/{CHANNEL}/invites")).json["items"],
        "accepted": api.server.sandbox.accepted_events(),
    }


@pytest.mark.parametrize("sandbox_config", [SandboxConfig(seed=77)])
async def test_state_file_round_trip(
    api: Api, clock: FakeClock, tmp_path: Path, sandbox_config: SandboxConfig
) -> None:
    populated = await _populate(api, clock)
    before = await _snapshot(api, populated["refs"])
    path = tmp_path / "state.json"
    save_state(api.server.sandbox, path)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left

    restored = Sandbox(sandbox_config, clock=clock)
    assert load_state(restored, path) is True
    async with SandboxServer(restored) as server, aiohttp.ClientSession() as http:
        again = Api(server, http)
        assert await _snapshot(again, populated["refs"]) == before
        # Duplicate detection and the id stream carry over.
        third = (await again.post_event(make_event("order-1"))).json["EventRef"]
        assert third not in populated["refs"]
        [newest] = (
            await again.call("GET", f"/channels/{CHANNEL}/invites", params={"count": "1"})
        ).json["items"]
        assert (newest["event"], newest["status"]["reason"]) == (third, "DUPLICATE")
        assert (
            await again.call("POST", "/event-types", json_body={"name": "delivery"})
        ).status == 409


def test_missing_state_file_loads_nothing(tmp_path: Path) -> None:
    assert load_state(Sandbox(), tmp_path / "absent.json") is False


@pytest.mark.parametrize(
    "content", ["{", "[]", json.dumps({"version": 99}), json.dumps({"version": 1})]
)
def test_unusable_state_file_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(ConfigError):
        load_state(Sandbox(), path)


def test_unwritable_state_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        save_state(Sandbox(), tmp_path / "missing-dir" / "state.json")


async def test_running_sandbox_gives_a_matching_client_config() -> None:
    config = SandboxConfig(client_id="shop-1", client_secret="s3cret")
    async with running_sandbox(config) as server:
        client = server.client_config(request_timeout=2.0)
        assert isinstance(client, ClientConfig)
        assert (client.client_id, client.client_secret) == ("shop-1", "s3cret")
        assert client.api_url == server.url
        assert client.token_url == server.url + "/oauth/token"
        assert client.request_timeout == 2.0
        assert "s3cret" not in repr(server.sandbox.config)


async def test_a_stopped_server_restarts_on_the_same_port_with_its_state() -> None:
    async with running_sandbox() as server, aiohttp.ClientSession() as http:
        api = Api(server, http)
        ref = (await api.post_event(make_event())).json["EventRef"]
        url = server.url
        await server.stop()
        with pytest.raises(aiohttp.ClientConnectionError):
            await api.call("GET", f"/events/{ref}")
        await server.start()
        assert server.url == url
        assert (await api.call("GET", f"/events/{ref}")).status == 200


def test_url_before_start_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        _ = SandboxServer().url


@pytest.mark.parametrize(
    "kwargs",
    [
        {"client_id": ""},
        {"token_expires_in": 0},
        {"processing_delay": -1},
        {"channel_ids": ("chl-a", "chl-a")},
        {"event_types": ("checkout", "")},
        {"invite_settings_delay": -0.1},
    ],
)
def test_invalid_sandbox_config(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SandboxConfig(**kwargs)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "customer",
                    "email",
                    "channel",
                    "id",
                    "transaction",
                    "reference",
                    "date",
                    "system",
                    "systemVersion",
                    "products",
                    "metadata",
                    "enabled",
                    "serviceInviteConfiguration",
                    "sendingDelayInDays",
                    "sendingTimeOfDay",
                    "x",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_validators_never_raise(value: Any) -> None:
    for validate in (validate_event, validate_invite_settings_patch):
        result = validate(value)
        assert result is None or isinstance(result, str)
