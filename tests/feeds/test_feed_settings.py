"""The feed keys every platform shares keep one rule: five minutes with credentials, off
without them or at ``0``, a ``poll_interval`` without credentials refused, ``max_age`` 180 days;
and both adapters' configs follow it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.shopify import ShopifyConfig
from adapters.woocommerce import WooCommerceConfig
from kit.configfile.model import Secret
from kit.errors import ConfigError
from kit.feeds.settings import DEFAULT_MAX_AGE, DEFAULT_POLL_INTERVAL, polling


def shopify(*, credentials: bool, **keys: Any) -> ShopifyConfig:
    token = {"admin_access_token": Secret("shpat_x")} if credentials else {}
    return ShopifyConfig(shop_domain="kit.myshopify.com", **token, **keys)


def woocommerce(*, credentials: bool, **keys: Any) -> WooCommerceConfig:
    key = {"consumer_key": Secret("ck_x"), "consumer_secret": Secret("cs_x")} if credentials else {}
    return WooCommerceConfig(store_url="https://kit-shop.example", **key, **keys)


BUILDERS = [pytest.param(shopify, id="shopify"), pytest.param(woocommerce, id="woocommerce")]


def test_the_rule() -> None:
    assert polling(None, credentials=True) == DEFAULT_POLL_INTERVAL == timedelta(minutes=5)
    assert polling(timedelta(minutes=1), credentials=True) == timedelta(minutes=1)
    assert polling(timedelta(0), credentials=True) is None
    assert polling(None, credentials=False) is None
    assert timedelta(days=180) == DEFAULT_MAX_AGE


@pytest.mark.parametrize("build", BUILDERS)
def test_both_adapters_follow_it(build: Any) -> None:
    assert build(credentials=True).polling == timedelta(minutes=5)
    assert build(credentials=True, poll_interval="2m").polling == timedelta(minutes=2)
    assert build(credentials=True, poll_interval=0).polling is None
    assert build(credentials=False).polling is None
    assert build(credentials=False, poll_interval=0).polling is None
    assert build(credentials=True).max_age == timedelta(days=180)
    assert build(credentials=True, max_age="30d").max_age == timedelta(days=30)


@pytest.mark.parametrize("build", BUILDERS)
def test_a_poll_interval_without_credentials_is_refused(build: Any) -> None:
    with pytest.raises(ConfigError, match="poll_interval needs"):
        build(credentials=False, poll_interval="5m")
