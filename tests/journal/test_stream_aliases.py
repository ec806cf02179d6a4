"""An event that names its stream only by another id finds it, on every backend: the journal
moves it onto the newest stream of its source whose events listed that id as an alias, in the
ingest's own transaction, and leaves it on its own stream when none did."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kit.adapters import DeliveryIdentity
from kit.domain import OrderFacts, OrderRefunded, Refund, SubscriptionRenewed
from kit.journal._sqlite_tx import STREAM_BY_ALIAS
from kit.journal.ingest import IntakeSource
from kit.outbox.migrations import load_migrations
from kit.policy import PolicyConfig, Trigger

from .conftest import Kit, decided, source
from .deliveries import CHANNEL

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ENVELOPE = {"source": "my-shop", "platform": "stripe", "account": "acct_1"}


def renewal(stream: str, aliases: tuple[str, ...], source: str = "my-shop") -> SubscriptionRenewed:
    return SubscriptionRenewed(
        **(ENVELOPE | {"source": source}),
        stream=stream,
        occurred_at=T0,
        delivery_id=f"evt_{source}_{stream}",
        order=OrderFacts(reference=stream.upper(), placed_at=T0, email="a@example.org"),
        renewal=1,
        subscription=f"sub_{stream}",
        aliases=aliases,
    )


def refund(link: tuple[str, ...], delivery_id: str) -> OrderRefunded:
    return OrderRefunded(
        **ENVELOPE,
        stream=link[0],
        occurred_at=T0 + timedelta(hours=1),
        delivery_id=delivery_id,
        refund=Refund(refund_id=delivery_id),
        full=True,
        link=link,
    )


def billing(name: str = "my-shop") -> IntakeSource:
    trigger = Trigger(on="subscription_renewed", event_type="subscription_renewed", delay="2d")
    return IntakeSource(
        name=name,
        adapter=source().adapter,
        policy=PolicyConfig(channel_id=CHANNEL, triggers=(trigger,)),
    )


async def take(kit: Kit, event: SubscriptionRenewed | OrderRefunded, name: str = "my-shop") -> None:
    await kit.intake.ingest(billing(name), DeliveryIdentity(event.delivery_id), [event])


async def test_an_event_linked_by_an_alias_lands_on_the_stream_that_recorded_it(kit: Kit) -> None:
    """The refund names ``pi_1``, which in_1 recorded: it is journaled on in_1 and withdraws
    in_1's waiting invite; in_2 and another source's stream with the same alias are untouched."""
    await take(kit, renewal("in_1", ("ch_1", "pi_1")))
    await take(kit, renewal("in_2", ("ch_2", "pi_2")))
    await take(kit, renewal("in_9", ("pi_1",), source="other"), name="other")

    result = await kit.intake.ingest(
        billing(), DeliveryIdentity("evt_re"), [refund(("ch_unknown", "pi_1"), "evt_re")]
    )

    assert decided(result) == [("cancel", "cancelled")]
    journal = kit.intake.journal
    linked = await journal.history("my-shop", "in_1")
    assert [row.kind for row in linked.events] == ["subscription_renewed", "order_refunded"]
    assert [row.kind for row in (await journal.history("my-shop", "in_2")).events] == [
        "subscription_renewed"
    ]
    assert [row.kind for row in (await journal.history("other", "in_9")).events] == [
        "subscription_renewed"
    ]
    assert (await journal.history("my-shop", "ch_unknown")).events == ()


async def test_an_event_whose_alias_no_stream_recorded_stays_on_its_own_stream(
    kit: Kit,
) -> None:
    """Nothing listed ``pi_x``: the event is journaled where the adapter put it, and the
    waiting invite of another stream stays waiting."""
    await take(kit, renewal("in_1", ("ch_1", "pi_1")))

    result = await kit.intake.ingest(
        billing(), DeliveryIdentity("evt_re"), [refund(("ch_x", "pi_x"), "evt_re")]
    )

    assert [kind for kind, _ in decided(result)] == ["recorded"]
    journal = kit.intake.journal
    assert [row.kind for row in (await journal.history("my-shop", "ch_x")).events] == [
        "order_refunded"
    ]
    assert (await journal.history("my-shop", "in_1")).waiting != frozenset()


async def test_an_erased_stream_is_not_found_by_its_aliases(kit: Kit) -> None:
    """Once the customer behind in_1 was forgotten, a refund naming ``pi_1`` is no longer
    linked to in_1: the erased events' ids lead nowhere, as their bodies are gone."""
    await take(kit, renewal("in_1", ("ch_1", "pi_1")))
    await kit.outbox.forget_customer("a@example.org")

    await kit.intake.ingest(
        billing(), DeliveryIdentity("evt_re"), [refund(("ch_x", "pi_1"), "evt_re")]
    )

    journal = kit.intake.journal
    assert [row.kind for row in (await journal.history("my-shop", "ch_x")).events] == [
        "order_refunded"
    ]
    assert [row.kind for row in (await journal.history("my-shop", "in_1")).events] == [
        "subscription_renewed"
    ]


