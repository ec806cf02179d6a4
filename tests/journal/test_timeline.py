"""The journal's read side for ``explain``: an order's streams are found by transaction
reference or outbox key, and its whole timeline reads back in journal order, also once its
customer data was erased. On memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import pytest

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.journal.explain import explain, timeline_items
from kit.journal.records import Outcome, StreamTimeline
from kit.outbox.migrations import load_migrations

from .conftest import Kit, source
from .deliveries import KEY, ORDER_ID, SHOP, cancelled_order, fulfilled_order, payload, signed
from .test_ingest import deliver

REFERENCE = "#1042"  # the fixture order's name
OTHER = "5560001000777"


async def timeline(kit: Kit, stream: str = ORDER_ID) -> StreamTimeline:
    return await kit.intake.journal.timeline("my-shop", stream)


async def test_a_stream_is_found_by_reference_and_by_key(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    other = fulfilled_order(OTHER, email="max@example.org")
    other["name"] = "#1043"
    await deliver(kit, other, "orders/fulfilled", "w-2")
    journal = kit.intake.journal

    assert await journal.find_streams(REFERENCE) == [("my-shop", ORDER_ID)]
    assert await journal.find_streams(KEY) == [("my-shop", ORDER_ID)]
    assert await journal.find_streams("#1043") == [("my-shop", OTHER)]
    assert await journal.find_streams(REFERENCE, source="my-shop") == [("my-shop", ORDER_ID)]
    assert await journal.find_streams(REFERENCE, source="elsewhere") == []
    assert await journal.find_streams(KEY, source="elsewhere") == []
    assert await journal.find_streams("#9999") == []


async def test_a_skipped_trigger_is_found_by_the_key_it_would_have_had(kit: Kit) -> None:
    """A test order is never enqueued, yet its skip names the key: explain KEY finds it."""
    order = fulfilled_order()
    order["test"] = True
    await deliver(kit, order, "orders/fulfilled", "w-1")

    assert await kit.intake.journal.find_streams(KEY) == [("my-shop", ORDER_ID)]
    found = await timeline(kit)
    assert [(d.kind, d.key, d.outcome) for d in found.decisions] == [
        ("skipped", KEY, Outcome.RECORDED)
    ]


async def test_one_reference_in_two_sources_names_both_streams(kit: Kit) -> None:
    """Two shops number their orders alike; ``source`` picks one."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    second = attrs.evolve(
        source(),
        name="outlet",
        adapter=ShopifyAdapter(source="outlet", config=ShopifyConfig(shop_domain=SHOP)),
    )
    await kit.intake.ingest_raw(
        second, *signed(fulfilled_order(OTHER), "orders/fulfilled", webhook_id="w-2")
    )

    found = await kit.intake.journal.find_streams(REFERENCE)
    assert found == [("my-shop", ORDER_ID), ("outlet", OTHER)]
    assert await kit.intake.journal.find_streams(REFERENCE, source="outlet") == [("outlet", OTHER)]


async def test_the_timeline_holds_deliveries_events_and_decisions_in_journal_order(
    kit: Kit,
) -> None:
    received = kit.clock.now
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", event_id="e-1")
    kit.clock.now += 3600
    await deliver(kit, payload("fulfillment_create"), "fulfillments/create", "w-2")
    kit.clock.now += 3600
    await deliver(kit, cancelled_order(), "orders/cancelled", "w-3")

    found = await timeline(kit)

    assert (found.source, found.stream) == ("my-shop", ORDER_ID)
    assert [(d.delivery_id, d.event_id, d.topic) for d in found.deliveries] == [
        ("w-1", "e-1", "orders/fulfilled"),
        ("w-2", "event-w-2", "fulfillments/create"),
        ("w-3", "event-w-3", "orders/cancelled"),
    ]
    assert [d.received_at for d in found.deliveries] == [received, received + 3600, received + 7200]
    assert [e.kind for e in found.events] == [
        "order_fulfilled",
        "order_fulfilled",
        "order_cancelled",
    ]
    assert [e.delivery for e in found.events] == [d.seq for d in found.deliveries]
    # the fulfilment webhook carries no order, so no reference of its own
    assert [e.reference for e in found.events] == [REFERENCE, None, REFERENCE]
    assert found.references == (REFERENCE,)
    assert [(d.kind, d.outcome.value) for d in found.decisions] == [
        ("enqueue", "enqueued"),
        ("recorded", "recorded"),
        ("cancel", "cancelled"),
    ]
    seqs = [e.seq for e in found.events]
    assert seqs == sorted(seqs)
    assert [d.event_seq for d in found.decisions] == seqs
    assert [d.decided_at for d in found.decisions] == [received, received + 3600, received + 7200]


