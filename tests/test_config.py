"""ClientConfig.from_env: the one rule for which ETRUSTED_* variable means what."""

from __future__ import annotations

import pytest

from kit.cli._env import client_config
from kit.config import DEFAULT_API_URL, DEFAULT_TOKEN_URL, ClientConfig
from kit.errors import ConfigError

SANDBOX = {
    "ETRUSTED_CLIENT_ID": "sandbox-client",
    "ETRUSTED_CLIENT_SECRET": "sandbox-secret",
    "ETRUSTED_API_URL": "http://127.0.0.1:8625",
    "ETRUSTED_TOKEN_URL": "http://127.0.0.1:8625/oauth/token",
}


def test_from_env_reads_the_four_variables() -> None:
    """An application given the sandbox's export line targets the sandbox, not production."""
    config = ClientConfig.from_env(SANDBOX)
    assert (config.client_id, config.client_secret) == ("sandbox-client", "sandbox-secret")
    assert config.api_url == "http://127.0.0.1:8625"
    assert config.token_url == "http://127.0.0.1:8625/oauth/token"


def test_from_env_defaults_the_urls_to_production_and_takes_overrides() -> None:
    """Without URL variables (or with empty ones) the production URLs are used."""
    env = {**SANDBOX, "ETRUSTED_API_URL": ""}
    del env["ETRUSTED_TOKEN_URL"]
    config = ClientConfig.from_env(env, request_timeout=3.0)
    assert (config.api_url, config.token_url) == (DEFAULT_API_URL, DEFAULT_TOKEN_URL)
    assert config.request_timeout == 3.0


@pytest.mark.parametrize(
    ("absent", "named"),
    [
        (["ETRUSTED_CLIENT_ID"], "missing ETRUSTED_CLIENT_ID:"),
        (["ETRUSTED_CLIENT_SECRET"], "missing ETRUSTED_CLIENT_SECRET:"),
        (
            ["ETRUSTED_CLIENT_ID", "ETRUSTED_CLIENT_SECRET"],
            "missing ETRUSTED_CLIENT_ID and ETRUSTED_CLIENT_SECRET:",
        ),
    ],
)
def test_from_env_names_each_missing_variable(absent: list[str], named: str) -> None:
    """A missing or empty credential variable is a ConfigError that names it."""
    env = {k: v for k, v in SANDBOX.items() if k not in absent}
    with pytest.raises(ConfigError, match=named):
        ClientConfig.from_env(env)
    with pytest.raises(ConfigError, match=named):
        ClientConfig.from_env({**SANDBOX, **dict.fromkeys(absent, "")})


def test_the_cli_uses_the_same_rule() -> None:
    """The command and an embedding application build the same config from the same variables."""
    assert client_config(SANDBOX) == ClientConfig.from_env(SANDBOX)
    with pytest.raises(ConfigError, match="missing ETRUSTED_CLIENT_SECRET"):
        client_config({"ETRUSTED_CLIENT_ID": "x"})


def test_overrides_win_over_the_variables() -> None:
    """A test can take the credentials from the environment and point the URLs elsewhere."""
    config = ClientConfig.from_env(
        SANDBOX, api_url="http://127.0.0.1:9", token_url="http://127.0.0.1:9/oauth/token"
    )
    assert (config.api_url, config.token_url) == (
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/oauth/token",
    )
    assert config.client_id == "sandbox-client"
    given = ClientConfig.from_env({}, client_id="mine", client_secret="also-mine")
    assert (given.client_id, given.api_url) == ("mine", DEFAULT_API_URL)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.example.com",
        "http://",
        "http://api.example.com:port",
        "http://api..example.com",
        "http://exa mple.com",
        "http://" + "a" * 64 + ".example.com",
    ],
)
def test_a_url_no_request_could_reach_is_refused_when_the_config_is_built(url: str) -> None:
    """A typo in a URL is a ConfigError at start, not a driver error or an endless retry of
    every send (an empty label, for one, would fail only when the name is resolved)."""
    with pytest.raises(ConfigError, match="api_url"):
        ClientConfig(client_id="id", client_secret="secret", api_url=url)
    with pytest.raises(ConfigError, match="token_url"):
        ClientConfig(client_id="id", client_secret="secret", token_url=url)


def test_usual_hosts_are_accepted() -> None:
    for url in ("http://127.0.0.1:8625", "https://[::1]:8443", "https://bücher.example"):
        assert ClientConfig(client_id="id", client_secret="secret", api_url=url).api_url == url
