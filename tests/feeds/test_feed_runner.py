"""The feed loop against the Shopify stand-in on loopback, on every backend: each eligible
order enqueued once, checkpoints that resume from the last committed page, overlap re-reads
that change nothing, a dry run that writes nothing, and throttling, Retry-After, 5xx and 401
handled as documented."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kit.errors import FeedAuthError, FeedUnavailableError
from kit.feeds import FeedOrder, FeedWindow
from kit.feeds.checkpoint import Run
from kit.journal import IngestStatus
from kit.testing.shopify_orders import STANDARD_MAXIMUM, STANDARD_RESTORE_RATE, synthetic_order

from .conftest import FeedKit
from .orders import NOW, SOURCE, skipped_deliveries

T0 = datetime.fromtimestamp(NOW, UTC) - timedelta(days=20)
SHOP_KEY = "shopify:kit-demo.myshopify.com:{}:order_shipped"


def _orders(
    count: int, *, start: datetime = T0, step: timedelta = timedelta(minutes=1)
) -> list[dict[str, Any]]:
    """``count`` fulfilled orders, one changed every ``step`` from ``start``."""
    out = []
    for n in range(1, count + 1):
        at = start + n * step
        out.append(synthetic_order(n, updated_at=at, fulfilled_at=at - timedelta(minutes=1)))
    return out


def _key(number: int) -> str:
    return SHOP_KEY.format(5560000000000 + number)


WINDOW = FeedWindow(since=T0)


async def test_a_backfill_enqueues_each_eligible_order_once(feed_kit: FeedKit) -> None:
    """Fulfilled orders are enqueued, one entry each; unfulfilled, test, cancelled and too old
    ones are not, each with its reason; every order is read once on a fresh run."""
    orders = _orders(20)
    at = T0 + timedelta(hours=2)
    orders.append(synthetic_order(21, updated_at=at))  # not fulfilled: nothing fires
    orders.append(synthetic_order(22, updated_at=at, fulfilled_at=at, test=True))
    orders.append(synthetic_order(23, updated_at=at, fulfilled_at=at, cancelled_at=at))
    old = datetime.fromtimestamp(NOW, UTC) - timedelta(days=200)
    orders.append(synthetic_order(24, updated_at=at, created_at=old, fulfilled_at=at))
    feed_kit.stand_in.put(*orders)

    tally = await feed_kit.runner().backfill(WINDOW)

    assert sorted(await feed_kit.entries()) == sorted(_key(n) for n in range(1, 21))
    assert tally.orders == 24
    assert tally.enqueued == 20
    assert tally.skipped == {"test_order": 1, "cancelled": 1, "too_old": 1}
    assert tally.other == {"nothing_to_do": 1}
    assert set(feed_kit.stand_in.served.values()) == {1}
    saved = await feed_kit.checkpoints.load(SOURCE, Run.BACKFILL)
    assert saved is not None
    assert saved.done
    assert saved.orders == 24
    assert saved.high_water == at.timestamp()


async def test_hold_back_counts_from_when_the_order_shipped(feed_kit: FeedKit) -> None:
    """An order shipped weeks ago is due at once (its 3-day hold-back is long over); one
    shipped yesterday waits out the rest of its hold-back."""
    now = datetime.fromtimestamp(NOW, UTC)
    feed_kit.stand_in.put(
        synthetic_order(1, updated_at=T0, fulfilled_at=T0),
        synthetic_order(2, updated_at=now, fulfilled_at=now - timedelta(days=1)),
    )
    await feed_kit.runner().backfill(WINDOW)
    old = await feed_kit.outbox.storage.get(_key(1))
    recent = await feed_kit.outbox.storage.get(_key(2))
    assert old is not None
    assert recent is not None
    assert old.due_at == NOW  # its send_after (shipped + 3 days) is long past
    assert recent.due_at == pytest.approx((now + timedelta(days=2)).timestamp())


async def test_reading_an_order_again_changes_nothing(feed_kit: FeedKit) -> None:
    """A second backfill of the same window (and a poll over the same orders) finds every
    order version journaled already: no entry, no decision."""
    feed_kit.stand_in.put(*_orders(10))
    await feed_kit.runner().backfill(WINDOW)
    again = await feed_kit.runner().backfill(WINDOW)
    assert again.duplicates == 10
    assert again.enqueued == 0
    assert len(await feed_kit.entries()) == 10


async def test_an_interrupted_backfill_resumes_after_its_last_committed_page(
    feed_kit: FeedKit,
) -> None:
    """A run that stops mid-way (here: the token revoked after some pages) keeps its
    checkpoint; the next run of the same window starts at the checkpoint minus the overlap,
    so only the overlap (and the page that was not committed) is read twice, and every order
    ends up enqueued exactly once."""
    orders = _orders(100)  # one a minute; the page size is 7
    feed_kit.stand_in.put(*orders)
    runner = feed_kit.runner()
    stopped = asyncio.create_task(runner.backfill(WINDOW))
    await asyncio.wait_for(feed_kit.stand_in.wait_pages(5), 10)
    feed_kit.stand_in.token = "revoked"
    with pytest.raises(FeedAuthError):
        await asyncio.wait_for(stopped, 10)
    saved = await feed_kit.checkpoints.load(SOURCE, Run.BACKFILL)
    assert saved is not None
    assert not saved.done
    assert saved.high_water is not None
    first_pass = dict(feed_kit.stand_in.served)

    feed_kit.stand_in.token = "shpat_kit_test_token_do_not_use"
    resumed = await feed_kit.runner().backfill(WINDOW)

    assert resumed.resumed
    assert sorted(await feed_kit.entries()) == sorted(_key(n) for n in range(1, 101))
    twice = [gid for gid, count in feed_kit.stand_in.served.items() if count > 1]
    overlap_start = saved.high_water - 5 * 60
    by_id = {o["id"]: o for o in orders}
    for gid in twice:
        changed = datetime.fromisoformat(by_id[gid]["updatedAt"]).timestamp()
        assert changed >= overlap_start, f"{gid} read again from before the overlap"
    assert len(twice) <= 6  # five minutes of orders, one a minute, the boundary included
    assert len(first_pass) + len(orders) - len(twice) >= len(orders)


async def test_a_poll_reads_from_its_checkpoint_minus_the_overlap(feed_kit: FeedKit) -> None:
    """The first poll reads a day back; the next one starts five minutes before the newest
    change it committed, finds the overlap journaled, and takes in what changed since."""
    now = datetime.fromtimestamp(NOW, UTC)
    recent = _orders(10, start=now - timedelta(hours=1))
    feed_kit.stand_in.put(synthetic_order(99, updated_at=now - timedelta(days=3)), *recent)
    first = await feed_kit.runner().poll()
    assert first.orders == 10  # the order changed three days ago is before the lookback
    newer = synthetic_order(11, updated_at=now + timedelta(minutes=1), fulfilled_at=now)
    feed_kit.stand_in.put(newer)
    second = await feed_kit.runner().poll()
    assert second.since is not None
    assert second.since.timestamp() == pytest.approx(
        datetime.fromisoformat(recent[-1]["updatedAt"]).timestamp() - 300
    )
    assert second.enqueued == 1
    assert second.duplicates == second.orders - 1
    assert len(await feed_kit.entries()) == 11


async def test_a_dry_run_writes_nothing(feed_kit: FeedKit) -> None:
    """A dry run decides every order as the real run then does, and leaves the journal, the
    outbox and the checkpoints as they were."""
    at = T0 + timedelta(hours=2)
    feed_kit.stand_in.put(
        *_orders(12),
        synthetic_order(21, updated_at=at),
        synthetic_order(22, updated_at=at, fulfilled_at=at, test=True),
    )
    tally = await feed_kit.runner().backfill(WINDOW, dry_run=True)
    assert tally.enqueued == 12
    verdicts = {v.reference: (v.outcome, v.detail) for v in tally.verdicts}
    assert verdicts["#21"] == ("nothing_to_do", None)
    assert verdicts["#22"] == ("skipped", "test_order")
    outcome, detail = verdicts["#1"]
    assert outcome == "enqueue"
    assert detail is not None
    assert detail.startswith("order_shipped, due ")
    assert await feed_kit.entries() == []
    assert await feed_kit.checkpoints.load(SOURCE, Run.BACKFILL) is None
    history = await feed_kit.intake.journal.history(SOURCE, "5560000000001")
    assert history.events == ()
    real = await feed_kit.runner().backfill(WINDOW)
    assert (real.enqueued, real.skipped, real.other) == (tally.enqueued, tally.skipped, tally.other)
    after = await feed_kit.runner().backfill(WINDOW, dry_run=True)
    assert after.duplicates == 14
    assert after.enqueued == 0


@pytest.mark.parametrize("status", [200, 429])
async def test_throttled_waits_for_the_bucket_to_restore(
    memory_feed_kit: FeedKit, status: int
) -> None:
    """THROTTLED, as HTTP 200 with errors[].extensions.code or as a 429, waits until the
    bucket holds the query's requested cost again, then reads the same page."""
    kit = memory_feed_kit
    kit.stand_in.put(*_orders(3))
    kit.stand_in.bucket.available = 500.0
    kit.stand_in.fail_next(status, throttled_body=True)
    tally = await kit.runner().backfill(WINDOW)
    assert tally.orders == 3
    assert tally.stats.throttled == 1
    requested = 2 + 7 * 141
    assert kit.time.sleeps[0] == pytest.approx((requested - 500.0) / STANDARD_RESTORE_RATE, 0.11)
    assert kit.time.sleeps[0] >= (requested - 500.0) / STANDARD_RESTORE_RATE


