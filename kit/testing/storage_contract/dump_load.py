"""Dump and load: an outbox copied to another backend, and carried on there."""

from __future__ import annotations

import attrs

from kit.outbox.memory import InMemoryStorage
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import (
    AttemptKind,
    ClaimMode,
    Completion,
    Delivered,
    EntryRecord,
    InDoubt,
    Resend,
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    BOB,
    LEASE,
    SAFE_ORDER,
    T,
    claim,
    claim_one,
    enqueue,
    finish,
    make_state,
    record,
)


async def build_history(storage: Storage) -> None:
    """An outbox with every state, logs, purged payloads, adopted refs and blind resends."""
    for state in SAFE_ORDER:
        # a long lease and a late due time keep these two out of the claims below
        later = T + 5000 if state is State.PENDING else None
        await make_state(
            storage, f"plain-{state.value}", state, now=T, lease=10_000, send_after=later
        )
    await enqueue(storage, "resent", email_hash=BOB, send_after=T + 5)
    c = await claim_one(storage, "resent", now=T + 5)
    assert await finish(
        storage,
        c,
        InDoubt(due_at=T + 6, error="timeout"),
        now=T + 5,
        rec=record(1, outcome="in_doubt", status=None, error="timeout"),
    )
    c = await claim_one(storage, "resent", now=T + 6)
    assert await finish(
        storage,
        c,
        Resend(due_at=T + 7, reason="absent"),
        now=T + 6,
        rec=record(2, kind=AttemptKind.RECONCILE, outcome="not_found_yet"),
    )
    c = await claim_one(storage, "resent", now=T + 7)
    assert await finish(storage, c, Delivered("evt-r"), now=T + 8, rec=record(3))
    await enqueue(storage, "adopted", now=T + 10)
    c = await claim_one(storage, "adopted", now=T + 10)
    c = await claim_one(storage, "adopted", now=T + 10 + LEASE)  # lease ran out
    assert await finish(
        storage,
        c,
        Delivered("evt-a", adopted=True),
        now=T + 50,
        rec=record(2, kind=AttemptKind.RECONCILE, outcome="adopted", status=200),
    )
    assert await storage.purge(before=T + 1, now=T + 60) == 3
    await enqueue(storage, "last", payload='{"ü":"ß ✓"}', now=T + 70)


def without_id(records: list[EntryRecord]) -> list[EntryRecord]:
    return [attrs.evolve(r, entry=attrs.evolve(r.entry, id=0)) for r in records]


async def dumped(storage: Storage, batch: int = 500) -> list[EntryRecord]:
    return [r async for chunk in storage.dump(batch=batch) for r in chunk]


def other_backend(storage: Storage) -> Storage:
    return SQLiteStorage(":memory:") if isinstance(storage, InMemoryStorage) else InMemoryStorage()


class DumpLoadContract(ContractBase):
    """Records dumped in batches load elsewhere with everything but their ids."""

    async def test_dump_in_batches_and_load_elsewhere(self, storage: Storage) -> None:
        """``dump`` yields every entry with its attempt log in batches, in id order, and another
        backend loads them unchanged but for their ids; loading again adds nothing."""
        await build_history(storage)
        chunks = [chunk async for chunk in storage.dump(batch=3)]
        assert [len(c) for c in chunks] == [3, 3, 3]
        records = [r for c in chunks for r in c]
        assert [r.entry for r in records] == await storage.entries()
        for r in records:
            assert list(r.attempts) == await storage.attempts(r.entry.key)

        async with other_backend(storage) as target:
            assert await target.load(records) == len(records)
            copied = await dumped(target)
            assert without_id(copied) == without_id(records)
            ids = [r.entry.id for r in copied]
            assert ids == sorted(ids)
            assert await target.load(records) == 0  # keys already present are skipped

    async def test_load_from_elsewhere_and_carry_on(self, storage: Storage) -> None:
        """Entries loaded from another backend keep their state, leases and fencing tokens, so
        delivery carries on where it stopped; keys already present are skipped."""
        async with InMemoryStorage() as source:
            await build_history(source)
            records = await dumped(source, batch=2)
        await enqueue(storage, "plain-dead", now=T - 1)  # already here: skipped by load

        assert await storage.load(records[:5]) == 4
        assert await storage.load(records) == len(records) - 5
        mine = {r.entry.key: r for r in await dumped(storage)}
        assert mine["plain-dead"].entry.state is State.PENDING  # untouched
        for r in records:
            if r.entry.key != "plain-dead":
                assert without_id([mine[r.entry.key]]) == without_id([r])
        assert [r.entry.key for r in await dumped(storage)] == ["plain-dead"] + [
            r.entry.key for r in records if r.entry.key != "plain-dead"
        ]

        # the loaded lease and its fencing token work as they did in the source
        sending = mine["plain-sending"].entry
        assert sending.lease_expires_at is not None
        done = Completion(sending.key, sending.attempt, Delivered("evt-s"), record(sending.attempt))
        assert await storage.finish([done], now=T + 100) == [True]
        claimed = {c.key: c.mode for c in await claim(storage, now=T + 5000)}
        assert claimed == {
            "plain-pending": ClaimMode.SEND,
            "plain-in_doubt": ClaimMode.RECONCILE,
            "plain-dead": ClaimMode.SEND,
            "last": ClaimMode.SEND,
        }
        assert await storage.load([]) == 0