async def test_the_lookup_reads_the_alias_index_not_every_event_body(
    sqlite_kit: Kit, tmp_path: Path
) -> None:
    """A refund's lookup costs the same with a million journaled events as with ten: SQLite's
    plan searches the alias index and reads events by id only, never scanning the journal."""
    await take(sqlite_kit, renewal("in_1", ("ch_1", "pi_1")))
    await sqlite_kit.aclose()
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        plan = db.execute(
            "EXPLAIN QUERY PLAN " + STREAM_BY_ALIAS, ("my-shop", json.dumps(["pi_1"]))
        ).fetchall()
    db.close()
    details = [row[-1] for row in plan]
    assert not [d for d in details if d.startswith("SCAN") and "json_each" not in d], details
    assert "SEARCH a USING PRIMARY KEY (source=? AND alias=?)" in details
    assert "SEARCH e USING INTEGER PRIMARY KEY (rowid=?)" in details


async def test_migration_0007_indexes_the_aliases_of_existing_events(
    sqlite_kit: Kit, tmp_path: Path
) -> None:
    """A journal written before version 7 has no alias rows: the migration reads them from the
    stored bodies, so a refund for an older invoice still finds its stream."""
    await take(sqlite_kit, renewal("in_1", ("ch_1", "pi_1")))
    await sqlite_kit.aclose()
    backfill = load_migrations("sqlite")[6].sql.split("END;")[-1]
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        db.execute("DELETE FROM etk_journal_aliases")
        db.execute(backfill)
        rows = db.execute("SELECT source, alias, stream FROM etk_journal_aliases").fetchall()
    db.close()
    assert sorted(rows) == [("my-shop", "ch_1", "in_1"), ("my-shop", "pi_1", "in_1")]


@pytest.mark.postgres
async def test_migration_0007_indexes_the_aliases_on_postgresql(
    postgres_kit: Kit, pg_dsn: str, pg_schema: str
) -> None:
    import asyncpg

    await take(postgres_kit, renewal("in_1", ("ch_1", "pi_1")))
    backfill = load_migrations("postgres")[6].sql.split(
        "EXECUTE FUNCTION journal_events_aliases();"
    )[-1]
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'SET search_path TO "{pg_schema}"')
        filled = await conn.fetch("SELECT source, alias, stream FROM journal_aliases")
        await conn.execute("DELETE FROM journal_aliases")
        await conn.execute(backfill)
        rows = await conn.fetch("SELECT source, alias, stream FROM journal_aliases")
    finally:
        await conn.close()
    expected = [("my-shop", "ch_1", "in_1"), ("my-shop", "pi_1", "in_1")]
    assert sorted(tuple(r) for r in filled) == expected
    assert sorted(tuple(r) for r in rows) == expected