async def test_retry_after_is_honoured(memory_feed_kit: FeedKit) -> None:
    """A 429's Retry-After is the wait (never shortened by jitter)."""
    kit = memory_feed_kit
    kit.stand_in.put(*_orders(2))
    kit.stand_in.fail_next(429, retry_after=7)
    await kit.runner().backfill(WINDOW)
    assert 7.0 <= kit.time.sleeps[0] <= 7.7


async def test_a_refused_token_stops_at_once_with_a_clear_error(memory_feed_kit: FeedKit) -> None:
    """401 is not retried: one request, and the error names the key to fix."""
    kit = memory_feed_kit
    kit.stand_in.put(*_orders(2))
    kit.stand_in.token = "another"
    with pytest.raises(FeedAuthError, match="admin_access_token"):
        await kit.runner().backfill(WINDOW)
    assert kit.stand_in.requests == 1
    assert kit.time.sleeps == []


async def test_5xx_backs_off_with_jitter_and_gives_up_in_the_end(
    memory_feed_kit: FeedKit,
) -> None:
    """Two 503s are waited out within the backoff's growing ceilings; a platform that stays
    down ends the run after the attempts, with the checkpoint left where it was."""
    kit = memory_feed_kit
    kit.stand_in.put(*_orders(2))
    kit.stand_in.fail_next(503, times=2)
    tally = await kit.runner().backfill(WINDOW)
    assert tally.stats.failures == 2
    assert 0 <= kit.time.sleeps[0] <= 1.0
    assert 0 <= kit.time.sleeps[1] <= 2.0
    kit.stand_in.fail_next(502, times=20)
    with pytest.raises(FeedUnavailableError):
        await kit.runner().backfill(FeedWindow(since=T0 + timedelta(minutes=1)))
    assert kit.stand_in.requests == 3 + 8


