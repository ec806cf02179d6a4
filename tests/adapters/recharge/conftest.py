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


def shop_source(renewals: str | None = None) -> IntakeSource:
    return IntakeSource(
        name=SHOP_SOURCE,
        adapter=ShopifyAdapter(source=SHOP_SOURCE, config=ShopifyConfig(shop_domain=SHOP)),
        policy=policy(delay="1d", renewals=renewals),
        secrets=(SHOPIFY_SECRET,),
    )


@pytest.fixture
def shop_renewals(request: pytest.FixtureRequest) -> str | None:
    """The shop source's ``renewals`` (``None``: the default); a test may set it with
    ``@pytest.mark.parametrize("shop_renewals", [...], indirect=True)``."""
    value: str | None = getattr(request, "param", None)
    return value


async def _served(
    start: Serve, name: str, storage: Storage, again: Any, renewals: str | None
) -> Served:
    kit = await open_kit(name, storage, again)
    kit.clock.now = NOW
    return await start(kit, [recharge_source(), shop_source(renewals)])


@pytest.fixture
async def sqlite_shop(
    serve: Serve,  # noqa: F811
    tmp_path: Path,
    shop_renewals: str | None,
) -> Served:
    path = tmp_path / "outbox.db"
    return await _served(
        serve, "sqlite", SQLiteStorage(path), lambda: SQLiteStorage(path), shop_renewals
    )


@pytest.fixture
async def postgres_shop(
    serve: Serve,  # noqa: F811
    pg_dsn: str,
    pg_schema: str,
    shop_renewals: str | None,
) -> Served:
    from kit.outbox.postgres import PostgresStorage

    return await _served(
        serve,
        "postgres",
        PostgresStorage(pg_dsn, schema=pg_schema),
        lambda: PostgresStorage(pg_dsn, schema=pg_schema),
        shop_renewals,
    )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def shop(request: pytest.FixtureRequest, shop_renewals: str | None) -> Served:
    """Both sources' routes on one backend's outbox (``shop_renewals`` named so a test can
    parametrize it)."""
    value: Served = request.getfixturevalue(f"{request.param}_shop")
    return value
