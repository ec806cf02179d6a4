"""Loading the configuration file: the issue's example works, and every mistake is reported
at its key path, all at once, without ever quoting a secret."""

from __future__ import annotations

import copy
import logging
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from adapters.shopify import ShopifyConfig
from kit.adapters import installed_adapters
from kit.config import ENV_VARIABLES, ClientConfig
from kit.configfile import (
    ETrustedSettings,
    KitConfig,
    Secret,
    config_from_mapping,
    load_config,
    parse_config,
)
from kit.errors import ConfigError, ConfigFileError
from kit.policy import TriggerOn

# The example of issue #10, verbatim: these keys must work.
ISSUE_EXAMPLE = """\
[outbox]
url = "sqlite:///etrusted-kit.db"

[etrusted]
client_id = { env = "ETRUSTED_CLIENT_ID" }
client_secret = { env = "ETRUSTED_CLIENT_SECRET" }
# api_url = "...", token_url = "..."   (default: production eTrusted)

[[sources]]
name = "my-shop"                       # its webhook route: POST /webhooks/my-shop
adapter = "shopify"
shop_domain = "my-shop.myshopify.com"
webhook_secrets = [{ env = "SHOPIFY_WEBHOOK_SECRET" }]   # several during a rotation
channel_id = "chl-..."

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
delay = "3d"                           # hold-back: a cancellation inside it withdraws the invite
# per_customer = "30d"                 # optional: at most one invite per e-mail per 30 days
"""

ENV = {
    "ETRUSTED_CLIENT_ID": "client-id-value",
    "ETRUSTED_CLIENT_SECRET": "client-secret-value-9f3a",
    "SHOPIFY_WEBHOOK_SECRET": "webhook-secret-value-77c1",
}
SECRETS = ("client-secret-value-9f3a", "webhook-secret-value-77c1")


def test_the_issue_example_loads_with_its_secrets_from_the_given_environment() -> None:
    config = parse_config(ISSUE_EXAMPLE, environ=ENV)

    assert config.outbox.url == Secret("sqlite:///etrusted-kit.db")
    assert config.etrusted.client_id == Secret("client-id-value", env="ETRUSTED_CLIENT_ID")
    assert config.etrusted.given()["client_secret"] == "client-secret-value-9f3a"
    (source,) = config.sources
    assert (source.name, source.route, source.adapter) == (
        "my-shop",
        "/webhooks/my-shop",
        "shopify",
    )
    assert [s.value for s in source.webhook_secrets] == ["webhook-secret-value-77c1"]
    assert source.adapter_config == ShopifyConfig(shop_domain="my-shop.myshopify.com")
    assert source.policy.channel_id == "chl-..."
    (trigger,) = source.policy.triggers
    assert (trigger.on, trigger.event_type) == (TriggerOn.ORDER_FULFILLED, "order_shipped")
    assert trigger.delay == timedelta(days=3)
    assert trigger.per_customer is None


def test_an_empty_file_is_a_valid_configuration() -> None:
    """Every section is optional: a file may hold only what one command needs."""
    assert parse_config("", environ={}) == KitConfig()


