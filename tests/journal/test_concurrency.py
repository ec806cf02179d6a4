"""Deliveries of one order that arrive at once are decided one after the other: the second
sees the first's decision, so one order never gets two invite decisions."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from kit.journal.ingest import Intake
from kit.journal.records import IngestResult
from kit.outbox import Outbox
from kit.outbox.postgres import PostgresStorage
from kit.outbox.types import State

from .conftest import Clock, Kit, source
from .deliveries import ORDER_ID, fulfilled_order, signed
from .test_ingest import history

WAIT = 10.0  # seconds: a bound on waiting for a condition, never a sleep
# Ingests waiting for the journal table (held by the test) or for a stream's advisory lock.
WAITING = """
SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()
  AND ((locktype = 'relation' AND relation = $1::regclass) OR locktype = 'advisory')"""


async def two_deliveries(first: Intake, second: Intake) -> list[IngestResult]:
    """The same fulfilled order through two subscriptions with their own ids."""
    one = signed(fulfilled_order(), "orders/fulfilled", webhook_id="w-1")
    two = signed(fulfilled_order(), "orders/partially_fulfilled", webhook_id="w-2")
    return list(
        await asyncio.gather(
            first.ingest_raw(source(), *one),
            second.ingest_raw(source(), *two),
        )
    )


async def test_two_deliveries_of_one_order_at_once_make_one_invite_decision(kit: Kit) -> None:
    if kit.name == "memory":
        other = kit.intake
    else:
        other = await kit.another_intake()

    results = await two_deliveries(kit.intake, other)

    assert sorted(r.status.value for r in results) == ["accepted", "accepted"]
    found = await history(kit)
    assert [d.kind for d in found.decisions].count("enqueue") == 1
    assert (await kit.outbox.stats()).counts[State.PENDING] == 1


@pytest.mark.postgres
async def test_postgres_serialises_one_orders_deliveries_on_two_connections(
    pg_dsn: str, pg_schema: str
) -> None:
    """Both ingests are made to run at the same moment (a third connection holds the journal
    table until both wait); the stream lock still lets only one decide first."""
    clock = Clock()
    outboxes = [Outbox(PostgresStorage(pg_dsn, schema=pg_schema), clock=clock) for _ in range(2)]
    for outbox in outboxes:
        await outbox.open()
    blocker = await asyncpg.connect(pg_dsn)
    try:
        intakes = [Intake(outbox, clock=clock) for outbox in outboxes]
        async with blocker.transaction():
            await blocker.execute(f'LOCK TABLE "{pg_schema}".journal_events IN EXCLUSIVE MODE')
            both = asyncio.ensure_future(two_deliveries(*intakes))
            async with asyncio.timeout(WAIT):
                while await blocker.fetchval(WAITING, f'"{pg_schema}".journal_events') < 2:
                    await asyncio.sleep(0.01)
        results = await asyncio.wait_for(both, WAIT)

        assert sorted(r.status.value for r in results) == ["accepted", "accepted"]
        found = await intakes[0].journal.history("my-shop", ORDER_ID)
        assert [(d.kind, d.outcome.value) for d in found.decisions] == [
            ("enqueue", "enqueued"),
            ("recorded", "recorded"),
        ]
    finally:
        await blocker.close()
        for outbox in outboxes:
            await outbox.aclose()
