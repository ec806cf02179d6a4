"""A Stripe source's settings are checked when they are built, with the key named, and a bad
one in a ``[[sources]]`` table is reported under its source with the key and the allowed
placeholders, in the words every adapter's URL template uses."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.stripe import StripeConfig
from kit.configfile import config_from_mapping
from kit.errors import ConfigError, ConfigFileError


def test_defaults() -> None:
    config = StripeConfig()
    assert (config.tolerance, config.account, config.product_url) == (
        timedelta(minutes=5),
        None,
        None,
    )


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"tolerance": "0s"}, "tolerance"),
        ({"account": "cus_1Kit"}, "account"),
        ({"product_url": "shop.example/abo/{product_id}"}, "product_url"),
        ({"product_url": "https://shop.example/abo/{handle}"}, "product_url"),
        ({"product_url": "https://shop.example/abo/{0}"}, "product_url"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_its_key(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key} "):
        StripeConfig(**kwargs)


def test_both_placeholders_fill_a_product_url() -> None:
    template = "https://shop.example/abo/{product_id}?price={price_id}"
    assert StripeConfig(product_url=template).product_url == template


def test_a_bad_product_url_in_a_source_table_is_reported_with_its_key() -> None:
    data = {
        "sources": [
            {
                "name": "billing",
                "adapter": "stripe",
                "webhook_secrets": ["whsec_kit_test"],
                "channel_id": "chl-1",
                "product_url": "https://shop.example/abo/{slug}",
            }
        ]
    }
    with pytest.raises(ConfigFileError) as caught:
        config_from_mapping(data, environ={})
    [problem] = caught.value.problems
    assert str(problem).startswith(
        "sources[0]: product_url may use only {product_id}, {price_id}: 'slug'"
    ), problem