def test_secrets_never_show_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A loaded config can be printed or logged whole, and an error message can be shown to
    anyone: neither carries a secret, written literally or taken from the environment."""
    literal = ISSUE_EXAMPLE.replace(
        'client_id = { env = "ETRUSTED_CLIENT_ID" }', 'client_id = "client-secret-value-9f3a"'
    ).replace(
        'webhook_secrets = [{ env = "SHOPIFY_WEBHOOK_SECRET" }]',
        'webhook_secrets = ["webhook-secret-value-77c1", { env = "SHOPIFY_WEBHOOK_SECRET" }]',
    )
    caplog.set_level(logging.DEBUG)
    config = parse_config(literal, environ=ENV)
    shown = [repr(config), str(config), repr(config.sources[0].webhook_secrets)]
    shown += [str(s) for s in config.sources[0].webhook_secrets]
    # A malformed secret table and mistakes next to good secrets are reported without them.
    broken = literal.replace('channel_id = "chl-..."', "channel_id = 5").replace(
        'client_secret = { env = "ETRUSTED_CLIENT_SECRET" }',
        'client_secret = { env = "ETRUSTED_CLIENT_SECRET", or = "client-secret-value-9f3a" }',
    )
    broken = 'colour = "client-secret-value-9f3a"\n' + broken
    with pytest.raises(ConfigFileError) as caught:
        parse_config(broken, environ=ENV)
    shown.append(str(caught.value))
    shown.append(caplog.text)
    for text in shown:
        for secret in SECRETS:
            assert secret not in text
    assert "colour: unknown key" in str(caught.value)


def _base() -> dict[str, Any]:
    return tomllib.loads(ISSUE_EXAMPLE)


def _source(data: dict[str, Any]) -> dict[str, Any]:
    source: dict[str, Any] = data["sources"][0]
    return source


def _second_source(data: dict[str, Any]) -> None:
    other = copy.deepcopy(_source(data))
    data["sources"].append(other)


CASES: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    (
        "wrong type",
        lambda d: d["outbox"].update(url=5),
        'outbox.url: expected a string or { env = "VARIABLE" }',
    ),
    (
        "wrong type of a number",
        lambda d: d["etrusted"].update(request_timeout="15"),
        "etrusted.request_timeout: expected a number, got a string",
    ),
    ("unknown key at the top", lambda d: d.update(outbx={}), "outbx: unknown key"),
    (
        "unknown key in a section",
        lambda d: d["etrusted"].update(clientid="x"),
        "etrusted.clientid: unknown key (did you mean 'client_id'?)",
    ),
    (
        "unknown key in a source",
        lambda d: _source(d).update(shop_domian="x"),
        "sources[0].shop_domian: unknown key (did you mean 'shop_domain'?)",
    ),
    (
        "unknown key in a trigger",
        lambda d: _source(d)["triggers"][0].update(delya="3d"),
        "sources[0].triggers[0].delya: unknown key (did you mean 'delay'?)",
    ),
    (
        "unknown key in the exclusions",
        lambda d: _source(d).update(exclusions={"test_order": False}),
        "sources[0].exclusions.test_order: unknown key (did you mean 'test_orders'?)",
    ),
    (
        "missing source name",
        lambda d: _source(d).pop("name"),
        "sources[0].name: required key missing",
    ),
    (
        "missing trigger event type",
        lambda d: _source(d)["triggers"][0].pop("event_type"),
        "sources[0].triggers[0].event_type: required key missing",
    ),
    (
        "missing adapter key",
        lambda d: _source(d).pop("shop_domain"),
        "sources[0].shop_domain: required key missing",
    ),
    (
        "bad duration",
        lambda d: _source(d)["triggers"][0].update(delay="3 days"),
        "sources[0].triggers[0].delay: not a duration (use e.g. '3d', '12h', '30m'): '3 days'",
    ),
    (
        "bad enum",
        lambda d: _source(d).update(consent="maybe"),
        "sources[0].consent: 'maybe' is not one of 'all', 'unless_opted_out', 'opted_in_only'",
    ),
    (
        "a string for a list",
        lambda d: _source(d).update(exclusions={"order_tags": "vip"}),
        "sources[0].exclusions.order_tags: expected a list of names, got the string 'vip'",
    ),
    (
        "unknown adapter",
        lambda d: _source(d).update(adapter="shopfy"),
        "sources[0].adapter: unknown adapter 'shopfy'; installed adapters: "
        + ", ".join(installed_adapters()),
    ),
    (
        "duplicate source names",
        _second_source,
        "sources: sources[0] and sources[1] are both called 'my-shop'",
    ),
    (
        "bad route name",
        lambda d: _source(d).update(name="My Shop"),
        "sources[0].name: 'My Shop' is not a source name",
    ),
    (
        "route name with a slash",
        lambda d: _source(d).update(name="../admin"),
        "sources[0].name: '../admin' is not a source name",
    ),
    (
        "empty webhook secrets",
        lambda d: _source(d).update(webhook_secrets=[]),
        "sources[0].webhook_secrets: give at least one secret",
    ),
    (
        "no webhook secrets",
        lambda d: _source(d).pop("webhook_secrets"),
        "sources[0].webhook_secrets: give at least one secret",
    ),
    (
        "missing environment variable",
        lambda d: _source(d).update(webhook_secrets=["x", {"env": "NOT_SET_ANYWHERE"}]),
        "sources[0].webhook_secrets[1]: the environment variable NOT_SET_ANYWHERE is not set",
    ),
    (
        "a malformed env table",
        lambda d: d["etrusted"].update(client_secret={"env": "X", "default": "y"}),
        'etrusted.client_secret: expected a string or { env = "VARIABLE" }',
    ),
    (
        "a policy rule across keys",
        lambda d: _source(d).pop("channel_id"),
        "sources[0]: a source needs channel_id or channels_by_locale",
    ),
    (
        "a validator of the policy",
        lambda d: _source(d)["triggers"][0].update(event_type="checkout"),
        "sources[0].triggers[0]: event_type 'checkout' is reserved",
    ),
    (
        "a validator of the client",
        lambda d: d["etrusted"].update(api_url="ftp://example.com"),
        "etrusted: api_url must be an http(s) URL",
    ),
    (
        "a rule of the adapter",
        lambda d: _source(d).update(shop_domain="my shop"),
        "sources[0]: shop_domain must be a host name",
    ),
    (
        "an admin host name with a port",
        lambda d: d.update(admin={"allowed_hosts": ["ops.example.com", "ops.example.com:9108"]}),
        "admin.allowed_hosts: 'ops.example.com:9108' is not a host name",
    ),
    (
        "an admin host name with a scheme",
        lambda d: d.update(admin={"allowed_hosts": ["https://ops.example.com"]}),
        "admin.allowed_hosts: 'https://ops.example.com' is not a host name",
    ),
    (
        "admin host names as a string",
        lambda d: d.update(admin={"allowed_hosts": "ops.example.com"}),
        "admin.allowed_hosts: expected a list of host names",
    ),
    (
        "an admin public URL without a scheme",
        lambda d: d.update(admin={"public_url": "ops.example.com/kit"}),
        "admin.public_url: public_url must be an http(s) URL",
    ),
    (
        "an admin public URL with a bad host",
        lambda d: d.update(admin={"public_url": "https://ops example.com/kit"}),
        "admin.public_url: public_url has an invalid host",
    ),
    ("a table expected", lambda d: d.update(outbox="x"), "outbox: expected a table, got a string"),
    (
        "an array expected",
        lambda d: d.update(sources={"name": "x"}),
        "sources: expected an array, got a table",
    ),
]


@pytest.mark.parametrize(
    ("mistake", "expected"), [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_mistake_is_reported_at_its_key_path(
    mistake: Callable[[dict[str, Any]], object], expected: str
) -> None:
    data = _base()
    mistake(data)
    with pytest.raises(ConfigFileError) as caught:
        config_from_mapping(data, environ=ENV, origin="shop.toml")
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith(expected) for p in problems), problems
    assert str(caught.value).startswith("shop.toml: ")
    assert isinstance(caught.value, ConfigError)


def test_the_admin_table_takes_allowed_hosts_and_a_public_url() -> None:
    """Host names are compared without case or a final dot; the public URL's host is one of
    the names the admin listener answers to, without listing it."""
    data = _base()
    data["admin"] = {
        "allowed_hosts": ["Metrics.Internal.", "prometheus_1"],
        "public_url": "https://Ops.Example.com/kit",
    }
    admin = config_from_mapping(data, environ=ENV).admin
    assert admin is not None
    assert admin.allowed_hosts == ("metrics.internal", "prometheus_1")
    assert admin.public_url == "https://Ops.Example.com/kit"
    assert admin.host_names == ("metrics.internal", "prometheus_1", "ops.example.com")


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    """One run of `config check` shows every mistake, not the first one."""
    data = _base()
    data["colour"] = "red"
    data["etrusted"]["request_timeout"] = "5"
    _source(data)["triggers"][0]["delya"] = "3d"
    _source(data)["name"] = "My Shop"
    data["sources"].append({"name": "b", "adapter": "nope", "whatever": 1})
    with pytest.raises(ConfigFileError) as caught:
        config_from_mapping(data, environ=ENV)
    paths = {p.path for p in caught.value.problems}
    assert {
        "colour",
        "etrusted.request_timeout",
        "sources[0].triggers[0].delya",
        "sources[0].name",
        "sources[1].adapter",
        "sources[1].webhook_secrets",
    } <= paths
    # Keys next to an adapter that cannot be loaded cannot be judged, so are not called unknown.
    assert "sources[1].whatever" not in paths


def test_a_file_that_is_not_toml_names_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "shop.toml"
    path.write_text('[outbox]\nurl = "x"\nname = \n')
    with pytest.raises(ConfigError, match=r"shop.toml is not valid TOML: .*line 3, column 8"):
        load_config(path, environ={})


@pytest.mark.parametrize("content", [None, b"\xff\xfe not utf-8"])
def test_a_missing_or_unreadable_file_is_a_config_error(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "shop.toml"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=r"shop\.toml: |shop\.toml is not"):
        load_config(path, environ={})


def test_the_etrusted_table_builds_a_client_config() -> None:
    """[etrusted] keys are ClientConfig's names, and each ETRUSTED_* variable has its key, so
    the file, the variables and the client config speak of the same settings."""
    keys = set(attrs.fields_dict(ETrustedSettings))
    assert keys <= set(attrs.fields_dict(ClientConfig))
    assert set(ENV_VARIABLES) <= keys
    config = parse_config(ISSUE_EXAMPLE, environ=ENV)
    client = ClientConfig(**config.etrusted.given())
    assert (client.client_id, client.client_secret) == ("client-id-value", SECRETS[0])
