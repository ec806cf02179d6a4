"""The feed side of the adapter contract: found through the same entry points as the push
side, checked against the side that is asked of it; and how the Shopify feed reads answers
that are not a page of orders."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from adapters.shopify.feed import ShopifyFeed
from kit.adapters import ENTRY_POINT_GROUP, load_adapter
from kit.errors import (
    ConfigError,
    FeedAuthError,
    FeedError,
    FeedThrottledError,
    FeedUnavailableError,
)
from kit.feeds import FeedAdapter, load_feed

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
