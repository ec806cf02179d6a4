"""Regression tests for defects a review of one session's changes found (3979746..a12fff5).

Each test names the promise it checks; its docstring says how the reviewed code broke it. No
wall-clock bets: gates, an injectable clock, bounded waits for conditions the code makes true, and
a fixed number of bare event-loop turns (``sleep(0)``) where a step must have had its chance.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from flusher_doubles import CHANNEL, T0, Clock, event, wait_until
from flusher_doubles import CONFIG as BASE_CONFIG

from kit.codec import from_wire
from kit.errors import KitError, NotFoundError, StorageError, ValidationError
from kit.flusher import Flusher
from kit.models import EventAccepted, EventDetails, EventType, Invite
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.outbox.types import State


def key(i: int) -> str:
    return f"{CHANNEL}:order_shipped:order-{i}"


CONFIG = attrs.evolve(BASE_CONFIG, grace_period=30.0)  # only an abort can cut a POST short


async def turns(n: int = 50) -> None:
    """Let the event loop run ``n`` rounds (no wall clock involved)."""
    for _ in range(n):
        await asyncio.sleep(0)


# -- 1. an unexpected error during a graceful stop aborts the other in-flight POSTs ---------------


class GatedClient:
    """POSTs wait on ``post_gate``; the lookup waits on ``lookup_gate`` and then fails with an
    error that is not an ETrustedError (a bug, a closed session)."""

    def __init__(self) -> None:
        self.posts = 0
        self.post_cancelled = False
        self.post_gate = asyncio.Event()
        self.lookup_gate = asyncio.Event()
        self.lookups = 0

    async def post_event_json(self, body: bytes | str) -> EventAccepted:
        self.posts += 1
        try:
            await self.post_gate.wait()
        except asyncio.CancelledError:
            self.post_cancelled = True
            raise
        return EventAccepted(event_ref=f"evt-{self.posts}")

    async def list_event_types(self, name: str | None = None) -> list[EventType]:
        return [EventType(id="ety-1", name="order_shipped", active=True)]

    async def iter_invites(
        self, channel_id: str, *, query: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Invite]:
        self.lookups += 1
        found: list[Invite] = []
        await self.lookup_gate.wait()
        if self.lookups:  # always
            raise RuntimeError("a bug in the lookup")
        for invite in found:  # pragma: no cover (keeps this an async generator)
            yield invite

    async def get_event(self, ref: str) -> EventDetails:
        raise NotFoundError("no such event", status=404)


async def test_an_unexpected_error_during_a_graceful_stop_does_not_abort_other_posts() -> None:
    """``stop()`` once means: finish in-flight POSTs within the grace period; only a *second*
    stop() abandons them (in doubt). ``Flusher._fail`` (kit/flusher.py:510) calls ``stop()``
    guarded only by ``_failure is None``, not by whether the flusher is already stopping. So
    when a worker hits an unexpected error while a graceful stop is under way (SIGTERM from
    systemd, an app's shutdown), its ``stop()`` is the second one: ``_aborting`` is set, every
    other POST in flight is cancelled and written back ``in_doubt`` although it was about to
    be answered, and the writer stops waiting out database hiccups. The same happens the
    other way round: after an internal failure, the operator's first SIGTERM aborts."""
    clock = Clock()
    storage = InMemoryStorage()
    outbox = Outbox(storage, clock=clock)
    await outbox.enqueue(event(1))
    await storage.claim(owner="dead", limit=1, lease_seconds=10, now=T0)  # in doubt later
    clock.now = T0 + 20
    await outbox.enqueue(event(2))  # an ordinary pending entry: its POST will be in flight

    client = GatedClient()
    flusher = Flusher(outbox, client, CONFIG, clock=clock)
    run = asyncio.create_task(flusher.run())
    await wait_until(lambda: client.posts == 1 and client.lookups == 1)

    flusher.stop()  # graceful: the POST in flight may finish within the grace period
    client.lookup_gate.set()  # ... and meanwhile the lookup hits a bug
    await wait_until(lambda: flusher._failure is not None)
    await turns()  # the shutdown has every chance to act on an abort, if there is one
    client.post_gate.set()  # eTrusted answers 202
    with pytest.raises(KitError, match="unexpected error"):
        await asyncio.wait_for(run, 10)

    entry = await outbox.get(key(2))
    assert (client.post_cancelled, entry.state) == (False, State.DELIVERED), (
        f"the POST in flight was cancelled ({client.post_cancelled}) and written back as "
        f"{entry.state.value}: an error elsewhere turned a graceful stop into an abort"
    )


# -- 2. a listener that cannot be restarted breaks the shutdown -----------------------------------


@pytest.mark.postgres
async def test_shutdown_survives_a_listener_that_ended_with_the_storage(
    pg_dsn: str, pg_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``_listen`` called ``storage.listen()`` outside its try: once the storage was closed under
    a running flusher (an app's shutdown order, ``async with outbox`` ending before the flusher
    task is stopped), ``listen()`` raised and the listener task died. ``_shutdown`` then
    re-raised that from ``await listener`` before it cancelled the workers or awaited the
    writer: worker and writer tasks leaked, and ``_running`` stayed True for good."""
    from kit.outbox.postgres import PostgresStorage

    storage = PostgresStorage(pg_dsn, schema=pg_schema)
    outbox = Outbox(storage)
    await outbox.open()
    flusher = Flusher(outbox, GatedClient(), CONFIG)
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


# -- 3. EventDetails is lenient at the top level only ---------------------------------------------


@pytest.mark.parametrize(
    "foreign",
    [
        {"customer": {"firstName": "Ada"}},  # an anonymised customer: no e-mail
        {"products": [{"name": "Mug", "sku": "MUG-1"}]},  # a product without a URL
        {"transaction": {"reference": "order-1", "date": "2024-05-01"}},  # date, not date-time
    ],
    ids=["customer-without-email", "product-without-url", "date-only-transaction-date"],
)
def test_event_details_read_any_foreign_event_with_an_id(foreign: dict[str, Any]) -> None:
    """Commit 1fda127: reconciliation reads every event listed for a transaction, so
    EventDetails must read another source's event ("Only ``id`` is required", kit/models.py:
    107). But its nested fields are still the strict request models: Customer needs
    ``email``, Product ``name``/``sku``/``url``, Transaction.date an RFC 3339 date-time. One
    such foreign event next to ours makes ``get_event`` raise a malformed-answer error, the
    whole lookup fails, and our in-doubt event is never adopted (parked or left in doubt)."""
    body = {"id": "evt-foreign", "type": "checkout", "channel": {"id": CHANNEL}, **foreign}
    details = from_wire(EventDetails, body)
    assert details.id == "evt-foreign"


# -- 4. a lone surrogate in the e-mail escapes the new "storable text" check -----------------------


def test_a_lone_surrogate_in_the_email_is_a_validation_error() -> None:
    """Commit a12fff5: "a lone surrogate anywhere [is a] ValidationError", checked in
    prepare(). ``Outbox.prepare`` (kit/outbox/__init__.py:178) hashes the e-mail *before*
    ``NewEntry.from_body`` runs ``_unstorable``, and ``email_hash`` encodes it to UTF-8: a
    webhook body with ``"email": "a\\ud800b@example.com"`` (json.loads accepts it) raises a raw
    UnicodeEncodeError. ``etrusted-kit enqueue FILE`` then dies with a traceback instead of
    counting the line invalid, and the valid lines of the batch before it are not stored."""
    outbox = Outbox(InMemoryStorage())
    with pytest.raises(ValidationError):
        outbox.prepare(event(1, email="a\ud800b@example.com"))


# -- 5. a transaction open across migrate-outbox stores an entry nobody will send -----------------


@pytest.mark.postgres
async def test_an_enqueue_in_transaction_spanning_the_move_is_refused_or_copied(
    pg_dsn: str, pg_schema: str
) -> None:
    """The enqueue statements' NOT EXISTS on the 'migrated' hold sees, under READ COMMITTED,
    only a hold committed before the statement started, and migrate_outbox set the hold and
    read the source without waiting for writers under way. An application inside
    ``enqueue_in`` in its own transaction when the move ran got duplicate=False, committed
    after the copy, and its event stayed in an outbox no flusher may flush: never sent. The
    move now waits for such writers (a SHARE lock) before it copies."""
    import asyncpg

    from kit.outbox.migrate import migrate_outbox
    from kit.outbox.postgres import PostgresStorage

    source = PostgresStorage(pg_dsn, schema=pg_schema)
    target = PostgresStorage(pg_dsn, schema=pg_schema + "_to")
    conn = await asyncpg.connect(pg_dsn, server_settings={"application_name": "etk-review-diff"})
    try:
        async with source, target:
            old = Outbox(source)
            tx = conn.transaction()
            await tx.start()
            result = await old.enqueue_in(conn, event(1))
            assert not result.duplicate
            move = asyncio.create_task(migrate_outbox(source, target))

            async def migrate_waits_for_the_writer() -> bool:
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                    " JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE NOT l.granted AND c.relname = 'entries' AND n.nspname = $1",
                    pg_schema,
                )
                return bool(waiting)

            async with asyncio.timeout(30):  # the move must wait for our transaction
                while not await migrate_waits_for_the_writer():
                    assert not move.done(), "the move finished while a write was under way"
                    await asyncio.sleep(0.01)
            await tx.commit()
            report = await asyncio.wait_for(move, 30)

            in_source = {e.key for e in await source.entries()}
            in_target = {e.key for e in await target.entries()}
            assert in_source == in_target, (
                f"enqueue_in committed after the move (copied {report.copied}): "
                f"{sorted(in_source - in_target)} only in the moved-away outbox"
            )
    finally:
        await conn.close()
        cleanup = await asyncpg.connect(pg_dsn)
        try:
            await cleanup.execute(f'DROP SCHEMA IF EXISTS "{pg_schema}_to" CASCADE')
        finally:
            await cleanup.close()


# -- 6. the WAL scrub after forget/purge waits out the busy timeout holding the storage lock -----


async def test_forget_does_not_stall_the_storage_for_the_busy_timeout_behind_a_reader(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The WAL scrub after purge/forget ran ``PRAGMA wal_checkpoint(TRUNCATE)`` holding the
    storage's one lock (which every claim, result write and enqueue also takes). TRUNCATE waits
    in the busy handler until every reader is on the newest snapshot, so any connection with an
    open read (a backup, a ``sqlite3`` shell, a report) stalled the storage for the whole
    ``busy_timeout`` before the scrub gave up and warned. With a busy timeout of ten minutes,
    a wait of 30 s tells the difference."""
    import sqlite3

    from kit.outbox import email_hash
    from kit.outbox.sqlite import SQLiteStorage

    path = str(tmp_path / "o.db")
    storage = SQLiteStorage(path, busy_timeout=600.0)  # waited out, it would hang the test
    async with Outbox(storage) as outbox:
        await outbox.enqueue(event(1))
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM etk_entries").fetchall()  # a read snapshot
            await outbox.enqueue(event(2))  # the snapshot is no longer the newest
            forget = storage.forget_customer(email_hash("buyer1@example.com"), now=T0)
            result = await asyncio.wait_for(forget, 30)
            # The storage is usable at once, with its own busy timeout back in force.
            await outbox.enqueue(event(3))
        finally:
            reader.close()
    assert result.purged == 1
    assert any(getattr(r, "action", None) == "outbox.scrub_deferred" for r in caplog.records)
