"""A Shopify source's settings are checked when they are built, with the key named."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.shopify import ReferenceField, ShopifyConfig
from kit.errors import ConfigError


def test_defaults_and_normalising() -> None:
    config = ShopifyConfig(shop_domain=" Kit-Demo.myshopify.com ")
    assert config.shop_domain == "kit-demo.myshopify.com"
    assert config.reference is ReferenceField.NAME
    assert (config.transit_days, config.product_url) == (None, None)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"shop_domain": ""}, "shop_domain"),
        ({"shop_domain": "https://kit-demo.myshopify.com/"}, "shop_domain"),
        ({"reference": "number"}, "reference"),
        ({"transit_days": -1}, "transit_days"),
        ({"transit_days": True}, "transit_days"),
        ({"product_url": "kit-demo.example/{product_id}"}, "product_url"),
        ({"product_url": "https://kit-demo.example/{handle}"}, "product_url"),
    ],
)
def test_a_bad_value_is_a_config_error_naming_its_key(kwargs: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=f"^{key} "):
        ShopifyConfig(**{"shop_domain": "kit-demo.myshopify.com", **kwargs})
