"""Feed poll lag per source, as serve's metrics report it: small while the feed is polled,
3 intervals and more when it is not (the alert rule's threshold)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from feeds.orders import TOKEN
from journal.deliveries import CHANNEL, SECRET, SHOP
from serve.serve_helpers import SECRET_VARIABLE, SOURCE, wait_until

from kit.configfile import KitConfig, parse_config
from kit.flusher import FlusherConfig, FlusherStats
from kit.sandbox import SandboxServer
from kit.serve import ServeSettings, Service
from kit.testing.shopify_orders import ShopifyOrdersStandIn, ShopifyServer, synthetic_order

TOKEN_VARIABLE = "SHOPIFY_ADMIN_TOKEN"
LAG = f'etrusted_kit_feed_poll_lag_intervals{{source="{SOURCE}"}}'
FAILED = f'etrusted_kit_feed_poller_failed{{source="{SOURCE}"}}'


def _config(db: str, shop_url: str) -> KitConfig:
    return parse_config(
        f"""
[outbox]
url = "{db}"

[[sources]]
name = "{SOURCE}"
adapter = "shopify"
shop_domain = "{SHOP}"
webhook_secrets = [{{ env = "{SECRET_VARIABLE}" }}]
channel_id = "{CHANNEL}"
admin_access_token = {{ env = "{TOKEN_VARIABLE}" }}
api_base_url = {json.dumps(shop_url)}
poll_interval = "1s"

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
""",
        environ={SECRET_VARIABLE: SECRET, TOKEN_VARIABLE: TOKEN},
    )


@pytest.fixture
async def shop(request: pytest.FixtureRequest) -> AsyncIterator[ShopifyServer]:
    async with ShopifyServer(ShopifyOrdersStandIn(token=getattr(request, "param", TOKEN))) as s:
        yield s


@pytest.fixture
async def running(sandbox: SandboxServer, db: str, shop: ShopifyServer) -> AsyncIterator[Service]:
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    service = Service(
        _config(db, shop.url),
        sandbox.client_config(),
        FlusherConfig(poll_interval=0.05, grace_period=1.0),
        ServeSettings(port=0, shutdown_grace=2.0, feed_lease=3.0),
        on_listening=lambda _: started.set_result(None),
    )
    task: asyncio.Task[FlusherStats] = asyncio.create_task(service.run())
    async with asyncio.timeout(30):
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
    try:
        yield service
    finally:
        service.stop()
        async with asyncio.timeout(30):
            await task


async def _snapshot(service: Service) -> dict[str, float]:
    assert await service.metrics.refresh()
    return service.metrics.snapshot()


async def test_a_polled_feed_shows_a_small_lag_and_counts_its_orders(
    running: Service, shop: ShopifyServer
) -> None:
    """Once the poller has polled, the lag (read from the poll checkpoint in the database) is
    under 3 intervals and the poller is not failed; an order found by the poll is counted as a
    domain event and an enqueued entry of its source, as a webhook's would be."""
    fulfilled = datetime.now(UTC) - timedelta(minutes=30)
    shop.stand_in.put(synthetic_order(1, updated_at=fulfilled, fulfilled_at=fulfilled))

    async def enqueued() -> bool:
        snapshot = await _snapshot(running)
        return snapshot[f'etrusted_kit_enqueued_total{{source="{SOURCE}"}}'] == 1

    await wait_until(enqueued)
    snapshot = await _snapshot(running)
    assert snapshot[LAG] < 3
    assert snapshot[FAILED] == 0
    events = f'etrusted_kit_domain_events_total{{event_kind="order_fulfilled",source="{SOURCE}"}}'
    assert snapshot[events] >= 1


@pytest.mark.parametrize("shop", ["a-revoked-token"], indirect=True)
async def test_a_feed_not_polled_for_3_intervals_shows_it(running: Service) -> None:
    """A poller whose token the shop refuses stops: it shows as failed, and its lag climbs
    past 3 intervals, which is what the alert rule fires on."""

    async def lagging() -> bool:
        return (await _snapshot(running))[LAG] >= 3

    await wait_until(lagging, timeout=30, every=0.2)
    assert (await _snapshot(running))[FAILED] == 1
