"""``serve`` processes that poll: SIGTERM in the middle of a poll exits 0 and leaves the
checkpoint where the journal is; and on PostgreSQL two replicas poll a source one at a time,
the other taking over once a killed holder's lease expired."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from feeds.orders import TOKEN

from kit.feeds.checkpoint import Run, checkpoints_for
from kit.outbox import Outbox
from kit.sandbox import SandboxServer
from kit.testing.shopify_orders import ShopifyOrdersStandIn, ShopifyServer, synthetic_order

from .serve_helpers import SOURCE, ServeProcess, key_of, serve_env, wait_until, write_config
from .test_serve_polling import TOKEN_VARIABLE, polled_source

ORDER_BASE = 5560000000000  # synthetic_order's ids
POLLED = f"poll of {SOURCE}:"  # the summary line of each poll


def _orders(stand_in: ShopifyOrdersStandIn, count: int) -> dict[str, datetime]:
    """``count`` fulfilled orders changed in the last hour; their ids and change times."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    nodes = [
        synthetic_order(n, updated_at=start + timedelta(seconds=n), fulfilled_at=start)
        for n in range(1, count + 1)
    ]
    stand_in.put(*nodes)
    return {str(ORDER_BASE + n): start + timedelta(seconds=n) for n in range(1, count + 1)}


async def test_sigterm_during_a_poll_exits_0_with_the_checkpoint_where_the_journal_is(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """A bucket that restores one point a second stalls the poll after a few pages; SIGTERM
    then ends serve with 0, and the saved checkpoint covers exactly the orders that were
    journaled: everything up to it has its entry, nothing after it does."""
    stand_in = ShopifyOrdersStandIn(token=TOKEN, maximum=1000, restore_rate=1)
    orders = _orders(stand_in, 60)
    async with ShopifyServer(stand_in) as shop:
        config = write_config(
            tmp_path / "kit.toml", db=db, sandbox=sandbox, sources=polled_source(shop.url)
        )
        env = serve_env(**{TOKEN_VARIABLE: TOKEN})
        served = await ServeProcess.start(
            config, "--shutdown-grace", "1", env=env, stderr_path=tmp_path / "serve.log"
        )
        try:
            async with asyncio.timeout(30):
                await stand_in.wait_pages(1)
            served.send_signal(signal.SIGTERM)
            assert await served.wait() == 0, served.stderr
        finally:
            await served.kill()
    assert stand_in.pages < 9  # the poll was cut off, not finished
    async with Outbox.from_url(db) as outbox:
        saved = await checkpoints_for(outbox).load(SOURCE, Run.POLL)
        keys = {row.key for row in await outbox.storage.entries(limit=1000)}
    assert saved is not None
    assert saved.high_water is not None
    assert not saved.done
    covered = {oid for oid, at in orders.items() if at.timestamp() <= saved.high_water}
    assert covered  # at least the first page
    assert keys == {key_of(oid) for oid in covered}


def _pid(holder: str) -> int:
    return int(holder.split(":")[1])  # host:pid:random, the flusher's owner name


@pytest.mark.postgres
async def test_two_replicas_on_postgres_poll_one_at_a_time_and_take_over(
    tmp_path: Path, sandbox: SandboxServer, pg_dsn: str, pg_schema: str
) -> None:
    db = f"{pg_dsn}?schema={pg_schema}"
    lease = 2.0
    stand_in = ShopifyOrdersStandIn(token=TOKEN)
    _orders(stand_in, 3)
    async with ShopifyServer(stand_in) as shop:
        config = write_config(
            tmp_path / "kit.toml", db=db, sandbox=sandbox, sources=polled_source(shop.url)
        )
        env = serve_env(**{TOKEN_VARIABLE: TOKEN})
        options = ("--feed-lease", str(lease), "--shutdown-grace", "1")
        replicas = [
            await ServeProcess.start(
                config, *options, env=env, stderr_path=tmp_path / f"{i}.log", verbose=True
            )
            for i in (0, 1)
        ]
        conn = await asyncpg.connect(pg_dsn)
        try:

            async def lease_row() -> asyncpg.Record | None:
                return await conn.fetchrow(
                    f'SELECT holder, expires_at, acquired_at FROM "{pg_schema}".feed_leases'
                )

            async def held() -> bool:
                return await lease_row() is not None

            await wait_until(held)
            first = await lease_row()
            assert first is not None
            by_pid = {served.proc.pid: served for served in replicas}
            holder = by_pid[_pid(first["holder"])]
            (other,) = (served for served in replicas if served is not holder)
            # several polls, all by the holder: the lease never changed hands
            pages = stand_in.pages
            async with asyncio.timeout(30):
                await stand_in.wait_pages(pages + 3)
            again = await lease_row()
            assert again is not None
            assert again["holder"] == first["holder"]
            assert again["acquired_at"] == first["acquired_at"]
            # and the processes' own logs (a poll's summary is an INFO line) say who polled
            assert POLLED in holder.stderr
            assert POLLED not in other.stderr
            assert "poller of my-shop: standby" in other.stderr

            await holder.kill()  # SIGKILL: no release, the lease has to expire
            last = await lease_row()
            assert last is not None

            async def taken_over() -> bool:
                row = await lease_row()
                return row is not None and _pid(row["holder"]) == other.proc.pid

            assert POLLED not in other.stderr
            await wait_until(taken_over, timeout=10 * lease)
            took = await lease_row()
            assert took is not None
            assert took["acquired_at"] >= last["expires_at"]  # only once it had expired

            async def other_polled() -> bool:  # and the new holder polls
                return POLLED in other.stderr

            await wait_until(other_polled)
            other.send_signal(signal.SIGTERM)
            assert await other.wait() == 0, other.stderr
        finally:
            await conn.close()
            for served in replicas:
                await served.kill()
    assert await _entries(db) == 3  # each order once, whoever polled it


async def _entries(db: str) -> int:
    async with Outbox.from_url(db) as outbox:
        return len(await outbox.storage.entries(limit=1000))
