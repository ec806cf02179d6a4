"""Two ``serve`` replicas on one PostgreSQL schema, as behind a load balancer: the same order's
deliveries reaching both at the same moment make one decision, a cancellation on one racing a
fulfilment on the other ends cancelled, and the two flushers deliver each entry once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from journal.deliveries import payload, shipped_at, signed

from kit.outbox import Outbox, State
from kit.sandbox import SandboxServer

from .serve_helpers import (
    SHOPIFY_SOURCE,
    ServeProcess,
    fulfilment,
    histories,
    key_of,
    order,
    post,
    serve_env,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.postgres

# A hold-back of three days: the fixture's 2025 fulfilments are due at once, an order shipped
# now waits, so a cancellation still finds its invite in the outbox.
SOURCES = SHOPIFY_SOURCE + 'delay = "3d"\n'
SHIPPED = [str(8800000 + n) for n in range(24)]
CANCELLED = [str(8900000 + n) for n in range(12)]


def _shipment(order_id: str) -> tuple[dict[str, str], bytes]:
    """``fulfillments/create`` for the order: the same parcel ``orders/fulfilled`` reports."""
    body = payload("fulfillment_create")
    body["order_id"] = int(order_id)
    return signed(body, "fulfillments/create", webhook_id=f"f-{order_id}")


def _shipped_now(order_id: str, now: datetime) -> dict[str, Any]:
    return shipped_at(order(order_id), now)


def _cancellation(order_id: str, now: datetime) -> tuple[dict[str, str], bytes]:
    """``orders/cancelled`` a minute after the order shipped: the newer snapshot."""
    body = _shipped_now(order_id, now)
    later = (now + timedelta(minutes=1)).isoformat()
    body["cancelled_at"] = body["updated_at"] = later
    body["cancel_reason"] = "customer"
    return signed(body, "orders/cancelled", webhook_id=f"c-{order_id}")


async def test_two_replicas_on_postgres_decide_each_order_once(
    tmp_path: Path, sandbox: SandboxServer, pg_dsn: str, pg_schema: str
) -> None:
    """Each order's parcel reported by three deliveries (``orders/fulfilled`` from two
    subscriptions and ``fulfillments/create``), each posted to both replicas at once: per
    delivery one ``accepted`` and one ``duplicate``; per order each distinct delivery journaled
    once, one enqueue (every other decision a recorded no-op) and one outbox entry, delivered
    to eTrusted exactly once by whichever replica's flusher claimed it. A cancellation on one
    replica racing the fulfilment on the other leaves no invite, whichever came first."""
    db = f"{pg_dsn}?schema={pg_schema}"
    config = write_config(tmp_path / "kit.toml", db=db, sandbox=sandbox, sources=SOURCES)
    replicas = [
        await ServeProcess.start(config, env=serve_env(), stderr_path=tmp_path / f"{i}.log")
        for i in (0, 1)
    ]
    a, b = (served.url for served in replicas)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        async with aiohttp.ClientSession() as session:
            for oid in SHIPPED:
                # orders/fulfilled from two subscriptions and fulfillments/create: three
                # deliveries of one parcel, each to both replicas at once.
                deliveries = [fulfilment(oid), fulfilment(oid, f"v-{oid}"), _shipment(oid)]
                answers = await asyncio.gather(
                    *(post(session, url, d) for d in deliveries for url in (a, b))
                )
                assert {status for status, _ in answers} == {200}, answers
                statuses = Counter((body["delivery_id"], body["status"]) for _, body in answers)
                assert statuses == {
                    (f"{prefix}-{oid}", status): 1
                    for prefix in "wvf"
                    for status in ("accepted", "duplicate")
                }, (oid, answers)
            for oid in CANCELLED:
                shipped = signed(_shipped_now(oid, now), "orders/fulfilled", webhook_id=f"w-{oid}")
                raced = await asyncio.gather(
                    post(session, a, shipped), post(session, b, _cancellation(oid, now))
                )
                assert [status for status, _ in raced] == [200, 200], raced

        async def all_delivered() -> bool:
            async with Outbox.from_url(db) as outbox:
                return (await outbox.stats()).counts[State.DELIVERED] >= len(SHIPPED)

        await wait_until(all_delivered, timeout=60, every=0.1)
        for served in replicas:
            served.send_signal(signal.SIGTERM)
        for served in replicas:
            assert await served.wait() == 0, served.stderr
    finally:
        for served in replicas:
            await served.kill()

    async with Outbox.from_url(db) as outbox:
        rows = await outbox.entries(limit=1000)
    entries = {e.key: e.state for e in rows}
    assert {e.key: e.sends for e in rows if e.state is State.DELIVERED} == {
        key_of(oid): 1 for oid in SHIPPED
    }  # one POST each: the two flushers never both claimed an entry
    assert {key_of(oid): State.DELIVERED for oid in SHIPPED}.items() <= entries.items()
    assert set(entries) - {key_of(oid) for oid in SHIPPED} <= {key_of(o) for o in CANCELLED}
    for oid in CANCELLED:  # withdrawn if it was enqueued first, never enqueued otherwise
        assert entries.get(key_of(oid), State.CANCELLED) is State.CANCELLED, oid

    sent = Counter(e.transaction_reference for e in sandbox.sandbox.accepted_events())
    assert sent == {f"#{oid}": 1 for oid in SHIPPED}

    for oid, history in (await histories(db, SHIPPED)).items():
        assert sorted(row.event.delivery_id for row in history.events if row.event) == [
            f"f-{oid}",
            f"v-{oid}",
            f"w-{oid}",
        ], oid
        # One decision per event, one enqueue: the others find the key enqueued and record
        # the parcel again, or (fulfillments/create journaled first, without the order's
        # facts) are skipped until an orders/fulfilled enqueues.
        assert sorted(d.event_seq for d in history.decisions) == [e.seq for e in history.events]
        decided = Counter((d.kind, d.outcome.value) for d in history.decisions)
        assert decided[("enqueue", "enqueued")] == 1, (oid, history.decisions)
        assert set(decided) - {("enqueue", "enqueued")} <= {
            ("recorded", "recorded"),
            ("skipped", "recorded"),
        }, (oid, history.decisions)
    for oid, history in (await histories(db, CANCELLED)).items():
        assert len(history.events) == 2, oid
        assert history.waiting == frozenset(), oid
        enqueued = [d for d in history.decisions if d.outcome == "enqueued"]
        cancelled = [d for d in history.decisions if d.outcome == "cancelled"]
        assert len(enqueued) == len(cancelled) <= 1, (oid, history.decisions)
