"""``python -m kit.bench.senders``: Shopify's stand-in for the intake figure, in its own process.

It builds signed ``orders/fulfilled`` deliveries (a new order each) before the clock starts,
says it is ready, waits for "go", posts them with N concurrent senders (one connection each)
and reports the rate, the answer times and every status it got. In its own process, the
senders' CPU is not the server's: the intake and its baseline are measured alike.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from adapters.shopify import samples
from kit.bench.measure import per_second
from kit.bench.report import percentile

FIRST_ORDER_ID = 6_100_000_000_000

Delivery = tuple[dict[str, str], bytes]


def deliveries(
    count: int, *, secret: str, shop_domain: str, shipped_at: datetime
) -> list[Delivery]:
    """``count`` signed deliveries, each a different order, webhook and event."""
    out = []
    for i in range(count):
        order = samples.fulfilled_order(FIRST_ORDER_ID + i, shipped_at=shipped_at)
        order["email"] = order["contact_email"] = order["customer"]["email"] = (
            f"buyer.{i}@example.org"
        )
        out.append(
            samples.signed_delivery(
                order,
                "orders/fulfilled",
                secret=secret,
                shop_domain=shop_domain,
                webhook_id=f"bench-webhook-{i}",
                event_id=f"bench-event-{i}",
                triggered_at=samples.shopify_time(shipped_at),
            )
        )
    return out


async def send(url: str, items: Sequence[Delivery], *, senders: int) -> dict[str, Any]:
    """Post every delivery, ``senders`` at a time; each answer's time is measured from just
    before the request to its body read."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    position = 0

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal position
        while position < len(items):
            headers, raw = items[position]
            position += 1
            started = time.perf_counter()
            async with session.post(url, data=raw, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=senders)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(senders)))
        elapsed = time.perf_counter() - started
    ms = [1000 * s for s in latencies]
    return {
        "count": len(items),
        "elapsed": elapsed,
        "rate": per_second(len(items), elapsed),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def _child(spec: Mapping[str, Any]) -> dict[str, Any]:
    items = deliveries(
        spec["count"],
        secret=spec["secret"],
        shop_domain=spec["shop_domain"],
        shipped_at=datetime.now(UTC),
    )
    print(json.dumps({"ready": True}), flush=True)
    go = await asyncio.to_thread(sys.stdin.readline)
    if go.strip() != "go":
        return {"error": f"expected go, got {go!r}"}
    return await send(spec["url"], items, senders=spec["senders"])


def _child_main() -> None:
    spec = json.loads(sys.stdin.readline())
    print(json.dumps(asyncio.run(_child(spec))), flush=True)


if __name__ == "__main__":
    _child_main()
