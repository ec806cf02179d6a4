"""Starting, stopping and failing: what a flusher leaves behind when it ends.

``stop()`` once finishes the POSTs in flight within the grace period, a second ``stop()``
abandons them as in doubt, cancelling ``run()`` behaves like ``stop()``, an unexpected error
stops the flusher loudly, and a flusher that ended can run again. No wall-clock bets: a fake
eTrusted client with gates, an injectable clock, bounded waits for conditions the code makes true,
and a fixed number of bare event-loop turns (``sleep(0)``) where a step must have had its chance.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import attrs
import pytest
from builders import T0, key, order
from flusher_doubles import CONFIG, Clock, wait_until

from kit.errors import KitError, StorageError
from kit.flusher import Flusher
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.outbox.types import State
from kit.testing import FakeDeliveryClient, Raise, WaitFor

GRACEFUL = attrs.evolve(CONFIG, grace_period=30.0)  # only an abort can cut a POST short


async def turns(n: int = 50) -> None:
    """Let the event loop run ``n`` rounds (no wall clock involved)."""
    for _ in range(n):
        await asyncio.sleep(0)


def lookups(client: FakeDeliveryClient) -> int:
    return len(client.calls_to("iter_invites"))


# -- stop() and a second stop() ------------------------------------------------------------


async def test_abandoned_post_stays_in_doubt_when_an_overlapping_reconcile_ends() -> None:
    """A POST abandoned by a second ``stop()`` is written back in doubt, so the next claim looks
    for it in eTrusted before sending again; also when a reconciliation of the same key, from
    an earlier claim that outlived its lease, ends while the POST is in flight."""
    clock = Clock()
    storage = InMemoryStorage()
    outbox = Outbox(storage, clock=clock)
    await outbox.enqueue(order(1))
    # A flusher that died mid-POST long ago: its lease ran out, the entry is due for a lookup.
    await storage.claim(owner="dead", limit=1, lease_seconds=10, now=T0)
    clock.now = T0 + 20

    first_lookup_gate, post_gate = asyncio.Event(), asyncio.Event()
    client = FakeDeliveryClient()
    client.answer_lookups(WaitFor(first_lookup_gate))  # later lookups find nothing at once
    client.answer_posts(WaitFor(post_gate))  # the POST is in flight until the flusher is stopped
    flusher = Flusher(outbox, client, CONFIG, clock=clock)
    run = asyncio.create_task(flusher.run())

    await wait_until(lambda: lookups(client) == 1)  # reconcile #1 hangs (slow eTrusted)
    clock.now = T0 + 31  # its lease (until T0 + 30) ran out: the entry is claimable again
    # Reconcile #2 finds nothing after the whole window: blind resend; then a SEND claim POSTs.
    await wait_until(lambda: len(client.posts) == 1)
    first_lookup_gate.set()  # reconcile #1 ends now (its result is fenced off)
    await wait_until(lambda: flusher.stats.fenced == 1)

    flusher.stop()
    flusher.stop()  # abandon the POST in flight: it may have reached eTrusted
    await asyncio.wait_for(run, 10)

    entry = await outbox.get(key("order-1"))
    assert len(client.posts) == 1
    assert entry.state is State.IN_DOUBT, (
        f"a POST abandoned in flight was written back as {entry.state.value}: the next claim "
        "sends it again without looking for it in eTrusted"
    )


async def test_an_unexpected_error_during_a_graceful_stop_does_not_abort_other_posts() -> None:
    """A graceful ``stop()`` stays graceful when a worker hits an unexpected error meanwhile:
    the other POSTs in flight finish within the grace period and are recorded as delivered,
    not cancelled and written back in doubt. Only a second ``stop()`` from the caller aborts."""
    clock = Clock()
    storage = InMemoryStorage()
    outbox = Outbox(storage, clock=clock)
    await outbox.enqueue(order(1))
    await storage.claim(owner="dead", limit=1, lease_seconds=10, now=T0)  # in doubt later
    clock.now = T0 + 20
    await outbox.enqueue(order(2))  # an ordinary pending entry: its POST will be in flight

    post_gate, lookup_gate = asyncio.Event(), asyncio.Event()
    client = FakeDeliveryClient(post_answer=WaitFor(post_gate))
    client.answer_lookups(WaitFor(lookup_gate, then=Raise(RuntimeError("a bug in the lookup"))))
    flusher = Flusher(outbox, client, GRACEFUL, clock=clock)
    run = asyncio.create_task(flusher.run())
    await wait_until(lambda: len(client.posts) == 1 and lookups(client) == 1)

    flusher.stop()  # graceful: the POST in flight may finish within the grace period
    lookup_gate.set()  # ... and meanwhile the lookup hits a bug
    await wait_until(lambda: flusher._failure is not None)
    await turns()  # the shutdown has every chance to act on an abort, if there is one
    post_gate.set()  # eTrusted answers 202
    with pytest.raises(KitError, match="unexpected error"):
        await asyncio.wait_for(run, 10)

    entry = await outbox.get(key("order-2"))
    post_cancelled = bool(client.cancelled)
    assert (post_cancelled, entry.state) == (False, State.DELIVERED), (
        f"the POST in flight was cancelled ({post_cancelled}) and written back as "
        f"{entry.state.value}: an error elsewhere turned a graceful stop into an abort"
    )


# -- unexpected errors stop the flusher loudly ----------------------------------------------


async def test_an_untranslated_error_in_a_lookup_stops_the_flusher_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An error in a lookup that is not an eTrusted answer (a closed client session, a bug) stops
    the flusher loudly: ``run()`` raises it and the traceback is logged, and every claim is
    given back, none left under the flusher's lease."""
    clock = Clock()
    storage = InMemoryStorage()
    outbox = Outbox(storage, clock=clock)
    await outbox.enqueue(order(1))
    await storage.claim(owner="dead", limit=1, lease_seconds=10, now=T0)  # in doubt later
    clock.now = T0 + 20
    await outbox.enqueue(order(2))  # an ordinary pending entry, due after the first
    # What ETrustedClient raises when the aiohttp session it was given has been closed.
    closed = KitError("the ClientSession given to ETrustedClient has been closed")
    client = FakeDeliveryClient(lookup_answer=Raise(closed))
    flusher = Flusher(outbox, client, attrs.evolve(CONFIG, concurrency=1), clock=clock)
    with pytest.raises(KitError, match="has been closed"):
        await asyncio.wait_for(flusher.run(), 10)
    assert lookups(client) == 1
    first, second = await outbox.entries()
    assert (first.state, first.lease_owner) == (State.IN_DOUBT, None)  # looked up again later
    assert second.lease_owner is None  # not stranded under our lease
    assert any(
        r.getMessage().startswith("the flusher stops after an unexpected error")
        for r in caplog.records
    )


