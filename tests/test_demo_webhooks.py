"""The demo's Shopify deliveries go through the real intake over HTTP and become what the demo's
summary says: in the journal, in the outbox, and at the sandbox after the flush."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kit.client import ETrustedClient
from kit.demo_webhooks import HOLD_BACK, SHOP_DOMAIN, SOURCE, send_demo_webhooks, webhook_keys
from kit.flusher import Flusher, FlusherConfig
from kit.journal import journal_for
from kit.outbox import Outbox
from kit.outbox.types import State
from kit.sandbox import SEEDED_CHANNEL_IDS
from kit.testing import running_sandbox

CHANNEL = SEEDED_CHANNEL_IDS[0]


def key(order: int) -> str:
    return f"shopify:{SHOP_DOMAIN}:{order}:order_shipped"


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    async with Outbox.from_url(str(tmp_path / "outbox.db")) as opened:
        yield opened


async def test_each_delivery_is_answered_and_journaled_as_the_summary_says(outbox: Outbox) -> None:
    started = time.time()
    outcomes = await send_demo_webhooks(outbox, CHANNEL)

    assert [(o.label, o.status, o.answer) for o in outcomes] == [
        ("#1001 fulfilled", 200, "accepted"),
        ("#1002 fulfilled", 200, "accepted"),
        ("#1003 fulfilled", 200, "accepted"),
        ("#1001 again (a retry)", 200, "duplicate"),
        ("#1004 altered after signing", 401, "bad_signature"),
        ("#1005 fulfilled, a test order", 200, "accepted"),
        ("#1006 fulfilled", 200, "accepted"),
        ("#1006 cancelled in the hold-back", 200, "accepted"),
    ]
    assert [o.journal for o in outcomes] == [
        ("enqueue -> enqueued",),
        ("enqueue -> enqueued",),
        ("enqueue -> enqueued",),
        (),
        (),
        ("skipped -> recorded (test_order)",),
        ("enqueue -> enqueued",),
        ("cancel -> cancelled (cancelled)",),
    ]
    assert outcomes[3].webhook_id == outcomes[0].webhook_id  # the retry reuses the webhook id

    # The journal itself: the retry added nothing, the altered delivery left no trace.
    journal = journal_for(outbox)
    first = await journal.history(SOURCE, "1001")
    assert len(first.events) == 1
    assert [d.kind for d in first.decisions] == ["enqueue"]
    assert (await journal.history(SOURCE, "1004")).events == ()
    cancelled = await journal.history(SOURCE, "1006")
    assert [e.kind for e in cancelled.events] == ["order_fulfilled", "order_cancelled"]

    # The outbox: three invites held back, the cancelled order's withdrawn, none for the others.
    assert webhook_keys(outcomes) == [key(1001), key(1002), key(1003), key(1005), key(1006)]
    for order in (1001, 1002, 1003):
        entry = await outbox.get(key(order))
        assert entry.state is State.PENDING
        assert entry.due_at >= started - 1 + HOLD_BACK.total_seconds()  # whole seconds
    assert (await outbox.get(key(1006))).state is State.CANCELLED
    assert await outbox.storage.get(key(1004)) is None
    assert await outbox.storage.get(key(1005)) is None


async def test_the_held_back_invites_reach_the_sandbox_once_after_the_hold_back(
    outbox: Outbox,
) -> None:
    async with running_sandbox() as server:
        async with ETrustedClient(server.client_config()) as client:
            await client.create_event_type("order_shipped", active=True)
            await send_demo_webhooks(outbox, CHANNEL)
            due = {n: (await outbox.get(key(n))).due_at for n in (1001, 1002, 1003)}
            flusher = Flusher(outbox, client, FlusherConfig(poll_interval=0.1))
            stats = await asyncio.wait_for(flusher.run(until_drained=True), timeout=30)
        accepted = server.sandbox.accepted_events()

    assert stats.delivered == 3
    assert sorted(e.transaction_reference for e in accepted) == ["#1001", "#1002", "#1003"]
    for order in (1001, 1002, 1003):
        entry = await outbox.get(key(order))
        assert entry.state is State.DELIVERED
        [attempt] = await outbox.attempts(key(order))
        assert attempt.started_at >= due[order]  # not sent inside the hold-back
    assert (await outbox.get(key(1006))).state is State.CANCELLED
