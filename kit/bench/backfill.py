"""The ``backfill`` figure: orders per second of a Shopify backfill, against what the documented
cost bucket allows.

A stand-in serves the GraphQL ``orders`` connection on loopback with Shopify's leaky bucket
(:mod:`kit.testing.shopify_orders`; a standard plan: 2,000 points, 100 restored per second).
The kit backfills it into a SQLite outbox with the real feed loop.

The figure is the steady state, once the full bucket of the start (a burst any client gets
once) is used up and the reader has to wait for points: orders per second then, against the
rate at which the bucket could have paid for those orders (the points they took from
restores, at ``restore_rate`` points per second). The ratio is the share of the restored
points the reader used.
Target: at least 90 % of the allowed rate, with at most 1 % of the requests throttled; a kit
that stops at the first throttle does not finish, and one that ignores the bucket is
throttled.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from adapters.shopify.feed import ShopifyFeed
from kit.bench.report import Figure
from kit.configfile.model import Secret
from kit.feeds import FeedWindow
from kit.feeds.checkpoint import checkpoints_for
from kit.feeds.runner import FeedRunner, FeedSource, Tally
from kit.journal import Intake, IntakeSource
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.policy import PolicyConfig, Trigger
from kit.testing.shopify_orders import (
    STANDARD_MAXIMUM,
    STANDARD_RESTORE_RATE,
    ShopifyOrdersStandIn,
    ShopifyServer,
    synthetic_order,
)

TOKEN = "shpat_bench_token"  # noqa: S105 - the local stand-in's, not a secret
SHOP = "bench.myshopify.com"
CHANNEL = "chl-00000000-0000-4000-8000-00000000be0c"
TARGET_RATIO = 0.9
TARGET_THROTTLED = 0.01


def _source(url: str) -> FeedSource:
    config = ShopifyConfig(
        shop_domain=SHOP,
        admin_access_token=Secret(TOKEN),
        api_base_url=url,
        max_age=timedelta(days=3650),
    )
    trigger = Trigger(on="order_fulfilled", event_type="order_shipped", delay="3d")
    intake = IntakeSource(
        name="bench",
        adapter=ShopifyAdapter(source="bench", config=config),
        policy=PolicyConfig(channel_id=CHANNEL, triggers=(trigger,)),
        secrets=("unused",),
    )
    return FeedSource(name="bench", feed=ShopifyFeed(source="bench", config=config), intake=intake)


async def figure_backfill(
    workdir: Path,
    *,
    orders: int = 300,
    maximum: float = STANDARD_MAXIMUM,
    restore_rate: float = STANDARD_RESTORE_RATE,
) -> Figure:
    """Backfill ``orders`` fulfilled orders through the bucket; see the module docstring."""
    stand_in = ShopifyOrdersStandIn(token=TOKEN, maximum=maximum, restore_rate=restore_rate)
    start = datetime.now(UTC) - timedelta(days=30)
    stand_in.put(
        *(
            synthetic_order(n, updated_at=start + timedelta(minutes=n), fulfilled_at=start)
            for n in range(1, orders + 1)
        )
    )
    outbox = Outbox(SQLiteStorage(workdir / "backfill.db"))
    await outbox.open()
    try:
        async with ShopifyServer(stand_in) as server, aiohttp.ClientSession() as session:
            runner = FeedRunner(
                _source(server.url),
                intake=Intake(outbox),
                checkpoints=checkpoints_for(outbox),
                session=session,
            )
            # per page: time, orders, points spent, points in the bucket, seconds paced
            marks: list[tuple[float, int, float, float, float]] = []

            def mark(tally: Tally) -> None:
                level = stand_in.bucket.refill()
                marks.append((time.monotonic(), tally.orders, stand_in.spent, level, tally.waited))

            began = time.monotonic()
            tally = await runner.backfill(FeedWindow(since=start), progress=mark)
            elapsed = time.monotonic() - began
    finally:
        await outbox.aclose()
    # The steady state: from the last page read before the first wait for points to the end.
    # The points it spent then came from restores, less what the bucket held more at the start
    # of the window than at its end; the allowed rate spends exactly those at restore_rate.
    waiting = [i for i, m in enumerate(marks) if m[4] > 0]
    rate = allowed = None
    if waiting and waiting[0] > 0 and marks[-1][0] > marks[waiting[0] - 1][0]:
        t0, orders0, spent0, level0, _ = marks[waiting[0] - 1]
        t1, orders1, spent1, level1, _ = marks[-1]
        restored = (spent1 - spent0) - (level0 - level1)
        rate = (orders1 - orders0) / (t1 - t0)
        allowed = (orders1 - orders0) / (restored / restore_rate) if restored > 0 else None
    throttled = stand_in.throttled / stand_in.requests if stand_in.requests else 0.0
    ratio = rate / allowed if rate is not None and allowed else None
    return Figure(
        id="backfill",
        title="Shopify backfill through the cost bucket",
        unit="orders/s",
        kit=rate,
        baseline=allowed,
        baseline_label=f"what a bucket restoring {restore_rate:g} points/s allows",
        target=f">= {TARGET_RATIO:.0%} of the allowed rate, <= {TARGET_THROTTLED:.0%} throttled",
        met=None if ratio is None else ratio >= TARGET_RATIO and throttled <= TARGET_THROTTLED,
        skipped=None if ratio is not None else "the run never waited for points: use more orders",
        details={
            "orders": tally.orders,
            "enqueued": tally.enqueued,
            "pages": tally.pages,
            "requests": stand_in.requests,
            "throttled": stand_in.throttled,
            "throttled_share": round(throttled, 4),
            "ratio_target": TARGET_RATIO,
            "points_spent": round(stand_in.spent, 1),
            "seconds": round(elapsed, 3),
            "paced_seconds": round(tally.waited, 3),
            "steady_orders": None if not waiting else tally.orders - marks[waiting[0] - 1][1],
        },
    )


__all__ = ["figure_backfill"]