# -- the PostgreSQL listener ends with the flusher -----------------------------------------


@pytest.mark.postgres
async def test_a_stopped_flusher_leaves_no_listening_connection(
    pg_dsn: str, pg_schema: str
) -> None:
    """A flusher that stopped leaves no LISTEN connection behind, so an application that keeps
    one PostgresStorage and runs flushers over and over holds no more server connections
    than one flusher needs."""
    import asyncpg

    from kit.outbox.postgres import PostgresStorage

    storage = PostgresStorage(pg_dsn, schema=pg_schema)
    async with Outbox(storage) as outbox:
        for _ in range(3):
            flusher = Flusher(outbox, FakeDeliveryClient(), CONFIG)
            before = set(storage._listeners)
            run = asyncio.create_task(flusher.run())

            def connected(before: set[Any] = before) -> bool:
                return any(lst.connects for lst in storage._listeners - before)

            await wait_until(connected)
            flusher.stop()
            await asyncio.wait_for(run, 10)
        conn = await asyncpg.connect(pg_dsn)
        try:
            # Only this test's listeners: others may share the server. A listener's last
            # statement is its LISTEN, whose channel names the schema.
            listening = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'etrusted-kit listener' AND query LIKE $1",
                f"%{pg_schema}%",
            )
        finally:
            await conn.close()
        open_listeners = [lst for lst in storage._listeners if not lst._closed]
        assert (len(open_listeners), listening) == (0, 0), (
            f"after 3 runs that all stopped: {len(open_listeners)} listeners still open,"
            f" {listening} listening connections on the server"
        )


@pytest.mark.postgres
async def test_shutdown_survives_a_listener_that_ended_with_the_storage(
    pg_dsn: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """When the storage is closed under a running flusher (an application's shutdown order),
    ``stop()`` still ends the flusher completely: no worker, writer or listener task is left
    running, and the flusher can be run again."""
    from kit.outbox.postgres import PostgresStorage

    storage = PostgresStorage(pg_dsn, schema=pg_schema)
    outbox = Outbox(storage)
    await outbox.open()
    flusher = Flusher(outbox, FakeDeliveryClient(), GRACEFUL)
    run = asyncio.create_task(flusher.run())
    await wait_until(lambda: any(lst.connects for lst in storage._listeners))

    await outbox.aclose()  # the storage goes first
    await wait_until(
        lambda: any(getattr(r, "action", None) == "listen_failed" for r in caplog.records)
    )
    flusher.stop()
    # A claim on the closed storage is a broken setup, which stops the flusher with that error
    # (if the claim came before stop()); either way the shutdown completes.
    with contextlib.suppress(StorageError):
        await asyncio.wait_for(run, 10)

    leftovers = [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith(("etk-worker", "etk-writer", "etk-listener")) and not t.done()
    ]
    assert (leftovers, flusher._running) == ([], False)


# -- running again -----------------------------------------------------------------------------


async def test_a_flusher_can_run_again_after_run_once_returned() -> None:
    """A flusher whose ``run_once()`` returned delivers again on the next ``run_once()``."""
    outbox = Outbox(InMemoryStorage())
    client = FakeDeliveryClient()
    flusher = Flusher(outbox, client, CONFIG)
    await outbox.enqueue(order(1))
    await asyncio.wait_for(flusher.run_once(), 10)
    await outbox.enqueue(order(2))
    await asyncio.wait_for(flusher.run_once(), 10)
    posts = len(client.posts)
    assert posts == 2, f"the second run_once() POSTed {posts - 1} events; entry 2 stays pending"
