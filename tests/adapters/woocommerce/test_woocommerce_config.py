"""A WooCommerce source's settings are checked when they are built, with the key named; the
REST API key never travels over plain http unless the merchant says so."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.woocommerce import ReferenceField, WooCommerceConfig
from kit.configfile import Secret, parse_config
from kit.errors import ConfigError, ConfigFileError

KEY = Secret("ck_0123456789abcdef", env="WC_CONSUMER_KEY")
SECRET = Secret("cs_fedcba9876543210", env="WC_CONSUMER_SECRET")

SOURCE = """\
[[sources]]
name = "my-store"
adapter = "woocommerce"
store_url = "{store_url}"
consumer_key = {{ env = "WC_CONSUMER_KEY" }}
consumer_secret = {{ env = "WC_CONSUMER_SECRET" }}
webhook_secrets = [{{ env = "WC_WEBHOOK_SECRET" }}]
channel_id = "chl-1"
{extra}
"""
ENV = {
    "WC_CONSUMER_KEY": KEY.value,
    "WC_CONSUMER_SECRET": SECRET.value,
    "WC_WEBHOOK_SECRET": "wc-webhook-secret-value",
}


def load(store_url: str = "https://kit-shop.example", extra: str = "") -> WooCommerceConfig:
    text = SOURCE.format(store_url=store_url, extra=extra)
    (source,) = parse_config(text, environ=ENV).sources
    assert isinstance(source.adapter_config, WooCommerceConfig)
    return source.adapter_config


def test_defaults_and_normalising() -> None:
    config = WooCommerceConfig(store_url=" https://kit-shop.example/ ")
    assert config.store_url == "https://kit-shop.example"
    assert config.store_host == "kit-shop.example"
    assert config.fulfilled_statuses == frozenset({"completed"})
    assert config.reference is ReferenceField.NUMBER
    assert config.polling is None  # no REST API key: webhooks only
    assert config.api_credentials() is None


def test_a_source_loads_from_the_file_with_its_api_key_from_the_environment() -> None:
    config = load(extra='poll_interval = "10m"\nfulfilled_statuses = ["completed", "wc-shipped"]')
    assert config.api_credentials() == (KEY.value, SECRET.value)
    assert config.polling == timedelta(minutes=10)
    assert config.fulfilled_statuses == frozenset({"completed", "shipped"})
    assert KEY.value not in repr(config)
    assert SECRET.value not in repr(config)


def test_polling_defaults_to_five_minutes_with_a_key_and_zero_turns_it_off() -> None:
    assert WooCommerceConfig(
        store_url="https://kit-shop.example", consumer_key=KEY, consumer_secret=SECRET
    ).polling == timedelta(minutes=5)
    assert load(extra='poll_interval = "0s"').polling is None


def test_plain_http_is_refused_naming_the_key_that_allows_it() -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(store_url="http://kit-shop.example")
    (problem,) = caught.value.problems
    assert problem.path == "sources[0]"
    assert problem.message.startswith("store_url 'http://kit-shop.example' is plain http")
    assert "allow_insecure_http = true" in problem.message
    assert KEY.value not in str(caught.value)


def test_plain_http_is_taken_when_allowed() -> None:
    config = load(store_url="http://127.0.0.1:8080", extra="allow_insecure_http = true")
    assert config.store_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"store_url": "kit-shop.example"}, "store_url"),
        ({"store_url": "https://"}, "store_url"),
        ({"fulfilled_statuses": "completed"}, "fulfilled_statuses"),
        ({"fulfilled_statuses": []}, "fulfilled_statuses"),
        ({"fulfilled_statuses": ["completed", "refunded"]}, "fulfilled_statuses"),
        ({"fulfilled_statuses": ["wc-cancelled"]}, "fulfilled_statuses"),
        ({"reference": "name"}, "reference"),
        ({"consumer_key": KEY}, "consumer_secret"),
        ({"consumer_secret": SECRET}, "consumer_key"),
        ({"poll_interval": "5m"}, "poll_interval"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_its_key(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key} "):
        WooCommerceConfig(**({"store_url": "https://kit-shop.example"} | kwargs))


def test_an_unknown_key_is_reported_with_a_hint() -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(extra='fulfilled_status = ["shipped"]')
    (problem,) = caught.value.problems
    assert problem.path == "sources[0].fulfilled_status"
    assert "fulfilled_statuses" in problem.message


def test_a_bad_poll_interval_is_reported_at_its_key() -> None:
    with pytest.raises(ConfigFileError) as caught:
        load(extra='poll_interval = "5 minutes"')
    (problem,) = caught.value.problems
    assert problem.path == "sources[0].poll_interval"
    assert problem.message.startswith("not a duration")
