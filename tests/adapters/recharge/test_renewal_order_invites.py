"""One renewal order, one invite: a shop source with an order trigger (``order_shipped``) and a
renewal trigger leaves a renewal's order to the renewal trigger, whichever report arrives
first. The order trigger skips it (``subscription_renewal_order``), withdraws its own invite
still waiting when the renewal is reported after the shipment, and when that invite already
left, the renewal is journaled and not sent as a second invite (``order_invite_sent``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from journal.deliveries import SECRET as SHOPIFY_SECRET
from recharge_deliveries import NOW, ORDER_ID, SHOP
from webhooks.conftest import Kit, Serve, Served, open_kit, serve  # noqa: F401 (serve: a fixture)

from adapters.shopify import ShopifyAdapter, ShopifyConfig, samples
from kit.client import ETrustedClient
from kit.domain import SkipReason
from kit.flusher import Flusher
from kit.journal.ingest import IntakeSource
from kit.journal.records import Outcome
from kit.outbox import State
from kit.outbox.sqlite import SQLiteStorage
from kit.policy import PolicyConfig, Trigger
from kit.sandbox import SEEDED_CHANNEL_IDS, SandboxConfig
from kit.testing import running_sandbox

SOURCE = "my-shop"
SHIPPED = f"shopify:{SHOP}:{ORDER_ID}:order_shipped"
RENEWED = f"shopify:{SHOP}:{ORDER_ID}:subscription_renewed"


def shop_source(renewals: str) -> IntakeSource:
    triggers = (
        Trigger(on="order_fulfilled", event_type="order_shipped"),
        Trigger(on="subscription_renewed", event_type="subscription_renewed", renewals=renewals),
    )
    return IntakeSource(
        name=SOURCE,
        adapter=ShopifyAdapter(source=SOURCE, config=ShopifyConfig(shop_domain=SHOP)),
        policy=PolicyConfig(channel_id=SEEDED_CHANNEL_IDS[0], triggers=triggers),
        secrets=(SHOPIFY_SECRET,),
    )


Start = Callable[[str], Awaitable[Served]]


def _starter(serve: Serve, kit: Kit) -> Start:  # noqa: F811
    kit.clock.now = NOW

    async def start(renewals: str) -> Served:
        return await serve(kit, [shop_source(renewals)])

    return start


@pytest.fixture
async def sqlite_start(serve: Serve, tmp_path: Path) -> Start:  # noqa: F811
    path = tmp_path / "outbox.db"
    return _starter(
        serve, await open_kit("sqlite", SQLiteStorage(path), lambda: SQLiteStorage(path))
    )


@pytest.fixture
async def postgres_start(serve: Serve, pg_dsn: str, pg_schema: str) -> Start:  # noqa: F811
    from kit.outbox.postgres import PostgresStorage

    kit = await open_kit(
        "postgres",
        PostgresStorage(pg_dsn, schema=pg_schema),
        lambda: PostgresStorage(pg_dsn, schema=pg_schema),
    )
    return _starter(serve, kit)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def opened(request: pytest.FixtureRequest) -> Start:
    """Starts the shop source, with the renewal trigger's ``renewals``, on one backend."""
    value: Start = request.getfixturevalue(f"{request.param}_start")
    return value


def fulfilled_order(tags: str = "") -> dict[str, Any]:
    order = samples.sample("order_fulfilled")
    order.update(id=int(ORDER_ID), tags=tags)
    return order


async def post(shop: Served, body: dict[str, Any], topic: str, n: int) -> None:
    headers, raw = samples.signed_delivery(
        body,
        topic,
        secret=SHOPIFY_SECRET,
        shop_domain=SHOP,
        webhook_id=f"webhook-{n}",
        event_id=f"event-{n}",
        triggered_at="2025-03-10T08:00:09Z",
    )
    reply = await shop.post(headers, raw, path=f"/webhooks/{SOURCE}")
    assert (reply.status, reply.body["status"]) == (200, "accepted")


