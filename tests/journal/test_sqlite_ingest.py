"""On SQLite an ingest is one function on the storage's worker thread: one transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from kit.journal import Intake
from kit.outbox import Outbox
from kit.outbox import _sqlite_group as group_module
from kit.outbox.sqlite import SQLiteStorage

from .conftest import Clock, source
from .deliveries import EMAIL, fulfilled_order, payload, signed


async def test_an_ingest_is_one_transaction_on_the_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery, event, decision and outbox entry: one BEGIN IMMEDIATE ... COMMIT."""
    statements: list[str] = []
    groups: list[int] = []
    real_run_group = group_module.run_group

    def watched(db: sqlite3.Connection, ops: list[Any]) -> None:
        groups.append(len(ops))
        db.set_trace_callback(statements.append)
        try:
            real_run_group(db, ops)
        finally:
            db.set_trace_callback(None)

    clock = Clock()
    async with Outbox(SQLiteStorage(tmp_path / "outbox.db"), clock=clock) as outbox:
        intake = Intake(outbox, clock=clock)
        monkeypatch.setattr(group_module, "run_group", watched)
        result = await intake.ingest_raw(
            source(), *signed(fulfilled_order(), "orders/fulfilled", webhook_id="w-1")
        )

    assert result.enqueued
    assert groups == [1]
    words = [s.split() for s in statements]
    assert [w[0] for w in words if w[0] in ("BEGIN", "COMMIT", "ROLLBACK")] == ["BEGIN", "COMMIT"]
    assert words[0] == ["BEGIN", "IMMEDIATE"]
    inserted = {w[2] for w in words if w[:2] == ["INSERT", "INTO"]}
    assert inserted == {
        "etk_deliveries",
        "etk_journal_events",
        "etk_journal_decisions",
        "etk_entries",
    }


async def test_a_redact_request_leaves_the_address_nowhere_in_the_files(tmp_path: Path) -> None:
    """Not in the database file, not in an old WAL frame: the erasure is checkpointed."""
    clock = Clock()
    path = tmp_path / "outbox.db"
    async with Outbox(SQLiteStorage(path), clock=clock) as outbox:
        intake = Intake(outbox, clock=clock)
        order = signed(fulfilled_order(), "orders/fulfilled", webhook_id="w-1")
        await intake.ingest_raw(source(), *order)
        redact = signed(payload("customers_redact"), "customers/redact", webhook_id="w-2")
        await intake.ingest_raw(source(), *redact)

        files = [p for p in tmp_path.iterdir() if p.name.startswith("outbox.db")]
        assert files
        for file in files:
            assert EMAIL.encode() not in file.read_bytes(), file.name
