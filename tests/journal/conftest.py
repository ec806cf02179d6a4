"""An opened outbox with its journal and intake, on every backend: memory, a SQLite file (WAL)
and PostgreSQL (a private schema per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.journal.ingest import Intake, IntakeSource
from kit.journal.records import IngestResult, StreamHistory
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.policy import PolicyConfig, Trigger

from .deliveries import CHANNEL, NOW, ORDER_ID, SECRET, SHOP, signed


@attrs.define
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@attrs.define
class Kit:
    """One backend's outbox and intake, and the means to open a second storage object on the
    same database (another connection, as another process would have)."""

    name: str
    outbox: Outbox
    intake: Intake
    clock: Clock
    _another: Callable[[], Storage] | None
    _opened: list[Storage] = attrs.Factory(list)

    @property
    def storage(self) -> Storage:
        return self.outbox.storage

    async def another_intake(self) -> Intake:
        if self._another is None:
            pytest.skip(f"{self.name}: a second storage cannot open the same database")
        other = self._another()
        self._opened.append(other)
        outbox = Outbox(other, clock=self.clock)
        await outbox.open()
        return Intake(outbox, clock=self.clock)

    async def aclose(self) -> None:
        for other in reversed(self._opened):
            await other.aclose()
        await self.outbox.aclose()


def source(*, policy: Mapping[str, Any] | None = None, **trigger: Any) -> IntakeSource:
    """The Shopify source of these tests: one ``order_fulfilled`` trigger with a 3-day hold-back.

    ``trigger`` overrides that trigger's settings; ``policy`` overrides the source's policy
    settings (``exclusions``, ``consent``, ``home_countries``, ``channels_by_locale``, or
    ``triggers`` as a whole).
    """
    settings: dict[str, Any] = {
        "on": "order_fulfilled",
        "event_type": "order_shipped",
        "delay": "3d",
    }
    settings.update(trigger)
    options: dict[str, Any] = {"channel_id": CHANNEL, "triggers": (Trigger(**settings),)}
    options.update(policy or {})
    return IntakeSource(
        name="my-shop",
        adapter=ShopifyAdapter(
            source="my-shop",
            config=ShopifyConfig(
                shop_domain=SHOP, product_url="https://shop.example/products/{product_id}"
            ),
        ),
        policy=PolicyConfig(**options),
        secrets=(SECRET,),
    )


async def deliver(
    kit: Kit,
    body: dict[str, Any],
    topic: str,
    webhook_id: str,
    *,
    event_id: str | None = None,
    policy: Mapping[str, Any] | None = None,
    **trigger: Any,
) -> IngestResult:
    """Sign ``body`` as Shopify would and take it in through the intake of ``source()``."""
    headers, raw = signed(body, topic, webhook_id=webhook_id, event_id=event_id)
    return await kit.intake.ingest_raw(source(policy=policy, **trigger), headers, raw)


async def history(kit: Kit, stream: str = ORDER_ID) -> StreamHistory:
    return await kit.intake.journal.history("my-shop", stream)


def outcomes(found: StreamHistory) -> list[tuple[str, str]]:
    """The journaled decisions of a stream as (kind, outcome)."""
    return [(d.kind, d.outcome.value) for d in found.decisions]


def decided(result: IngestResult) -> list[tuple[str, str]]:
    """What one delivery decided, as (kind, outcome)."""
    return [(d.decision.kind, d.outcome.value) for d in result.decisions]


def skus(body: dict[str, Any] | None) -> list[str]:
    assert body is not None
    return [p["sku"] for p in body.get("products", [])]


async def _kit(name: str, storage: Storage, another: Callable[[], Storage] | None) -> Kit:
    clock = Clock()
    outbox = Outbox(storage, clock=clock)
    await outbox.open()
    return Kit(name, outbox, Intake(outbox, clock=clock), clock, another)


@pytest.fixture
async def memory_kit() -> AsyncIterator[Kit]:
    kit = await _kit("memory", InMemoryStorage(), None)
    yield kit
    await kit.aclose()


@pytest.fixture
async def sqlite_kit(tmp_path: Path) -> AsyncIterator[Kit]:
    path = tmp_path / "outbox.db"
    kit = await _kit("sqlite", SQLiteStorage(path), lambda: SQLiteStorage(path))
    yield kit
    await kit.aclose()


@pytest.fixture
async def postgres_kit(pg_dsn: str, pg_schema: str) -> AsyncIterator[Kit]:
    from kit.outbox.postgres import PostgresStorage

    kit = await _kit(
        "postgres",
        PostgresStorage(pg_dsn, schema=pg_schema),
        lambda: PostgresStorage(pg_dsn, schema=pg_schema),
    )
    yield kit
    await kit.aclose()


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def kit(request: pytest.FixtureRequest) -> Kit:
    value: Kit = request.getfixturevalue(f"{request.param}_kit")
    return value