async def test_paced_reading_never_runs_the_bucket_dry(sqlite_feed_kit: FeedKit) -> None:
    """Against the documented standard bucket (2,000 points, 100 per second) a long backfill
    is never throttled, and waits no longer than the points it spent need to come back."""
    kit = sqlite_feed_kit
    kit.stand_in.put(*_orders(400))
    start = kit.time.now
    tally = await kit.runner().backfill(WINDOW)
    assert tally.orders == 400
    assert kit.stand_in.throttled == 0
    waited = kit.time.now - start
    needed = (kit.stand_in.spent - STANDARD_MAXIMUM) / STANDARD_RESTORE_RATE
    requested = 2 + 7 * 141
    assert waited > 0
    assert waited <= needed + requested / STANDARD_RESTORE_RATE


async def test_run_forever_polls_until_stopped(memory_feed_kit: FeedKit) -> None:
    """serve's per-source loop: polls right away and again after each interval, and ends
    when told to stop."""
    kit = memory_feed_kit
    kit.stand_in.put(*_orders(3, start=datetime.fromtimestamp(NOW, UTC) - timedelta(hours=1)))
    stop = asyncio.Event()
    runner = kit.runner()
    loop = asyncio.create_task(runner.run_forever(timedelta(milliseconds=1), stop=stop))
    await asyncio.wait_for(kit.stand_in.wait_pages(3), 10)
    stop.set()
    await asyncio.wait_for(loop, 10)
    assert len(await kit.entries()) == 3