async def test_an_unknown_stream_has_an_empty_timeline(kit: Kit) -> None:
    assert await timeline(kit, "nope") == StreamTimeline(source="my-shop", stream="nope")


async def test_an_erased_order_is_still_found_and_keeps_its_skeleton(kit: Kit) -> None:
    """forget_customer removes the customer data; the reference (the merchant's order number,
    as the outbox keeps it), the times, kinds, keys and outcomes stay for explain."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    await deliver(kit, cancelled_order(), "orders/cancelled", "w-2")
    before = await timeline(kit)

    await kit.outbox.forget_customer("erika.muster@example.org")

    assert await kit.intake.journal.find_streams(REFERENCE) == [("my-shop", ORDER_ID)]
    after = await timeline(kit)
    assert all(e.event is None for e in after.events)
    assert [d.decision for d in after.decisions if d.kind == "enqueue"] == [None]
    assert after.deliveries == before.deliveries
    skeleton = [(e.seq, e.kind, e.occurred_at, e.delivery, e.reference) for e in before.events]
    assert [(e.seq, e.kind, e.occurred_at, e.delivery, e.reference) for e in after.events] == (
        skeleton
    )
    assert [(d.kind, d.key, d.outcome) for d in after.decisions] == [
        (d.kind, d.key, d.outcome) for d in before.decisions
    ]


async def test_migration_0004_fills_in_the_references_of_existing_events(
    sqlite_kit: Kit, tmp_path: Path
) -> None:
    """A journal written before version 4 has no reference column: the migration reads each
    event's reference from its body, so its orders can be explained too."""
    await deliver(sqlite_kit, fulfilled_order(), "orders/fulfilled", "w-1")
    await sqlite_kit.aclose()
    (backfill,) = [s for s in load_migrations("sqlite")[3].sql.split(";") if "UPDATE" in s.upper()]
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        db.execute("UPDATE etk_journal_events SET reference = NULL")
        db.execute(backfill)
        rows = db.execute("SELECT reference FROM etk_journal_events").fetchall()
    db.close()
    assert rows == [(REFERENCE,)]


@pytest.mark.postgres
async def test_migration_0004_fills_in_the_references_on_postgresql(
    postgres_kit: Kit, pg_dsn: str, pg_schema: str
) -> None:
    import asyncpg

    await deliver(postgres_kit, fulfilled_order(), "orders/fulfilled", "w-1")
    (backfill,) = [
        s for s in load_migrations("postgres")[3].sql.split(";") if "UPDATE" in s.upper()
    ]
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'SET search_path TO "{pg_schema}"')
        await conn.execute("UPDATE journal_events SET reference = NULL")
        await conn.execute(backfill)
        rows = await conn.fetch("SELECT reference FROM journal_events")
    finally:
        await conn.close()
    assert [r[0] for r in rows] == [REFERENCE]


async def test_explain_pairs_the_timeline_with_the_entries_it_decided_about(kit: Kit) -> None:
    """The story explain prints, read the same way from every backend."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    await deliver(kit, cancelled_order(), "orders/cancelled", "w-2")

    (story,) = await explain(kit.outbox, kit.intake.journal, REFERENCE)

    assert story.timeline == await timeline(kit)
    assert [(e.entry.key, e.entry.state.value, e.attempts) for e in story.entries] == [
        (KEY, "cancelled", ())
    ]
    items = [type(i).__name__ for i in timeline_items(story.timeline)]
    assert items == ["DeliveryRow", "EventRow", "DecisionRow"] * 2
    assert await explain(kit.outbox, kit.intake.journal, "#9999") == []
