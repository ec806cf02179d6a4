"""A backfill interrupted before ``migrate-outbox`` resumes in the new database from its
checkpoint, and the orders it journaled before the move stay duplicates there."""

from __future__ import annotations

import asyncio
from pathlib import Path

import attrs
import pytest

from kit.errors import FeedAuthError
from kit.feeds.checkpoint import Run, checkpoints_for
from kit.journal import Intake
from kit.outbox import Outbox
from kit.outbox.move import migrate_outbox
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage

from .conftest import FeedKit
from .orders import NOW, SOURCE
from .test_feed_runner import WINDOW, _key, _orders


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="to-sqlite"),
        pytest.param("postgres", id="to-postgres", marks=pytest.mark.postgres),
    ]
)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The outbox the move goes to, not opened yet."""
    if request.param == "sqlite":
        return SQLiteStorage(tmp_path / "moved.db")
    from kit.outbox.postgres import PostgresStorage

    dsn: str = request.getfixturevalue("pg_dsn")
    schema: str = request.getfixturevalue("pg_schema")
    return PostgresStorage(dsn, schema=schema)


async def test_a_backfill_resumes_from_its_checkpoint_after_a_move(
    sqlite_feed_kit: FeedKit, target: Storage
) -> None:
    """The moved backfill starts at its checkpoint (only the overlap is read again, as on the
    database it left), and every order ends up enqueued once in the new outbox."""
    kit = sqlite_feed_kit
    kit.stand_in.put(*_orders(100))  # one a minute; the page size is 7
    stopped = asyncio.create_task(kit.runner().backfill(WINDOW))
    await asyncio.wait_for(kit.stand_in.wait_pages(5), 10)
    kit.stand_in.token = "revoked"
    with pytest.raises(FeedAuthError):
        await asyncio.wait_for(stopped, 10)
    saved = await kit.checkpoints.load(SOURCE, Run.BACKFILL)
    assert saved is not None
    assert not saved.done
    first_pass = dict(kit.stand_in.served)

    async with target:
        report = await migrate_outbox(kit.outbox.storage, target, now=NOW)
        assert report.checkpoints_copied == 1
        assert report.journal_copied > 0

        moved = Outbox(target, clock=kit.clock)
        there = attrs.evolve(
            kit,
            outbox=moved,
            intake=Intake(moved, clock=kit.clock),
            checkpoints=checkpoints_for(moved),
        )
        assert await there.checkpoints.load(SOURCE, Run.BACKFILL) == saved
        kit.stand_in.token = "shpat_kit_test_token_do_not_use"
        resumed = await there.runner().backfill(WINDOW)
        assert resumed.resumed
        assert sorted(await there.entries()) == sorted(_key(n) for n in range(1, 101))
        twice = [gid for gid, count in kit.stand_in.served.items() if count > 1]
        assert len(twice) <= 6  # the overlap's five minutes of orders, not the pages before it
        assert len(first_pass) > len(twice)
