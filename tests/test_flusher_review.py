"""Regression tests for defects an independent review found in the exactly-once core.

Each test states the promise it checks; its docstring describes how the code broke it before the
fix. No wall-clock bets: a fake eTrusted client with gates, an injectable clock, and bounded waits
for conditions that the code under test makes true.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from flusher_doubles import CONFIG, T0, Clock, event, wait_until

from kit.errors import KitError, NotFoundError
from kit.flusher import Flusher
from kit.models import EventAccepted, EventDetails, EventType, Invite
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.outbox.types import State


class FakeClient:
    """A DeliveryClient double: POSTs and invite lookups can be held on gates."""

    def __init__(self) -> None:
        self.posts: list[str] = []
        self.post_gate: asyncio.Event | None = None  # None: answer 202 at once
        self.invite_calls = 0
        self.first_lookup_gate: asyncio.Event | None = None  # holds the first lookup only

    async def post_event_json(self, body: bytes | str) -> EventAccepted:
        self.posts.append(body if isinstance(body, str) else body.decode())
        if self.post_gate is not None:
            await self.post_gate.wait()
        return EventAccepted(event_ref=f"evt-{len(self.posts)}")

    async def list_event_types(self, name: str | None = None) -> list[EventType]:
        return [EventType(id="ety-1", name="order_shipped", active=True)]

    async def iter_invites(
        self, channel_id: str, *, query: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Invite]:
        self.invite_calls += 1
        if self.invite_calls == 1 and self.first_lookup_gate is not None:
            await self.first_lookup_gate.wait()
        return
        yield  # an async generator that finds nothing

    async def get_event(self, ref: str) -> EventDetails:
        raise NotFoundError("no such event", status=404)


# -- 1. an in-flight POST abandoned at shutdown is released as never sent ------------------------


async def test_abandoned_post_stays_in_doubt_when_an_overlapping_reconcile_ends() -> None:
    """``Flusher._posting`` is keyed by entry key, not by claim. A reconciliation that outlived
    its lease (reconciliations have no lease budget) ends while a *later* claim of the same key
    is POSTing in the same flusher; its ``finally`` discards the key, so a second stop() that
    abandons the in-flight POST writes ``Release`` (back to pending, "nothing was sent") instead
    of ``InDoubt``. The next claim POSTs the event again without any reconciliation."""
    clock = Clock()
    storage = InMemoryStorage()
    outbox = Outbox(storage, clock=clock)
    await outbox.enqueue(event(1))
    # A flusher that died mid-POST long ago: its lease ran out, the entry is due for a lookup.
    await storage.claim(owner="dead", limit=1, lease_seconds=10, now=T0)
    clock.now = T0 + 20

    client = FakeClient()
    client.first_lookup_gate = asyncio.Event()
    client.post_gate = asyncio.Event()  # the POST is in flight until the flusher is stopped
    flusher = Flusher(outbox, client, CONFIG, clock=clock)
    run = asyncio.create_task(flusher.run())

    await wait_until(lambda: client.invite_calls == 1)  # reconcile #1 hangs (slow eTrusted)
    clock.now = T0 + 31  # its lease (until T0 + 30) ran out: the entry is claimable again
    # Reconcile #2 finds nothing after the whole window: blind resend; then a SEND claim POSTs.
    await wait_until(lambda: len(client.posts) == 1)
    client.first_lookup_gate.set()  # reconcile #1 ends now (its result is fenced off)
    await wait_until(lambda: flusher.stats.fenced == 1)

    flusher.stop()
    flusher.stop()  # abandon the POST in flight: it may have reached eTrusted
    await asyncio.wait_for(run, 10)

    entry = await outbox.get("chl-11111111-2222-3333-4444-555555555555:order_shipped:order-1")
    assert len(client.posts) == 1
    assert entry.state is State.IN_DOUBT, (
        f"a POST abandoned in flight was written back as {entry.state.value}: the next claim "
        "sends it again without looking for it in eTrusted"
    )


# -- 3. a stopped flusher keeps a PostgreSQL LISTEN connection open -----------------------------


@pytest.mark.postgres
async def test_a_stopped_flusher_leaves_no_listening_connection(
    pg_dsn: str, pg_schema: str
) -> None:
    """Each ``Flusher.run()`` on PostgreSQL calls ``storage.listen()``; shutdown cancels the
    task iterating it but never closes the Listener, whose background task keeps its own
    connection (and reconnects it) until the storage is closed. An application that keeps one
    PostgresStorage and runs ``Flusher(...).run_once()`` periodically leaks one server
    connection per run, until ``max_connections`` refuses its own enqueues."""
    import asyncpg

    from kit.outbox.postgres import PostgresStorage

    storage = PostgresStorage(pg_dsn, schema=pg_schema)
    async with Outbox(storage) as outbox:
        for _ in range(3):
            flusher = Flusher(outbox, FakeClient(), CONFIG)
            before = set(storage._listeners)
            run = asyncio.create_task(flusher.run())

            def connected(before: set[Any] = before) -> bool:
                return any(lst.connects for lst in storage._listeners - before)

            await wait_until(connected)
            flusher.stop()
            await asyncio.wait_for(run, 10)
        conn = await asyncpg.connect(pg_dsn)
        try:
            listening = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'etrusted-kit listener'"
            )
        finally:
            await conn.close()
        open_listeners = [lst for lst in storage._listeners if not lst._closed]
        assert (len(open_listeners), listening) == (0, 0), (
            f"after 3 runs that all stopped: {len(open_listeners)} listeners still open,"
            f" {listening} listening connections on the server"
        )


# -- 4. an untranslated error in a reconciliation kills a worker for good ---------------------


class ClosedSessionClient(FakeClient):
    """Lookups fail with a KitError that is not an ETrustedError (what ETrustedClient raises
    when the aiohttp session it was given has been closed, or any untranslated bug)."""

    async def iter_invites(
        self, channel_id: str, *, query: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Invite]:
        self.invite_calls += 1
        raise KitError("the ClientSession given to ETrustedClient has been closed")
        yield  # pragma: no cover


async def test_an_untranslated_error_in_a_lookup_stops_the_flusher_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The POST path classifies every exception; the reconcile (and event-type check) path let
    anything else escape ``_process``: the worker task died silently, its claim was never
    completed, and with every worker gone the flusher ran on delivering nothing. Such an error
    is a broken setup or a bug, so the flusher now gives the claim back, stops, logs the
    traceback and raises it from ``run()``."""
    clock = Clock()
    storage = InMemoryStorage()
    outbox = Outbox(storage, clock=clock)
    await outbox.enqueue(event(1))
    await storage.claim(owner="dead", limit=1, lease_seconds=10, now=T0)  # in doubt later
    clock.now = T0 + 20
    await outbox.enqueue(event(2))  # an ordinary pending entry, due after the first
    client = ClosedSessionClient()
    flusher = Flusher(outbox, client, attrs.evolve(CONFIG, concurrency=1), clock=clock)
    with pytest.raises(KitError, match="has been closed"):
        await asyncio.wait_for(flusher.run(), 10)
    assert client.invite_calls == 1
    first, second = await outbox.entries()
    assert (first.state, first.lease_owner) == (State.IN_DOUBT, None)  # looked up again later
    assert second.lease_owner is None  # not stranded under our lease
    assert any(
        r.getMessage().startswith("the flusher stops after an unexpected error")
        for r in caplog.records
    )


# -- 5. a Flusher that has run once never delivers again ---------------------------------------


async def test_a_flusher_can_run_again_after_run_once_returned() -> None:
    """``run()`` resets ``_running`` so it may be called again (it refuses only a concurrent
    run), but ``_stopping`` stays set from the first shutdown: every later ``run()`` or
    ``run_once()`` returns at once, silently, delivering nothing."""
    outbox = Outbox(InMemoryStorage())
    client = FakeClient()
    flusher = Flusher(outbox, client, CONFIG)
    await outbox.enqueue(event(1))
    await asyncio.wait_for(flusher.run_once(), 10)
    await outbox.enqueue(event(2))
    await asyncio.wait_for(flusher.run_once(), 10)
    posts = len(client.posts)
    assert posts == 2, f"the second run_once() POSTed {posts - 1} events; entry 2 stays pending"