async def test_run_forever_ends_on_a_refused_token(memory_feed_kit: FeedKit) -> None:
    kit = memory_feed_kit
    kit.stand_in.token = "another"
    with pytest.raises(FeedAuthError):
        await asyncio.wait_for(
            kit.runner().run_forever(timedelta(hours=1), stop=asyncio.Event()), 10
        )


async def test_a_too_old_order_is_journaled_as_skipped(memory_feed_kit: FeedKit) -> None:
    kit = memory_feed_kit
    old = datetime.fromtimestamp(NOW, UTC) - timedelta(days=181)
    kit.stand_in.put(synthetic_order(1, updated_at=T0, created_at=old, fulfilled_at=T0))
    source = kit.source()
    (listed,) = (await source.feed.read_page(kit.session, WINDOW, None)).orders
    order = listed if isinstance(listed, FeedOrder) else listed.read()
    tally = await kit.runner(source).backfill(WINDOW)
    assert tally.skipped == {"too_old": 1}
    result = await kit.intake.ingest(source.intake, order.identity, order.parsed)
    assert result.status is IngestStatus.DUPLICATE


async def test_an_unreadable_order_is_skipped_alone_and_polling_goes_on(
    feed_kit: FeedKit, caplog: pytest.LogCaptureFixture
) -> None:
    """Order 3's creation time is no date: it is journaled as skipped ``unreadable_order`` and
    logged by id; the orders around it are enqueued, the checkpoint moves past it, and the next
    poll reads on instead of failing at it again."""
    start = datetime.fromtimestamp(NOW, UTC) - timedelta(hours=2)
    orders = _orders(5, start=start)
    orders[2]["createdAt"] = "the day before yesterday"
    feed_kit.stand_in.put(*orders)

    with caplog.at_level(logging.WARNING, logger="kit.feeds.runner"):
        first = await feed_kit.runner().poll()

    assert sorted(await feed_kit.entries()) == sorted(_key(n) for n in (1, 2, 4, 5))
    assert first.skipped == {"unreadable_order": 1}
    order_id = str(5560000000000 + 3)
    skipped = await skipped_deliveries(feed_kit.outbox.storage)
    reason, detail = skipped[f"unreadable:{order_id}@{orders[2]['updatedAt']}"]
    assert reason == "unreadable_order"
    assert "created_at is not an ISO 8601 date-time" in detail
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert getattr(warning, "order_id", None) == order_id
    saved = await feed_kit.checkpoints.load(SOURCE, Run.POLL)
    assert saved is not None
    assert saved.high_water == (start + timedelta(minutes=5)).timestamp()

    feed_kit.stand_in.put(*_orders(6, start=start)[5:])
    second = await feed_kit.runner().poll()

    assert _key(6) in await feed_kit.entries()
    assert second.enqueued == 1
    assert second.skipped == {}  # order 3 again: the journal has it
    assert second.duplicates == 5