async def billing_attempt(shop: Served, n: int) -> None:
    """Shopify's billing attempt names the renewal's order after its shipment was decided."""
    attempt = {"id": 9100001, "order_id": int(ORDER_ID), "subscription_contract_id": 7700001}
    await post(shop, attempt, "subscription_billing_attempts/success", n)


def on_key(history: Any, key: str) -> list[tuple[object, Outcome]]:
    return [
        (getattr(d.decision, "reason", d.kind), d.outcome)
        for d in history.decisions
        if d.key == key
    ]


async def test_a_renewal_order_reported_first_gets_only_the_renewal_invite(opened: Start) -> None:
    """The order webhook of a tagged renewal order reports the renewal before its shipment: the
    renewal trigger enqueues, the order trigger skips with its own reason."""
    shop = await opened("all")
    await post(
        shop, fulfilled_order("Subscription, Subscription Recurring Order"), "orders/fulfilled", 1
    )
    assert await shop.counts() == {State.PENDING: 1}
    assert (await shop.outbox.get(RENEWED)).state is State.PENDING
    history = await shop.history(ORDER_ID, SOURCE)
    assert on_key(history, RENEWED) == [("enqueue", Outcome.ENQUEUED)]
    assert on_key(history, SHIPPED) == [(SkipReason.SUBSCRIPTION_RENEWAL_ORDER, Outcome.RECORDED)]


async def test_a_renewal_reported_while_the_order_invite_waits_replaces_it(opened: Start) -> None:
    """The order shipped and its invite waits; the billing attempt then says the order is a
    renewal: the order invite is withdrawn and the renewal's own invite takes its place."""
    shop = await opened("first")
    await post(shop, fulfilled_order(), "orders/fulfilled", 1)
    assert (await shop.outbox.get(SHIPPED)).state is State.PENDING
    await billing_attempt(shop, 2)
    assert await shop.counts() == {State.CANCELLED: 1, State.PENDING: 1}
    assert (await shop.outbox.get(SHIPPED)).state is State.CANCELLED
    assert (await shop.outbox.get(RENEWED)).state is State.PENDING
    history = await shop.history(ORDER_ID, SOURCE)
    assert on_key(history, SHIPPED) == [
        ("enqueue", Outcome.ENQUEUED),
        (SkipReason.SUBSCRIPTION_RENEWAL_ORDER, Outcome.CANCELLED),
    ]
    assert on_key(history, RENEWED) == [("enqueue", Outcome.ENQUEUED)]


async def test_a_renewal_reported_after_the_order_invite_left_sends_nothing_more(
    opened: Start,
) -> None:
    """The order invite already reached eTrusted when the renewal is reported: the journal
    records the renewal and why it sends nothing; the customer gets one invite."""
    shop = await opened("first")
    await post(shop, fulfilled_order(), "orders/fulfilled", 1)
    later = NOW + 86400
    config = SandboxConfig(event_types=("order_shipped", "subscription_renewed"))
    async with running_sandbox(config) as server, ETrustedClient(server.client_config()) as client:
        first = await Flusher(shop.outbox, client, clock=lambda: later).run_once()
        await billing_attempt(shop, 2)
        again = await Flusher(shop.outbox, client, clock=lambda: later + 86400).run_once()
        accepted = server.sandbox.accepted_events()
    assert (first.delivered, again.delivered) == (1, 0)
    assert [e.body["type"] for e in accepted] == ["order_shipped"]
    assert await shop.counts() == {State.DELIVERED: 1}
    history = await shop.history(ORDER_ID, SOURCE)
    assert [e.kind for e in history.events][-1] == "subscription_renewed"
    assert on_key(history, SHIPPED) == [
        ("enqueue", Outcome.ENQUEUED),
        ("recorded", Outcome.ALREADY_SENT),
    ]
    assert on_key(history, RENEWED) == [(SkipReason.ORDER_INVITE_SENT, Outcome.RECORDED)]
