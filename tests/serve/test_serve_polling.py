"""``serve`` polls every source whose feed is on, as a part of the service: orders the shop
holds become entries without any webhook, an order seen by webhook and by poll makes one
entry, a poll while webhooks keep up is one page, and a refused token stops that poller alone
(visible in :attr:`Service.pollers`) while webhooks keep working."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from feeds.orders import TOKEN, fixture_node
from journal.deliveries import CHANNEL, KEY, ORDER_ID, SECRET, SHOP, payload, signed

from kit.codec import format_datetime
from kit.configfile import KitConfig, parse_config
from kit.flusher import FlusherConfig, FlusherStats
from kit.outbox import Outbox
from kit.sandbox import SandboxServer
from kit.serve import ServeSettings, Service
from kit.serve.polling import PollerState
from kit.testing.shopify_orders import ShopifyOrdersStandIn, ShopifyServer, synthetic_order

from .serve_helpers import SECRET_VARIABLE, SOURCE, histories, post, wait_until

FAST = FlusherConfig(poll_interval=0.05, grace_period=1.0)
LOOPBACK = ServeSettings(port=0, shutdown_grace=2.0, feed_lease=3.0)
TOKEN_VARIABLE = "SHOPIFY_ADMIN_TOKEN"


def polled_source(api_base_url: str, *, poll_interval: str = "1s") -> str:
    return f"""
[[sources]]
name = "{SOURCE}"
adapter = "shopify"
shop_domain = "{SHOP}"
webhook_secrets = [{{ env = "{SECRET_VARIABLE}" }}]
channel_id = "{CHANNEL}"
admin_access_token = {{ env = "{TOKEN_VARIABLE}" }}
api_base_url = {json.dumps(api_base_url)}
poll_interval = "{poll_interval}"
max_age = "3650d"

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
"""


def kit_config(db: str, api_base_url: str) -> KitConfig:
    return parse_config(
        f'[outbox]\nurl = "{db}"\n{polled_source(api_base_url)}',
        environ={SECRET_VARIABLE: SECRET, TOKEN_VARIABLE: TOKEN},
    )


def recent(minutes: int) -> datetime:
    """Inside the first poll's look-back (a day)."""
    return datetime.now(UTC) - timedelta(minutes=minutes)


@pytest.fixture
async def shop() -> AsyncIterator[ShopifyServer]:
    async with ShopifyServer(ShopifyOrdersStandIn(token=TOKEN)) as server:
        yield server


async def _running(
    db: str, sandbox: SandboxServer, shop: ShopifyServer
) -> tuple[Service, asyncio.Task[FlusherStats], str]:
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    service = Service(
        kit_config(db, shop.url),
        sandbox.client_config(),
        FAST,
        LOOPBACK,
        on_listening=lambda at: listening.set_result(at.url),
    )
    task = asyncio.create_task(service.run())
    async with asyncio.timeout(30):
        done, _ = await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    return service, task, listening.result()


async def _stopped(service: Service, task: asyncio.Task[FlusherStats]) -> FlusherStats:
    service.stop()
    async with asyncio.timeout(30):
        return await task


async def _keys(db: str) -> list[str]:
    async with Outbox.from_url(db) as outbox:
        return sorted(row.key for row in await outbox.storage.entries(limit=1000))


async def test_orders_in_the_shop_become_entries_without_a_webhook(
    sandbox: SandboxServer, db: str, shop: ShopifyServer
) -> None:
    shop.stand_in.put(
        *(synthetic_order(n, updated_at=recent(60 - n), fulfilled_at=recent(90)) for n in (1, 2, 3))
    )
    service, task, _ = await _running(db, sandbox, shop)
    try:

        async def delivered() -> bool:
            return service.stats is not None and service.stats.delivered == 3

        await wait_until(delivered)
        (health,) = service.pollers
        assert health.source == SOURCE
        assert health.state is PollerState.POLLING
        assert health.healthy
    finally:
        stats = await _stopped(service, task)
    assert stats.delivered == 3
    assert len(await _keys(db)) == 3
    assert service.pollers[0].state is PollerState.STOPPED


async def test_an_order_by_webhook_and_by_poll_makes_one_entry(
    sandbox: SandboxServer, db: str, shop: ShopifyServer
) -> None:
    """The journal holds both facts and one enqueue; and once webhooks keep up, each poll is
    one page whose orders the journal already holds."""
    node = fixture_node(updatedAt=format_datetime(recent(5)))
    shop.stand_in.put(node)
    service, task, url = await _running(db, sandbox, shop)
    try:
        async with aiohttp.ClientSession() as session:
            delivery = signed(payload("order_fulfilled"), "orders/fulfilled", webhook_id="wh-1")
            assert (await post(session, url, delivery))[0] == 200

        async def polled(times: int) -> bool:
            return service.pollers[0].polls >= times

        await wait_until(lambda: polled(1))
        assert shop.stand_in.served[node["id"]] >= 1
        # A quiet shop: the next poll reads one page, and it holds only known versions.
        pages = shop.stand_in.pages
        polls = service.pollers[0].polls
        await wait_until(lambda: polled(polls + 1))
        assert shop.stand_in.pages == pages + 1
    finally:
        await _stopped(service, task)
    assert await _keys(db) == [KEY]
    history = (await histories(db, [ORDER_ID]))[ORDER_ID]
    sources = {
        r.event.delivery_id.split(":")[0]
        for r in history.events
        if r.kind == "order_fulfilled" and r.event is not None
    }
    assert sources == {"wh-1", "poll"}
    assert len([r for r in history.decisions if r.kind == "enqueue"]) == 1


async def test_a_refused_token_stops_that_poller_and_webhooks_keep_working(
    sandbox: SandboxServer, db: str
) -> None:
    async with ShopifyServer(ShopifyOrdersStandIn(token="shpat_another_token")) as shop:
        service, task, url = await _running(db, sandbox, shop)
        try:

            async def failed() -> bool:
                return service.pollers[0].state is PollerState.FAILED

            await wait_until(failed)
            (health,) = service.pollers
            assert not health.healthy
            assert health.error is not None
            assert "refused admin_access_token" in health.error
            assert TOKEN not in health.error
            requests = shop.stand_in.requests
            assert requests == 1  # a refusal is not retried in a loop
            assert service.flusher is not None
            assert service.flusher.healthy
            async with aiohttp.ClientSession() as session:
                delivery = signed(payload("order_fulfilled"), "orders/fulfilled", webhook_id="w")
                assert (await post(session, url, delivery))[0] == 200

            async def delivered() -> bool:
                return service.stats is not None and service.stats.delivered == 1

            await wait_until(delivered)
            assert shop.stand_in.requests == requests
        finally:
            await _stopped(service, task)
    assert await _keys(db) == [KEY]
