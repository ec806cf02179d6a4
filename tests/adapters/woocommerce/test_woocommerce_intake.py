"""WooCommerce deliveries through the real intake core on a SQLite file: the journal and the
outbox agree on one invite per order, whatever order, repetition or staleness the webhooks
arrive in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from woocommerce_deliveries import SECRET, STORE, adapter, completed, delivery, order, ping

from kit.journal import IngestResult, IngestStatus, Intake, IntakeSource, StreamHistory
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import State
from kit.policy import PolicyConfig, Trigger

CHANNEL = "chl-00000000-0000-4000-8000-000000000001"
KEY = f"woocommerce:{STORE}:727:order_shipped"
COMPLETED_AT = datetime(2025, 3, 2, 10, 0, tzinfo=UTC)  # the completed() fixture's time
NOW = datetime(2025, 3, 2, 12, 0, tzinfo=UTC).timestamp()  # inside the 3-day hold-back


@attrs.define
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@attrs.define
class Store:
    """An opened SQLite outbox, its intake and the WooCommerce source it serves."""

    outbox: Outbox
    intake: Intake
    source: IntakeSource

    async def deliver(
        self, body: dict[str, Any], topic: str = "order.updated", **headers: str | None
    ) -> IngestResult:
        return await self.intake.ingest_raw(self.source, *delivery(body, topic, **headers))

    async def history(self) -> StreamHistory:
        return await self.intake.journal.history("my-store", "727")


def woo_source(**settings: Any) -> IntakeSource:
    trigger = Trigger(on="order_fulfilled", event_type="order_shipped", delay="3d")
    product_url = "https://kit-shop.example/?post_type=product&p={product_id}"
    return IntakeSource(
        name="my-store",
        adapter=adapter(product_url=product_url, **settings),
        policy=PolicyConfig(channel_id=CHANNEL, triggers=(trigger,)),
        secrets=(SECRET,),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    clock = Clock()
    async with Outbox(SQLiteStorage(tmp_path / "outbox.db"), clock=clock) as outbox:
        yield Store(outbox, Intake(outbox, clock=clock), woo_source())


def decisions(found: StreamHistory) -> list[tuple[str, str]]:
    return [(d.kind, d.outcome.value) for d in found.decisions]


async def test_a_completed_order_becomes_one_invite(store: Store) -> None:
    """Keyed per store, order and event type, held back from the completion time, with the
    order number as the reference and the products the buyer kept."""
    result = await store.deliver(completed())

    assert result.status is IngestStatus.ACCEPTED
    assert result.enqueued == (KEY,)
    entry = await store.outbox.get(KEY)
    assert entry.state is State.PENDING
    assert entry.due_at == (COMPLETED_AT + timedelta(days=3)).timestamp()
    body = entry.body()
    assert body is not None
    assert body["type"] == "order_shipped"
    assert body["customer"]["email"] == "erika.muster@example.org"
    assert body["customer"]["reference"] == "12"
    assert body["transaction"]["reference"] == "WC-1042"
    assert body["defaultLocale"] == "de_DE"
    assert [p["sku"] for p in body["products"]] == ["SOCK-MER-GR", "HAT-MER"]
    assert body["products"][0]["url"] == "https://kit-shop.example/?post_type=product&p=93"
    assert body["metadata"]["account"] == STORE
    found = await store.history()
    assert [e.kind for e in found.events] == ["order_paid", "order_fulfilled"]
    assert decisions(found).count(("enqueue", "enqueued")) == 1
    assert found.waiting == frozenset({KEY})


async def test_a_replayed_delivery_is_recorded_once(store: Store) -> None:
    first = await store.deliver(completed())
    again = await store.deliver(completed())

    assert first.status is IngestStatus.ACCEPTED
    assert again.status is IngestStatus.DUPLICATE
    assert len((await store.history()).events) == 2  # the first delivery's two events
    assert (await store.outbox.stats()).counts[State.PENDING] == 1


async def test_the_same_change_through_two_webhooks_is_recorded_once(store: Store) -> None:
    await store.deliver(completed(), id="14")
    second = await store.deliver(completed(), id="15", delivery_id="0f0f")

    assert second.status is IngestStatus.DUPLICATE
    assert (await store.outbox.stats()).counts[State.PENDING] == 1


async def test_a_cancellation_inside_the_hold_back_cancels_the_invite(store: Store) -> None:
    await store.deliver(order(), "order.created")
    await store.deliver(completed())
    cancelled = completed(status="cancelled", date_modified_gmt="2025-03-02T11:00:00")
    result = await store.deliver(cancelled)

    # The snapshot repeats the payment, which the policy records as older than what it holds.
    assert [(d.decision.kind, d.outcome.value) for d in result.decisions] == [
        ("stale", "recorded"),
        ("cancel", "cancelled"),
    ]
    assert (await store.outbox.get(KEY)).state is State.CANCELLED
    found = await store.history()
    assert decisions(found).count(("cancel", "cancelled")) == 1
    assert found.waiting == frozenset()


async def test_a_refund_inside_the_hold_back_cancels_the_invite(store: Store) -> None:
    await store.deliver(completed())
    await store.deliver(completed(status="refunded", date_modified_gmt="2025-03-02T11:00:00"))

    assert (await store.outbox.get(KEY)).state is State.CANCELLED


async def test_a_stale_update_does_not_undo_a_newer_state(store: Store) -> None:
    """An older "processing" snapshot arriving after the completion changes neither the
    waiting invite nor the order the journal holds."""
    await store.deliver(completed())
    before = await store.outbox.get(KEY)
    stale = await store.deliver(order(date_modified_gmt="2025-03-01T09:00:00"))

    assert stale.enqueued == ()
    after = await store.outbox.get(KEY)
    assert (after.state, after.payload, after.due_at) == (
        State.PENDING,
        before.payload,
        before.due_at,
    )


async def test_a_late_completion_after_the_cancellation_makes_no_invite(store: Store) -> None:
    """Out of order: the cancellation arrives first; the older completion cannot revive it."""
    cancelled = completed(status="cancelled", date_modified_gmt="2025-03-02T11:00:00")
    await store.deliver(cancelled)
    result = await store.deliver(completed())

    assert result.enqueued == ()
    assert (await store.outbox.stats()).counts.get(State.PENDING, 0) == 0


async def test_a_custom_fulfilled_status_makes_the_invite(tmp_path: Path) -> None:
    clock = Clock()
    source = woo_source(fulfilled_statuses=["completed", "shipped"])
    async with Outbox(SQLiteStorage(tmp_path / "outbox.db"), clock=clock) as outbox:
        intake = Intake(outbox, clock=clock)
        shipped = order(status="shipped", date_modified_gmt="2025-03-02T10:00:00")
        result = await intake.ingest_raw(source, *delivery(shipped))
        assert result.enqueued == (KEY,)
        assert (await outbox.get(KEY)).due_at == (COMPLETED_AT + timedelta(days=3)).timestamp()


async def test_the_creation_ping_is_journaled_as_a_skip_and_enqueues_nothing(
    store: Store,
) -> None:
    result = await store.intake.ingest_raw(store.source, *ping("14"))
    again = await store.intake.ingest_raw(store.source, *ping("14"))

    assert result.status is IngestStatus.SKIPPED
    assert result.skip is not None
    assert result.skip.reason.value == "webhook_ping"
    assert again.status is IngestStatus.DUPLICATE
    assert (await store.outbox.stats()).counts.get(State.PENDING, 0) == 0
