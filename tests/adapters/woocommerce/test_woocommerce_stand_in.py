"""The REST orders stand-in answers as the documented endpoint does, so a feed that passes
against it asks the real store the right way; and the setup page's example loads."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from woocommerce_deliveries import order

from adapters.woocommerce import WooCommerceConfig
from adapters.woocommerce.feed import basic_auth
from kit.configfile import parse_config
from kit.testing.woocommerce import ORDERS_PATH, WooCommerceStandIn, running_woocommerce

PAGE = Path(__file__).resolve().parents[3] / "docs" / "adapters" / "woocommerce.md"
AUTH = {"Authorization": basic_auth("ck_1", "cs_1")}


@pytest.fixture
async def get() -> AsyncIterator[tuple[WooCommerceStandIn, aiohttp.ClientSession, str]]:
    stand_in = WooCommerceStandIn(consumer_key="ck_1", consumer_secret="cs_1")
    for i in range(3):
        stand_in.put(
            order(id=10 + i, date_modified_gmt=f"2025-03-01T09:0{i}:00", status="processing")
        )
    stand_in.put(order(id=13, date_modified_gmt="2025-03-01T08:00:00", status="cancelled"))
    async with running_woocommerce(stand_in) as running, aiohttp.ClientSession() as session:
        yield stand_in, session, running.url + ORDERS_PATH


async def test_without_the_key_the_listing_is_refused(
    get: tuple[WooCommerceStandIn, aiohttp.ClientSession, str],
) -> None:
    stand_in, session, url = get
    wrong = {"Authorization": basic_auth("ck_1", "cs_2")}
    for headers in ({}, wrong):
        async with session.get(url, headers=headers) as response:
            assert response.status == 401
            assert (await response.json())["code"] == "woocommerce_rest_cannot_view"
    assert [r.status for r in stand_in.requests] == [401, 401]


async def test_pages_totals_order_and_filters(
    get: tuple[WooCommerceStandIn, aiohttp.ClientSession, str],
) -> None:
    stand_in, session, url = get
    query = {"orderby": "modified", "order": "asc", "per_page": "2", "page": "2"}
    async with session.get(url, params=query, headers=AUTH) as response:
        assert response.headers["X-WP-Total"] == "4"
        assert response.headers["X-WP-TotalPages"] == "2"
        assert [o["id"] for o in await response.json()] == [11, 12]
    query = {"orderby": "modified", "order": "asc", "status": "processing", "per_page": "10"}
    query |= {"modified_after": "2025-03-01T09:00:00", "dates_are_gmt": "true"}
    async with session.get(url, params=query, headers=AUTH) as response:
        assert [o["id"] for o in await response.json()] == [11, 12]
    assert stand_in.reads()[("2025-03-01T09:00:00", 1)] == 1


async def test_per_page_above_100_is_a_bad_request(
    get: tuple[WooCommerceStandIn, aiohttp.ClientSession, str],
) -> None:
    _, session, url = get
    async with session.get(url, params={"per_page": "101"}, headers=AUTH) as response:
        assert response.status == 400
        assert (await response.json())["code"] == "rest_invalid_param"


async def test_a_fault_answers_before_authentication_and_only_as_often_as_asked(
    get: tuple[WooCommerceStandIn, aiohttp.ClientSession, str],
) -> None:
    stand_in, session, url = get
    stand_in.fail_next(429, retry_after=3, times=2)
    statuses = []
    for _ in range(3):
        async with session.get(url, headers=AUTH) as response:
            statuses.append((response.status, response.headers.get("Retry-After")))
    assert statuses == [(429, "3"), (429, "3"), (200, None)]


def test_the_setup_pages_example_loads() -> None:
    (block,) = re.findall(r"^```toml\n(.*?)^```", PAGE.read_text(), re.MULTILINE | re.DOTALL)
    names = re.findall(r'env = "([A-Z_]+)"', block)
    (source,) = parse_config(block, environ={n: f"value-{n}" for n in names}).sources
    assert isinstance(source.adapter_config, WooCommerceConfig)
