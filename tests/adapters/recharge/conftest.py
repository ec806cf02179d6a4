"""A Shopify shop with Recharge, served over real HTTP on loopback: two sources, ``my-shop``
(its order webhooks) and ``my-recharge`` (Recharge's), each with a renewal trigger, in front of
one outbox in a SQLite file or a PostgreSQL schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from journal.deliveries import SECRET as SHOPIFY_SECRET
from recharge_deliveries import NOW, SECRET, SHOP, SOURCE, adapter
from webhooks.conftest import Serve, Served, open_kit, serve  # noqa: F401 (serve: a fixture)

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.journal.ingest import IntakeSource
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.policy import PolicyConfig, Trigger
from kit.sandbox import SEEDED_CHANNEL_IDS

CHANNEL = SEEDED_CHANNEL_IDS[0]
EVENT_TYPE = "subscription_renewed"
SHOP_SOURCE = "my-shop"


def policy(**trigger: Any) -> PolicyConfig:
    settings: dict[str, Any] = {"on": "subscription_renewed", "event_type": EVENT_TYPE}
    settings.update(trigger)
    return PolicyConfig(channel_id=CHANNEL, triggers=(Trigger(**settings),))


def recharge_source(**config: Any) -> IntakeSource:
    return IntakeSource(
        name=SOURCE, adapter=adapter(**config), policy=policy(delay="1d"), secrets=(SECRET,)
    )


def shop_source() -> IntakeSource:
    return IntakeSource(
        name=SHOP_SOURCE,
        adapter=ShopifyAdapter(source=SHOP_SOURCE, config=ShopifyConfig(shop_domain=SHOP)),
        policy=policy(delay="1d"),
        secrets=(SHOPIFY_SECRET,),
    )


async def _served(start: Serve, name: str, storage: Storage, again: Any) -> Served:
    kit = await open_kit(name, storage, again)
    kit.clock.now = NOW
    return await start(kit, [recharge_source(), shop_source()])


@pytest.fixture
async def sqlite_shop(serve: Serve, tmp_path: Path) -> Served:  # noqa: F811
    path = tmp_path / "outbox.db"
    return await _served(serve, "sqlite", SQLiteStorage(path), lambda: SQLiteStorage(path))


@pytest.fixture
async def postgres_shop(serve: Serve, pg_dsn: str, pg_schema: str) -> Served:  # noqa: F811
    from kit.outbox.postgres import PostgresStorage

    return await _served(
        serve,
        "postgres",
        PostgresStorage(pg_dsn, schema=pg_schema),
        lambda: PostgresStorage(pg_dsn, schema=pg_schema),
    )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def shop(request: pytest.FixtureRequest) -> Served:
    """Both sources' routes on one backend's outbox."""
    value: Served = request.getfixturevalue(f"{request.param}_shop")
    return value
