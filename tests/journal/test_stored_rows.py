"""What an ingest stores stays what it was, byte for byte: journal rows, decision bodies,
outbox payloads and their hashes. Other versions read these rows, and a payload's hash must
keep matching it, so a faster encoding must not change a single byte; ``stored_rows.json``
holds the rows of a fixed series of deliveries as the kit wrote them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from kit.journal import Intake
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage

from .conftest import Clock, source
from .deliveries import (
    HAT_LINE,
    cancelled_order,
    delivered_fulfilment,
    fulfilled_order,
    payload,
    refund,
    signed,
)

PINNED = Path(__file__).with_name("stored_rows.json")
TABLES = ("etk_deliveries", "etk_journal_events", "etk_journal_decisions", "etk_entries")


async def stored_rows(directory: Path) -> dict[str, list[list[Any]]]:
    """Every row the series of deliveries leaves in a new SQLite outbox, by table."""
    clock = Clock()
    path = directory / "outbox.db"
    deliveries = [
        (payload("order_fulfilled"), "orders/create"),
        (fulfilled_order(), "orders/fulfilled"),  # an invite
        (fulfilled_order(), "orders/fulfilled"),  # the same order again: nothing new
        (refund({HAT_LINE: 1}), "refunds/create"),  # fewer products: amended
        (delivered_fulfilment(), "fulfillments/update"),
        (fulfilled_order("5560001000002", email="not an e-mail"), "orders/fulfilled"),  # skipped
        (cancelled_order(), "orders/cancelled"),  # withdrawn
        (fulfilled_order("5560001000003", email="Kim.Other@Example.org"), "orders/fulfilled"),
    ]
    async with Outbox(SQLiteStorage(path), clock=clock) as outbox:
        intake = Intake(outbox, clock=clock)
        for n, (body, topic) in enumerate(deliveries, start=1):
            clock.now += 60
            await intake.ingest_raw(source(), *signed(body, topic, webhook_id=f"w-{n}"))
        # A delivery seen before stores nothing.
        await intake.ingest_raw(
            source(), *signed(fulfilled_order(), "orders/fulfilled", webhook_id="w-2")
        )
    with sqlite3.connect(path) as db:
        return {
            table: [list(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY 1")]
            for table in TABLES
        }


async def test_an_ingest_stores_the_same_bytes_as_ever(tmp_path: Path) -> None:
    """Every column of every row equals the pinned one: bodies and payloads as text."""
    pinned = json.loads(PINNED.read_text(encoding="utf-8"))
    assert await stored_rows(tmp_path) == pinned
