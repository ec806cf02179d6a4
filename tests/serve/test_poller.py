"""A serve poller polls only while it holds its source's lease: it stands by while another
holder has it, stops polling when the lease is taken from it, polls again once it is free, and
gives it up when stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest
from feeds.orders import SOURCE, TOKEN, intake_source, shopify_config

from adapters.shopify.feed import ShopifyFeed
from kit.feeds.checkpoint import checkpoints_for
from kit.feeds.lease import MemoryLeases
from kit.feeds.runner import FeedRunner, FeedSource
from kit.journal import Intake
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.serve.polling import Poller, PollerState
from kit.testing.shopify_orders import ShopifyOrdersStandIn, ShopifyServer

from .serve_helpers import wait_until

TTL = 0.3  # renewed every 0.1 s
FAR = 10_000.0


@pytest.fixture
async def runner() -> AsyncIterator[tuple[FeedRunner, ShopifyOrdersStandIn]]:
    stand_in = ShopifyOrdersStandIn(token=TOKEN)
    async with (
        Outbox(InMemoryStorage()) as outbox,
        ShopifyServer(stand_in) as server,
        aiohttp.ClientSession() as session,
    ):
        config = shopify_config(server.url)
        source = FeedSource(
            name=SOURCE,
            feed=ShopifyFeed(source=SOURCE, config=config),
            intake=intake_source(config),
        )
        yield (
            FeedRunner(
                source, intake=Intake(outbox), checkpoints=checkpoints_for(outbox), session=session
            ),
            stand_in,
        )


async def test_a_poller_polls_only_under_its_lease(
    runner: tuple[FeedRunner, ShopifyOrdersStandIn],
) -> None:
    feed_runner, stand_in = runner
    leases = MemoryLeases()
    assert await leases.acquire(SOURCE, "other", ttl=FAR, now=0.0)
    poller = Poller(
        feed_runner,
        timedelta(milliseconds=50),
        leases=leases,
        holder="me",
        lease_ttl=TTL,
        grace=1.0,
        clock=lambda: 100.0,  # the lease's clock stands still; only the holders change
    )
    task = asyncio.create_task(poller.run())
    try:

        def state(expected: PollerState) -> Callable[[], Awaitable[bool]]:
            async def reached() -> bool:
                return poller.health.state is expected

            return reached

        await wait_until(state(PollerState.STANDBY), timeout=10)
        assert stand_in.requests == 0
        await leases.release(SOURCE, "other")
        await wait_until(state(PollerState.POLLING), timeout=10)
        await asyncio.wait_for(stand_in.wait_pages(2), timeout=10)
        # the lease is taken from it (it looked expired to another holder): it stops polling
        assert await leases.acquire(SOURCE, "other", ttl=FAR, now=FAR)
        await wait_until(state(PollerState.STANDBY), timeout=10)
        requests = stand_in.requests
        await leases.release(SOURCE, "other")
        await wait_until(state(PollerState.POLLING), timeout=10)
        await asyncio.wait_for(stand_in.wait_pages(requests + 1), timeout=10)
        poller.stop()
        await asyncio.wait_for(task, timeout=10)
    finally:
        task.cancel()
    assert poller.health.state is PollerState.STOPPED
    assert poller.health.polls >= 2
    assert await leases.holder(SOURCE, now=0.0) is None  # given up on stop
