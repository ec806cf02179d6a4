"""The feed side of the adapter contract: found through the same entry points as the push
side, checked against the side that is asked of it; and how the Shopify feed reads answers
that are not a page of orders."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from journal.deliveries import SHOP

from adapters.shopify.feed import ShopifyFeed
from kit.adapters import ENTRY_POINT_GROUP, load_adapter
from kit.configfile import SourceConfig, load_config
from kit.errors import (
    ConfigError,
    FeedAuthError,
    FeedError,
    FeedThrottledError,
    FeedUnavailableError,
)
from kit.feeds import FeedAdapter, load_feed
from kit.feeds.runner import FeedSource

from .orders import SOURCE, shopify_config

_FEED_ONLY = """
import attrs

@attrs.frozen
class Config:
    account: str

@attrs.frozen
class Plugin:
    name: str = "{name}"
    config_type: type = Config

    def create_feed(self, *, source, config):
        raise NotImplementedError

plugin = Plugin()
"""


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _install(site: Path, name: str, module: str) -> None:
    info = site / f"kit_test_{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: kit_test_{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n{name} = kit_test_{name}:plugin\n"
    )
    (site / f"kit_test_{name}.py").write_text(textwrap.dedent(module))


def test_shopify_offers_a_feed_through_its_entry_point() -> None:
    plugin = load_feed("shopify")
    feed = plugin.create_feed(source=SOURCE, config=shopify_config())
    assert isinstance(feed, FeedAdapter)
    assert feed.platform == "shopify"


def test_a_feed_only_plugin_loads_as_a_feed_and_not_as_a_push_adapter(site: Path) -> None:
    _install(site, "pullonly", _FEED_ONLY.format(name="pullonly"))
    assert load_feed("pullonly").name == "pullonly"
    with pytest.raises(ConfigError, match="not an adapter plugin"):
        load_adapter("pullonly")


def test_a_plugin_without_a_feed_is_refused_as_a_feed(site: Path) -> None:
    module = """
    import attrs

    @attrs.frozen
    class Plugin:
        name: str = "pushonly"
        config_type: type = object

        def create(self, *, source, config):
            return None

    plugin = Plugin()
    """
    _install(site, "pushonly", module)
    with pytest.raises(ConfigError, match="offers no order feed"):
        load_feed("pushonly")


def _answer(feed: ShopifyFeed, status: int, body: object, retry_after: str | None = None) -> None:
    feed._page(status, retry_after, json.dumps(body).encode())


@pytest.fixture
def feed() -> ShopifyFeed:
    return ShopifyFeed(source=SOURCE, config=shopify_config())


def test_access_denied_is_an_auth_error(feed: ShopifyFeed) -> None:
    """A token without read_orders: stopping, with the scope named, not retrying."""
    body = {"errors": [{"message": "Access denied", "extensions": {"code": "ACCESS_DENIED"}}]}
    with pytest.raises(FeedAuthError, match="read_orders"):
        _answer(feed, 200, body)


def test_other_graphql_errors_stop_the_run(feed: ShopifyFeed) -> None:
    """A query Shopify refuses (a cost over the limit, a field the version lacks) will be
    refused again: a plain FeedError, which the loop does not retry."""
    body = {
        "errors": [{"message": "Query cost is 1200", "extensions": {"code": "MAX_COST_EXCEEDED"}}]
    }
    with pytest.raises(FeedError, match="Query cost is 1200") as caught:
        _answer(feed, 200, body)
    assert not isinstance(caught.value, FeedUnavailableError | FeedThrottledError)


def test_a_broken_answer_passes(feed: ShopifyFeed) -> None:
    with pytest.raises(FeedUnavailableError):
        feed._page(200, None, b"<html>gateway</html>")
    with pytest.raises(FeedUnavailableError):
        _answer(feed, 503, {})


def test_throttled_without_a_code_is_recognised_by_its_message(feed: ShopifyFeed) -> None:
    """Older answers (and the documentation's example) carry only the message."""
    body = {
        "errors": [{"message": "Throttled"}],
        "extensions": {
            "cost": {
                "requestedQueryCost": 900,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": 400.0,
                    "restoreRate": 100.0,
                },
            }
        },
    }
    with pytest.raises(FeedThrottledError) as caught:
        _answer(feed, 200, body)
    assert caught.value.retry_after == pytest.approx(5.0)
    with pytest.raises(FeedThrottledError) as header:
        _answer(feed, 429, body, retry_after="2")
    assert header.value.retry_after == 2.0


def _source_config(tmp_path: Path, token: str) -> SourceConfig:
    path = tmp_path / "kit.toml"
    path.write_text(
        f"""
[[sources]]
name = "my-shop"
adapter = "shopify"
shop_domain = "{SHOP}"
webhook_secrets = ["s"]
channel_id = "chl-1"
{token}

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
""",
        encoding="utf-8",
    )
    return load_config(path, environ={"SHOPIFY_ADMIN_TOKEN": "shpat_x"}).sources[0]


def test_serve_polls_a_source_with_a_feed_token_and_an_interval(tmp_path: Path) -> None:
    """FeedSource.polled: what serve starts a poller for; a webhook-only source (no token, or
    poll_interval = 0) gets none."""
    with_token = 'admin_access_token = { env = "SHOPIFY_ADMIN_TOKEN" }'
    polled = FeedSource.polled(_source_config(tmp_path, with_token))
    assert polled is not None
    assert polled.feed.poll_interval == timedelta(minutes=5)
    assert FeedSource.polled(_source_config(tmp_path, "")) is None
    off = FeedSource.polled(_source_config(tmp_path, with_token + "\npoll_interval = 0"))
    assert off is None
