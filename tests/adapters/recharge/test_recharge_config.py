"""A Recharge source's settings are checked when they are built, with the key named, and load
from a ``[[sources]]`` table like every adapter's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.recharge import RechargeConfig, SignatureScheme
from kit.configfile import config_from_mapping
from kit.errors import ConfigError


def test_defaults_and_normalising() -> None:
    config = RechargeConfig(shop_domain=" Kit-Demo.myshopify.com ", topic=" Charge/Paid ")
    assert config.shop_domain == "kit-demo.myshopify.com"
    assert config.signature is SignatureScheme.AUTO
    assert config.tolerance == timedelta(hours=48)
    assert (config.topic, config.timezone, config.product_url) == ("charge/paid", "UTC", None)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"shop_domain": ""}, "shop_domain"),
        ({"shop_domain": "https://kit-demo.myshopify.com/"}, "shop_domain"),
        ({"signature": "hmac"}, "signature"),
        ({"tolerance": "0s"}, "tolerance"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"product_url": "kit-demo.example/{handle}"}, "product_url"),
        ({"product_url": "https://kit-demo.example/{slug}"}, "product_url"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_its_key(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key} "):
        RechargeConfig(**{"shop_domain": "kit-demo.myshopify.com", **kwargs})


def test_a_source_table_loads_into_the_adapters_config() -> None:
    data = {
        "sources": [
            {
                "name": "subscriptions",
                "adapter": "recharge",
                "shop_domain": "kit-demo.myshopify.com",
                "webhook_secrets": [{"env": "RECHARGE_CLIENT_SECRET"}],
                "channel_id": "chl-1",
                "signature": "timestamped",
                "tolerance": "24h",
                "topic": "charge/paid",
                "timezone": "Europe/Berlin",
                "product_url": "https://kit-demo.example/products/{handle}",
            }
        ]
    }
    config = config_from_mapping(data, environ={"RECHARGE_CLIENT_SECRET": "rc-secret"})
    [source] = config.sources
    assert source.adapter_config == RechargeConfig(
        shop_domain="kit-demo.myshopify.com",
        signature=SignatureScheme.TIMESTAMPED,
        tolerance=timedelta(hours=24),
        topic="charge/paid",
        timezone="Europe/Berlin",
        product_url="https://kit-demo.example/products/{handle}",
    )
    assert [secret.value for secret in source.webhook_secrets] == ["rc-secret"]
