"""Moving an outbox to another backend takes its journal and feed checkpoints along: the
platform's retries, cancellations, ``explain`` and feeds carry on where the outbox went."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kit.errors import OutboxError, OutboxMovedError
from kit.feeds.checkpoint import Checkpoint, Run, checkpoints_in
from kit.journal.dump import Row, Table, rows_of
from kit.journal.explain import explain
from kit.journal.records import IngestStatus
from kit.outbox import _sqlite_sql as sql
from kit.outbox import email_hash
from kit.outbox.migrations import load_migrations
from kit.outbox.move import migrate_outbox
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import State

from .conftest import Kit, decided, deliver, history, outcomes
from .deliveries import (
    KEY,
    NOW,
    SHIPPED_AT,
    cancelled_order,
    fulfilled_order,
    payload,
    updated,
)

OTHER_ORDER = "5560001000002"
OTHER_EMAIL = "max.muster@example.org"

PAIRS = [
    pytest.param(("sqlite", "postgres"), id="sqlite-to-postgres", marks=pytest.mark.postgres),
    pytest.param(("postgres", "sqlite"), id="postgres-to-sqlite", marks=pytest.mark.postgres),
    pytest.param(("memory", "sqlite"), id="memory-to-sqlite"),
]


async def journal_rows(storage: Storage) -> dict[Table, list[Row]]:
    rows = rows_of(storage)
    assert rows is not None
    return {t: await rows.page(t, after=0, upto=None, limit=10_000) for t in Table}


@pytest.fixture(params=PAIRS)
def kits(request: pytest.FixtureRequest) -> tuple[Kit, Kit]:
    """The source and the target of a move, on two backends."""
    names: tuple[str, str] = request.param
    return (
        request.getfixturevalue(f"{names[0]}_kit"),
        request.getfixturevalue(f"{names[1]}_kit"),
    )


async def test_the_journal_and_checkpoints_move_with_the_outbox(kits: tuple[Kit, Kit]) -> None:
    """After the move, a redelivered webhook is a duplicate, a cancellation inside the
    hold-back withdraws the waiting invite, ``explain`` tells the order's earlier story and a
    poll finds its checkpoint; every journal row arrives as stored (ids, order, and an erased
    order's skeleton), and a second run copies nothing."""
    source, target = kits

    first = await deliver(source, fulfilled_order(), "orders/fulfilled", "w-1")
    assert first.enqueued == (KEY,)
    other = fulfilled_order(OTHER_ORDER, email=OTHER_EMAIL)
    assert (await deliver(source, other, "orders/fulfilled", "w-other")).enqueued
    # The other customer's data is erased: their journal rows become skeletons.
    await source.storage.forget_customer(email_hash(OTHER_EMAIL), now=NOW)
    poll = Checkpoint(
        source="my-shop", run=Run.POLL, since=NOW - 86_400.5, high_water=NOW - 60.25,
        pages=3, orders=7, saved_at=NOW - 30.125,
    )  # fmt: skip
    await checkpoints_in(source.storage).save(poll)
    stored = await journal_rows(source.storage)
    assert any(row[-3:-1] == (None, None) for row in stored[Table.EVENTS])  # a skeleton

    report = await migrate_outbox(source.storage, target.storage, batch=2, now=NOW)
    assert report.copied == 2
    assert report.journal_copied == sum(len(rows) for rows in stored.values())
    assert report.checkpoints_copied == 1
    assert await journal_rows(target.storage) == stored
    again = await migrate_outbox(source.storage, target.storage, batch=2, now=NOW)
    assert (again.journal_copied, again.checkpoints_copied) == (0, 0)

    retried = await deliver(target, fulfilled_order(), "orders/fulfilled", "w-1")
    assert retried.status is IngestStatus.DUPLICATE

    (story,) = await explain(target.outbox, target.intake.journal, KEY)
    assert story.timeline is not None
    assert [d.delivery_id for d in story.timeline.deliveries] == ["w-1"]
    assert [(d.kind, d.outcome.value) for d in story.timeline.decisions] == [
        ("enqueue", "enqueued")
    ]

    cancelled = await deliver(target, cancelled_order(), "orders/cancelled", "w-2")
    assert decided(cancelled) == [("cancel", "cancelled")]
    entry = await target.storage.get(KEY)
    assert entry is not None
    assert entry.state is State.CANCELLED
    assert outcomes(await history(target)) == [("enqueue", "enqueued"), ("cancel", "cancelled")]

    assert await checkpoints_in(target.storage).load("my-shop", Run.POLL) == poll
    # Rows the target journaled since do not stop a repeated move.
    assert (await migrate_outbox(source.storage, target.storage, now=NOW)).journal_copied == 0


async def test_the_moved_outbox_takes_in_no_delivery_and_changes_no_entry(
    kits: tuple[Kit, Kit],
) -> None:
    """An intake still writing to the old database (an application's own, or a serve whose
    flusher has not stopped yet) is refused every delivery, so the platform retries it against
    the new outbox: a cancellation (its entry there would still be sent), a partial refund
    (its amend likewise), an orders/paid that enqueues nothing (the new journal's history
    would miss it) and a redelivery. Nothing of them is stored in the old database. Where the
    outbox went, a redelivery is still a duplicate."""
    source, target = kits
    assert (await deliver(source, fulfilled_order(), "orders/fulfilled", "w-1")).enqueued
    await migrate_outbox(source.storage, target.storage, now=NOW)
    rows = await journal_rows(source.storage)
    entries = await source.storage.entries()
    socks_back = payload("refund_create")
    socks_back["refund_line_items"][0]["quantity"] = 2  # amends the waiting invite

    for body, topic in (
        (cancelled_order(), "orders/cancelled"),
        (socks_back, "refunds/create"),
        (updated(fulfilled_order(), SHIPPED_AT), "orders/paid"),
        (fulfilled_order(), "orders/fulfilled"),
    ):
        with pytest.raises(OutboxMovedError) as refused:
            await deliver(source, body, topic, "w-1" if topic == "orders/fulfilled" else topic)
        assert refused.value.moved_to == target.storage.url
    assert await journal_rows(source.storage) == rows
    assert await source.storage.entries() == entries

    retried = await deliver(target, fulfilled_order(), "orders/fulfilled", "w-1")
    assert retried.status is IngestStatus.DUPLICATE
    assert decided(await deliver(target, cancelled_order(), "orders/cancelled", "w-2")) == [
        ("cancel", "cancelled")
    ]


async def test_a_repeated_move_skips_what_the_target_journaled_since_in_any_table(
    kits: tuple[Kit, Kit],
) -> None:
    """A move run again after the target took deliveries of its own copies nothing and is not
    refused, also for a table the source has no rows in (its intake only ever skipped): there
    is nothing of the source's in that table to merge, so nothing to reorder."""
    source, target = kits
    skipped = await deliver(
        source, payload("customers_data_request"), "customers/data_request", "w-0"
    )
    assert skipped.status is IngestStatus.SKIPPED
    stored = await journal_rows(source.storage)
    assert (len(stored[Table.DELIVERIES]), stored[Table.EVENTS]) == (1, [])
    await migrate_outbox(source.storage, target.storage, now=NOW)

    assert (await deliver(target, fulfilled_order(), "orders/fulfilled", "w-1")).enqueued
    since = await journal_rows(target.storage)
    assert since[Table.EVENTS]
    assert since[Table.DECISIONS]

    again = await migrate_outbox(source.storage, target.storage, now=NOW)
    assert (again.copied, again.journal_copied) == (0, 0)
    assert await journal_rows(target.storage) == since


async def test_a_target_with_a_journal_of_its_own_is_refused(
    sqlite_kit: Kit, memory_kit: Kit
) -> None:
    """Two journals cannot be merged without reordering one: the move names the conflict."""
    await deliver(memory_kit, fulfilled_order(), "orders/fulfilled", "w-1")
    await deliver(sqlite_kit, fulfilled_order(OTHER_ORDER), "orders/fulfilled", "w-9")
    with pytest.raises(OutboxError, match="journal already holds other rows"):
        await migrate_outbox(memory_kit.storage, sqlite_kit.storage, now=NOW)
    assert await memory_kit.storage.moved_to() is None  # refused before the source was marked
    assert await sqlite_kit.storage.get(KEY) is None  # and before any entry was copied


async def test_a_source_from_before_the_journal_moves_without_one(tmp_path: Path) -> None:
    """A source the move does not upgrade (schema version 2: no journal, no feeds) moves its
    entries, and no journal row or checkpoint is looked for."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute(sql.SCHEMA_TABLE)
        for migration in load_migrations("sqlite")[:2]:
            for statement in sql.statements(migration.sql):
                db.execute(statement)
            db.execute(sql.RECORD_VERSION, (migration.version, migration.name, 0.0))
        db.execute("COMMIT")
    finally:
        db.close()
    source = SQLiteStorage(path)
    await source.open(migrate=False)
    try:
        async with SQLiteStorage(tmp_path / "new.db") as target:
            report = await migrate_outbox(source, target, now=NOW)
            assert (report.copied, report.journal_copied, report.checkpoints_copied) == (0, 0, 0)
            assert await source.moved_to() == target.url
    finally:
        await source.aclose()


async def test_a_moved_journal_links_refunds_to_the_invoices_it_recorded(
    kits: tuple[Kit, Kit],
) -> None:
    """The alias index is derived from the moved events, so a refund that names only a payment
    id still finds, in the new outbox, the invoice stream journaled in the old one."""
    from .test_stream_aliases import refund, renewal, take

    source, target = kits
    await take(source, renewal("in_1", ("ch_1", "pi_1")))
    await migrate_outbox(source.storage, target.storage, batch=2, now=NOW)

    await take(target, refund(("ch_x", "pi_1"), "evt_re"))

    linked = await target.intake.journal.history("my-shop", "in_1")
    assert [row.kind for row in linked.events] == ["subscription_renewed", "order_refunded"]
