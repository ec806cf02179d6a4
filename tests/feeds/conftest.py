"""A Shopify stand-in on loopback and an outbox with its intake on every backend, for the feed
tests; time for pacing and backoff is simulated (:class:`FakeTime`), so waits are exact and
take no wall-clock time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

from adapters.shopify.feed import ShopifyFeed
from kit.feeds.checkpoint import CheckpointStore, checkpoints_for
from kit.feeds.pacing import RetryPolicy
from kit.feeds.runner import FeedRunner, FeedSource
from kit.journal import Intake
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.retry import Backoff
from kit.testing.shopify_orders import ShopifyOrdersStandIn, ShopifyServer

from .orders import NOW, SOURCE, TOKEN, intake_source, shopify_config


@attrs.define
class FakeTime:
    """A monotonic clock that only ``sleep`` moves: the runner's pacing and backoff, and the
    stand-in's bucket, see the same time."""

    now: float = 1000.0
    sleeps: list[float] = attrs.Factory(list)

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@attrs.define
class WallClock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@attrs.define
class FeedKit:
    """One backend's outbox, intake and checkpoints, and a stand-in shop to read from."""

    name: str
    outbox: Outbox
    intake: Intake
    checkpoints: CheckpointStore
    stand_in: ShopifyOrdersStandIn
    server: ShopifyServer
    session: aiohttp.ClientSession
    time: FakeTime
    clock: WallClock

    def source(self, **keys: Any) -> FeedSource:
        config = shopify_config(self.server.url, **keys)
        return FeedSource(
            name=SOURCE,
            feed=ShopifyFeed(source=SOURCE, config=config),
            intake=intake_source(config),
        )

    def runner(self, source: FeedSource | None = None, **options: Any) -> FeedRunner:
        options.setdefault("retry", RetryPolicy(backoff=Backoff(base=1.0, cap=8.0)))
        return FeedRunner(
            source or self.source(),
            intake=self.intake,
            checkpoints=self.checkpoints,
            session=self.session,
            clock=self.clock,
            monotonic=self.time,
            sleep=self.time.sleep,
            **options,
        )

    async def entries(self) -> list[str]:
        return [row.key for row in await self.outbox.storage.entries(limit=100_000)]


async def _feed_kit(
    name: str, storage: Storage, stand_in_options: dict[str, Any]
) -> AsyncIterator[FeedKit]:
    time = FakeTime()
    clock = WallClock()
    stand_in = ShopifyOrdersStandIn(token=TOKEN, clock=time, **stand_in_options)
    outbox = Outbox(storage, clock=clock)
    await outbox.open()
    try:
        async with ShopifyServer(stand_in) as server, aiohttp.ClientSession() as session:
            yield FeedKit(
                name=name,
                outbox=outbox,
                intake=Intake(outbox, clock=clock),
                checkpoints=checkpoints_for(outbox),
                stand_in=stand_in,
                server=server,
                session=session,
                time=time,
                clock=clock,
            )
    finally:
        await outbox.aclose()


@pytest.fixture
def stand_in_options() -> dict[str, Any]:
    """Override in a test module to configure the stand-in (bucket size, throttle status)."""
    return {}


@pytest.fixture
async def memory_feed_kit(stand_in_options: dict[str, Any]) -> AsyncIterator[FeedKit]:
    async for kit in _feed_kit("memory", InMemoryStorage(), stand_in_options):
        yield kit


@pytest.fixture
async def sqlite_feed_kit(
    tmp_path: Path, stand_in_options: dict[str, Any]
) -> AsyncIterator[FeedKit]:
    async for kit in _feed_kit("sqlite", SQLiteStorage(tmp_path / "outbox.db"), stand_in_options):
        yield kit


@pytest.fixture
async def postgres_feed_kit(
    pg_dsn: str, pg_schema: str, stand_in_options: dict[str, Any]
) -> AsyncIterator[FeedKit]:
    from kit.outbox.postgres import PostgresStorage

    storage = PostgresStorage(pg_dsn, schema=pg_schema)
    async for kit in _feed_kit("postgres", storage, stand_in_options):
        yield kit


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def feed_kit(request: pytest.FixtureRequest) -> FeedKit:
    value: FeedKit = request.getfixturevalue(f"{request.param}_feed_kit")
    return value
