"""The WooCommerce feed under the kit's feed loop, on a SQLite file against the loopback
stand-in: a backfill of a few thousand orders that stops mid-way and is run again delivers each
eligible order exactly once, and only the overlap is read twice; an order saved mid-read
pushes no other order out of the read, and an unreadable order is skipped alone."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from feeds.orders import skipped_deliveries
from woocommerce_deliveries import SECRET, completed, order

from adapters.woocommerce import WooCommerceAdapter, WooCommerceConfig
from adapters.woocommerce import feed as woocommerce_feed
from adapters.woocommerce.feed import WooCommerceFeed
from kit.configfile import Secret
from kit.errors import FeedAuthError
from kit.feeds import FeedWindow
from kit.feeds.checkpoint import Run, checkpoints_for
from kit.feeds.runner import OVERLAP, FeedRunner, FeedSource
from kit.journal import Intake, IntakeSource
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.policy import PolicyConfig, Trigger
from kit.testing import woocommerce as woocommerce_stand_in
from kit.testing.woocommerce import RunningStandIn, WooCommerceStandIn, running_woocommerce

KEY_ID = "ck_kit_test_0123456789abcdef"
KEY_SECRET = "cs_kit_test_fedcba9876543210"
ORDERS = 2000
FIRST = datetime(2025, 3, 1, 9, 0)  # the first order's change; one a minute after it
WINDOW = FeedWindow(since=datetime(2025, 3, 1, tzinfo=UTC))
NOW = datetime(2025, 3, 10, tzinfo=UTC).timestamp()


def modified(n: int) -> datetime:
    return FIRST + timedelta(minutes=n)


def fulfilled(n: int) -> dict[str, Any]:
    at = modified(n).isoformat()
    return completed(id=n, number=str(n), date_modified_gmt=at, date_completed_gmt=at)


@attrs.define
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@attrs.define
class Sleeps:
    """The runner's waits, recorded instead of slept."""

    waits: list[float] = attrs.Factory(list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@attrs.frozen
class Backfill:
    running: RunningStandIn
    outbox: Outbox
    runner: FeedRunner
    sleeps: Sleeps

    @property
    def stand_in(self) -> WooCommerceStandIn:
        return self.running.stand_in

    async def keys(self) -> list[str]:
        return [row.key for row in await self.outbox.storage.entries(limit=100_000)]


@pytest.fixture
async def backfill(tmp_path: Path) -> AsyncIterator[Backfill]:
    stand_in = WooCommerceStandIn(consumer_key=KEY_ID, consumer_secret=KEY_SECRET)
    clock = Clock()
    async with (
        running_woocommerce(stand_in) as running,
        aiohttp.ClientSession() as session,
        Outbox(SQLiteStorage(tmp_path / "outbox.db"), clock=clock) as outbox,
    ):
        config = WooCommerceConfig(
            store_url=running.url,
            allow_insecure_http=True,
            consumer_key=Secret(KEY_ID),
            consumer_secret=Secret(KEY_SECRET),
        )
        trigger = Trigger(on="order_fulfilled", event_type="order_shipped", delay="3d")
        source = FeedSource(
            name="my-store",
            feed=WooCommerceFeed.from_config(source="my-store", config=config),
            intake=IntakeSource(
                name="my-store",
                adapter=WooCommerceAdapter(source="my-store", config=config),
                policy=PolicyConfig(channel_id="chl-1", triggers=(trigger,)),
                secrets=(SECRET,),
            ),
        )
        sleeps = Sleeps()
        runner = FeedRunner(
            source,
            intake=Intake(outbox, clock=clock),
            checkpoints=checkpoints_for(outbox),
            session=session,
            clock=clock,
            sleep=sleeps,
        )
        yield Backfill(running, outbox, runner, sleeps)


def key(n: int) -> str:
    return f"woocommerce:127.0.0.1:{n}:order_shipped"


async def test_a_stopped_backfill_resumes_and_enqueues_each_order_once(
    backfill: Backfill,
) -> None:
    """The key is refused after ten pages; the run stops with its checkpoint at the last
    committed page, and the next run reads on from there minus the overlap."""
    for n in range(1, ORDERS + 1):
        backfill.stand_in.put(fulfilled(n))
    backfill.stand_in.put(order(id=ORDERS + 1, number="x", date_modified_gmt="2025-03-01T09:00:30"))
    backfill.stand_in.fail_next(401, after=10)

    with pytest.raises(FeedAuthError, match="consumer_key"):
        await backfill.runner.backfill(WINDOW)
    checkpoints = checkpoints_for(backfill.outbox)
    saved = await checkpoints.load("my-store", Run.BACKFILL)
    assert saved is not None
    assert not saved.done
    assert saved.pages == 10
    assert saved.high_water is not None
    first_pass = len(await backfill.keys())
    assert 0 < first_pass < ORDERS

    resumed = await backfill.runner.backfill(WINDOW)

    assert resumed.resumed
    assert sorted(await backfill.keys()) == sorted(key(n) for n in range(1, ORDERS + 1))
    finished = await checkpoints.load("my-store", Run.BACKFILL)
    assert finished is not None
    assert finished.done
    overlap_start = saved.high_water - OVERLAP.total_seconds()
    twice = [n for n, count in backfill.stand_in.served.items() if count > 1]
    assert twice, "the resumed run re-reads its overlap"
    for n in twice:
        changed = modified(n).replace(tzinfo=UTC).timestamp()
        assert changed >= overlap_start - 1, f"order {n} read again from before the overlap"
    assert max(backfill.stand_in.served.values()) == 2
    assert set(backfill.stand_in.served) == set(range(1, ORDERS + 2))


async def test_a_backfill_run_again_finds_every_order_journaled(backfill: Backfill) -> None:
    for n in range(1, 151):
        backfill.stand_in.put(fulfilled(n))
    first = await backfill.runner.backfill(WINDOW)
    again = await backfill.runner.backfill(WINDOW)

    assert (first.orders, first.enqueued) == (150, 150)
    assert (again.duplicates, again.enqueued) == (150, 0)
    assert ["exclude" in r.params for r in backfill.stand_in.requests] == [
        False,
        True,
        False,
        True,
    ]


async def test_the_stores_rate_limit_is_waited_out_as_asked(backfill: Backfill) -> None:
    """A host's 429 and 503 with Retry-After: the loop waits that long (plus its spread) and
    reads the same page again; nothing is lost."""
    for n in range(1, 151):
        backfill.stand_in.put(fulfilled(n))
    backfill.stand_in.fail_next(429, retry_after=7, after=1)
    tally = await backfill.runner.backfill(WINDOW)
    backfill.stand_in.fail_next(503, retry_after=4)
    await backfill.runner.poll()

    assert tally.enqueued == 150
    assert [r.status for r in backfill.stand_in.requests][:3] == [200, 429, 200]
    assert backfill.stand_in.requests[1].params == backfill.stand_in.requests[2].params
    assert "exclude" in backfill.stand_in.requests[1].params  # the second page, asked again
    assert len(backfill.sleeps.waits) == 2
    assert 7 <= backfill.sleeps.waits[0] <= 7 * 1.5
    assert 4 <= backfill.sleeps.waits[1] <= 4 * 1.5


async def test_a_revoked_key_stops_at_once_without_retrying(backfill: Backfill) -> None:
    backfill.stand_in.put(fulfilled(1))
    backfill.stand_in.fail_next(401, times=100)
    with pytest.raises(FeedAuthError, match="consumer_key/consumer_secret"):
        await backfill.runner.backfill(WINDOW)
    assert len(backfill.stand_in.requests) == 1
    assert backfill.sleeps.waits == []


# -- a store that changes while it is read ---------------------------------------------------

RECENT = datetime.fromtimestamp(NOW, UTC).replace(tzinfo=None) - timedelta(hours=6)


def recent(n: int, *, minutes: int | None = None, **changes: Any) -> dict[str, Any]:
    """Order ``n``, completed and last changed ``minutes`` (default ``n``) after six hours
    before now: inside the first poll's lookback."""
    at = (RECENT + timedelta(minutes=n if minutes is None else minutes)).isoformat()
    values = {"date_modified_gmt": at, "date_completed_gmt": at} | changes
    return completed(id=n, number=str(n), **values)


async def test_an_order_saved_mid_poll_pushes_no_other_order_out_of_it(
    backfill: Backfill,
) -> None:
    """Order 5 is saved after the first page was answered and moves to the end of the
    listing; order 101, which began the second page, is still read, and every order is
    enqueued by this one poll."""
    for n in range(1, 151):
        backfill.stand_in.put(recent(n))
    backfill.stand_in.between_requests(lambda store: store.put(recent(5, minutes=300)))

    tally = await backfill.runner.poll()

    assert sorted(await backfill.keys()) == sorted(key(n) for n in range(1, 151))
    assert tally.enqueued == 150
    assert backfill.stand_in.served[101] == 1
    assert backfill.stand_in.served[5] == 2  # before and after its change


async def test_more_orders_changed_in_one_second_than_a_page_are_all_read(
    backfill: Backfill,
) -> None:
    """WooCommerce compares change times strictly and in whole seconds: the orders read at the
    boundary second are left out by id, not by time, so the rest of that second follows."""
    for n in range(1, 251):
        backfill.stand_in.put(recent(n, minutes=30))
    backfill.stand_in.put(recent(251, minutes=31))

    tally = await backfill.runner.poll()

    assert sorted(await backfill.keys()) == sorted(key(n) for n in range(1, 252))
    assert tally.orders == 251
    assert set(backfill.stand_in.served.values()) == {1}


async def test_a_second_with_more_changes_than_a_url_holds_is_left_with_a_warning(
    backfill: Backfill, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The ids left out travel in the URL, so they are bounded: past the bound the read goes
    on after that second, says so, and finishes, rather than failing every poll."""
    monkeypatch.setattr(woocommerce_feed, "MAX_EXCLUDED", 150)
    for n in range(1, 251):
        backfill.stand_in.put(recent(n, minutes=30))
    backfill.stand_in.put(recent(251, minutes=31))

    with caplog.at_level(logging.WARNING, logger="adapters.woocommerce.feed"):
        tally = await backfill.runner.poll()

    assert tally.done
    assert len(await backfill.keys()) == 201  # two pages of that second, and the next one
    assert key(251) in await backfill.keys()
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "reading on after that second" in warning.getMessage()


async def test_a_store_that_ignores_exclude_ends_the_read_instead_of_looping(
    backfill: Backfill, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store (or a plugin in front of it) that answers the same page of one second again:
    the cursor sees no new order, leaves that second with a warning, and the poll ends."""
    monkeypatch.setattr(woocommerce_stand_in, "_ids", lambda values: frozenset())
    for n in range(1, 151):
        backfill.stand_in.put(recent(n, minutes=30))
    backfill.stand_in.put(recent(151, minutes=31))

    tally = await backfill.runner.poll()

    assert tally.done
    assert key(151) in await backfill.keys()
    assert len(backfill.stand_in.requests) == 3


async def test_an_unreadable_order_is_skipped_alone_and_polling_goes_on(
    backfill: Backfill, caplog: pytest.LogCaptureFixture
) -> None:
    """Order 3's line items are not a list: it is journaled as skipped ``unreadable_order``
    and logged by id; the orders around it are enqueued, the checkpoint moves past it, and the
    next poll reads on instead of failing at it again."""
    for n in (1, 2, 4, 5):
        backfill.stand_in.put(recent(n))
    backfill.stand_in.put(recent(3, line_items="not a list"))

    with caplog.at_level(logging.WARNING, logger="kit.feeds.runner"):
        first = await backfill.runner.poll()

    assert sorted(await backfill.keys()) == sorted(key(n) for n in (1, 2, 4, 5))
    assert first.skipped == {"unreadable_order": 1}
    version = recent(3)["date_modified_gmt"]
    skipped = await skipped_deliveries(backfill.outbox.storage)
    reason, detail = skipped[f"unreadable:3@{version}"]
    assert reason == "unreadable_order"
    assert "line_items must be an array" in detail
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert getattr(warning, "order_id", None) == "3"
    assert "@" not in warning.getMessage()  # the order's id, no customer e-mail
    saved = await checkpoints_for(backfill.outbox).load("my-store", Run.POLL)
    assert saved is not None
    assert (
        saved.high_water
        == datetime.fromisoformat(recent(5)["date_modified_gmt"]).replace(tzinfo=UTC).timestamp()
    )

    backfill.stand_in.put(recent(6))
    second = await backfill.runner.poll()

    assert key(6) in await backfill.keys()
    assert second.enqueued == 1
    assert second.skipped == {}  # order 3 again: the journal has it
    assert second.duplicates == 5
