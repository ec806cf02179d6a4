"""The REST v3 orders feed, read against the loopback stand-in: pages in modification order
with Basic auth, the store's errors as the feed contract's errors, and an order seen by
webhook and by poll making one invite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from woocommerce_deliveries import SECRET, STORE, adapter, completed, delivery, order

from adapters.woocommerce import WooCommerceConfig, plugin
from adapters.woocommerce.feed import WooCommerceFeed
from kit.configfile import Secret
from kit.domain import Skip, order_of
from kit.errors import ConfigError, FeedAuthError, FeedThrottledError, FeedUnavailableError
from kit.feeds import FeedAdapter, FeedOrder, FeedPlugin, FeedWindow, load_feed
from kit.journal import IngestStatus, Intake, IntakeSource
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import State
from kit.policy import PolicyConfig, Trigger
from kit.testing.woocommerce import RunningStandIn, WooCommerceStandIn, running_woocommerce

KEY_ID = "ck_kit_test_0123456789abcdef"
KEY_SECRET = "cs_kit_test_fedcba9876543210"
SINCE = datetime(2025, 3, 1, tzinfo=UTC)
NOW = datetime(2025, 3, 2, 12, 0, tzinfo=UTC).timestamp()
INVITE_KEY = "woocommerce:127.0.0.1:727:order_shipped"


def numbered(count: int) -> list[dict[str, Any]]:
    """``count`` orders, each modified one minute after the one before."""
    start = datetime(2025, 3, 1, 9, 0)
    return [
        order(
            id=1000 + i,
            number=str(1000 + i),
            date_modified_gmt=(start + timedelta(minutes=i)).isoformat(),
        )
        for i in range(count)
    ]


@attrs.frozen
class Store:
    running: RunningStandIn
    session: aiohttp.ClientSession

    @property
    def stand_in(self) -> WooCommerceStandIn:
        return self.running.stand_in

    def config(self, **changes: Any) -> WooCommerceConfig:
        values: dict[str, Any] = {
            "store_url": self.running.url,
            "allow_insecure_http": True,
            "consumer_key": Secret(KEY_ID),
            "consumer_secret": Secret(KEY_SECRET),
        }
        return WooCommerceConfig(**(values | changes))

    def feed(self, **changes: Any) -> WooCommerceFeed:
        return WooCommerceFeed.from_config(source="my-store", config=self.config(**changes))

    async def read_all(self, feed: WooCommerceFeed, window: FeedWindow) -> list[FeedOrder]:
        orders: list[FeedOrder] = []
        page: str | None = None
        while True:
            result = await feed.read_page(self.session, window, page)
            orders.extend(o if isinstance(o, FeedOrder) else o.read() for o in result.orders)
            if result.next_page is None:
                return orders
            page = result.next_page


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    stand_in = WooCommerceStandIn(consumer_key=KEY_ID, consumer_secret=KEY_SECRET)
    async with running_woocommerce(stand_in) as running, aiohttp.ClientSession() as session:
        yield Store(running, session)


# -- reading pages -----------------------------------------------------------------------------


async def test_pages_are_read_in_modification_order_with_basic_auth(store: Store) -> None:
    for body in reversed(numbered(250)):
        store.stand_in.put(body)
    orders = await store.read_all(store.feed(), FeedWindow(since=SINCE))

    assert [o.stream for o in orders] == [str(1000 + i) for i in range(250)]
    assert {r.status for r in store.stand_in.requests} == {200}
    first, second, third = (r.params for r in store.stand_in.requests)
    assert first == {
        "modified_after": "2025-02-28T23:59:59",
        "dates_are_gmt": "true",
        "orderby": "modified",
        "order": "asc",
        "status": "any",
        "per_page": "100",
    }
    # each next page: changed at or after the last order read, less that order
    assert (second["modified_after"], second["exclude"]) == ("2025-03-01T10:38:59", "1099")
    assert (third["modified_after"], third["exclude"]) == ("2025-03-01T12:18:59", "1199")
    assert orders[0].updated_at == datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
    assert orders[0].placed_at == datetime(2025, 3, 1, 8, 12, 44, tzinfo=UTC)
    assert orders[0].identity.delivery_id == "feed:1000@2025-03-01T09:00:00"


async def test_only_orders_changed_in_the_window_are_listed(store: Store) -> None:
    for body in numbered(10):
        store.stand_in.put(body)
    window = FeedWindow(
        since=datetime(2025, 3, 1, 9, 3, 30, tzinfo=UTC),
        until=datetime(2025, 3, 1, 9, 6, 30, tzinfo=UTC),
    )
    orders = await store.read_all(store.feed(), window)

    assert [o.stream for o in orders] == ["1004", "1005", "1006"]
    assert store.stand_in.requests[0].params["modified_before"] == "2025-03-01T09:06:31"


async def test_an_empty_window_is_one_page_saying_nothing_changed(store: Store) -> None:
    page = await store.feed().read_page(store.session, FeedWindow(since=SINCE), None)
    assert (page.orders, page.next_page) == ((), None)


async def test_a_polled_order_makes_the_webhooks_facts_and_events(store: Store) -> None:
    """Same stream, same facts, same status events; the feed adds the placement it cannot
    know the kit saw."""
    store.stand_in.put(completed())
    (polled,) = await store.read_all(store.feed(), FeedWindow(since=SINCE))
    pushed = adapter(store_url=store.running.url, allow_insecure_http=True).parse(
        *delivery(completed()), received_at=datetime.now(UTC)
    )

    assert not isinstance(polled.parsed, Skip)
    assert not isinstance(pushed, Skip)
    assert [e.kind for e in polled.parsed] == ["order_placed", *(e.kind for e in pushed)]
    assert {order_of(e) for e in polled.parsed} == {order_of(e) for e in pushed}
    assert {(e.stream, e.account) for e in (*polled.parsed, *pushed)} == {("727", "127.0.0.1")}


# -- the store's errors ------------------------------------------------------------------------


async def test_a_refused_key_stops_with_an_error_naming_the_keys(store: Store) -> None:
    feed = store.feed(consumer_secret=Secret("cs_revoked"))
    with pytest.raises(FeedAuthError, match="consumer_key/consumer_secret") as caught:
        await feed.read_page(store.session, FeedWindow(since=SINCE), None)
    assert "cs_revoked" not in str(caught.value)
    assert "401" in str(caught.value)


@pytest.mark.parametrize("status", [429, 503])
async def test_a_rate_limit_is_throttling_with_the_wait_asked_for(
    store: Store, status: int
) -> None:
    store.stand_in.fail_next(status, retry_after=7)
    with pytest.raises(FeedThrottledError) as caught:
        await store.feed().read_page(store.session, FeedWindow(since=SINCE), None)
    assert caught.value.retry_after == 7.0


async def test_a_429_without_retry_after_is_throttling_without_a_wait(store: Store) -> None:
    store.stand_in.fail_next(429)
    with pytest.raises(FeedThrottledError) as caught:
        await store.feed().read_page(store.session, FeedWindow(since=SINCE), None)
    assert caught.value.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_a_server_error_is_unavailable(store: Store, status: int) -> None:
    store.stand_in.fail_next(status)
    with pytest.raises(FeedUnavailableError, match=str(status)):
        await store.feed().read_page(store.session, FeedWindow(since=SINCE), None)


async def test_no_connection_is_unavailable(store: Store) -> None:
    feed = store.feed(store_url="http://127.0.0.1:9")
    with pytest.raises(FeedUnavailableError, match="ClientConnectorError"):
        await feed.read_page(store.session, FeedWindow(since=SINCE), None)


# -- the plugin --------------------------------------------------------------------------------


def test_the_entry_point_offers_a_feed() -> None:
    assert isinstance(load_feed("woocommerce"), FeedPlugin)


async def test_a_source_without_a_rest_api_key_has_its_feed_off() -> None:
    """A webhooks-only store builds (serve asks every source for its feed) but never polls,
    and a read (a backfill) is refused with the missing keys named."""
    config = WooCommerceConfig(store_url="https://kit-shop.example")
    feed = plugin.create_feed(source="my-store", config=config)  # type: ignore[attr-defined]
    assert feed.poll_interval is None
    window = FeedWindow(since=datetime(2026, 1, 1, tzinfo=UTC))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConfigError, match="needs consumer_key and consumer_secret"):
            await feed.read_page(session, window, None)


def test_the_feed_reports_its_pacing_settings() -> None:
    config = WooCommerceConfig(
        store_url="https://kit-shop.example",
        consumer_key=Secret(KEY_ID),
        consumer_secret=Secret(KEY_SECRET),
        max_age="90d",
    )
    feed = WooCommerceFeed.from_config(source="my-store", config=config)
    assert isinstance(feed, FeedAdapter)
    assert (feed.platform, feed.account) == ("woocommerce", STORE)
    assert feed.poll_interval == timedelta(minutes=5)
    assert feed.max_age == timedelta(days=90)
    assert KEY_SECRET not in repr(feed)


# -- webhook and poll into one journal ---------------------------------------------------------


@attrs.define
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


def intake_source(store: Store) -> IntakeSource:
    trigger = Trigger(on="order_fulfilled", event_type="order_shipped", delay="3d")
    return IntakeSource(
        name="my-store",
        adapter=adapter(store_url=store.running.url, allow_insecure_http=True),
        policy=PolicyConfig(channel_id="chl-1", triggers=(trigger,)),
        secrets=(SECRET,),
    )


@pytest.mark.parametrize("first", ["webhook", "poll", "together"])
async def test_an_order_by_webhook_and_by_poll_is_one_invite(
    store: Store, tmp_path: Path, first: str
) -> None:
    """Both facts are journaled; the second one decides nothing new."""
    store.stand_in.put(completed())
    source = intake_source(store)
    clock = Clock()
    async with Outbox(SQLiteStorage(tmp_path / "outbox.db"), clock=clock) as outbox:
        intake = Intake(outbox, clock=clock)

        async def by_webhook() -> None:
            await intake.ingest_raw(source, *delivery(completed(), source=None))

        async def by_poll() -> None:
            for polled in await store.read_all(store.feed(), FeedWindow(since=SINCE)):
                await intake.ingest(source, polled.identity, polled.parsed)

        if first == "together":
            await asyncio.gather(by_webhook(), by_poll())
        for step in (by_webhook, by_poll) if first == "webhook" else (by_poll, by_webhook):
            await step()  # after "together": both again, as duplicates
        await by_poll()  # the overlap re-read: a duplicate

        assert (await outbox.stats()).counts[State.PENDING] == 1
        assert (await outbox.get(INVITE_KEY)).state is State.PENDING
        found = await intake.journal.history("my-store", "727")
        topics = {row.event.topic for row in found.events if row.event is not None}
        assert topics == {"order.updated", "rest.orders"}
        enqueued = [d for d in found.decisions if d.kind == "enqueue"]
        assert len(enqueued) == 1


async def test_a_re_read_of_an_unchanged_order_is_a_duplicate(store: Store, tmp_path: Path) -> None:
    store.stand_in.put(completed())
    source = intake_source(store)
    clock = Clock()
    async with Outbox(SQLiteStorage(tmp_path / "outbox.db"), clock=clock) as outbox:
        intake = Intake(outbox, clock=clock)
        (polled,) = await store.read_all(store.feed(), FeedWindow(since=SINCE))
        (again,) = await store.read_all(store.feed(), FeedWindow(since=SINCE))
        first = await intake.ingest(source, polled.identity, polled.parsed)
        second = await intake.ingest(source, again.identity, again.parsed)
    assert first.status is IngestStatus.ACCEPTED
    assert second.status is IngestStatus.DUPLICATE
