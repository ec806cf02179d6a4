"""The contract of ``claim``: one claimant per attempt, leases that run out, races between
connections.
"""

from __future__ import annotations

import asyncio

import pytest

from kit.outbox.protocol import Storage
from kit.outbox.types import (
    AttemptKind,
    Claimed,
    ClaimMode,
    Delivered,
    InDoubt,
    Release,
    Retry,
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    LEASE,
    T,
    claim,
    claim_one,
    enqueue,
    entry,
    finish,
    record,
)
from kit.testing.storage_contract.backend import StorageFactory


class ClaimContract(ContractBase):
    """Claiming in due order, leases, and two storages on one database."""

    async def test_claim_hands_out_a_lease(self, storage: Storage) -> None:
        """A claim hands the entry out for ``lease_seconds`` under the claimant's name, with
        everything needed to send it, and never hands it out again while that lease is live."""
        await enqueue(storage, "k1", payload='{"x":1}')
        (c,) = await claim(storage, now=T + 1, owner="flusher-a", lease=45.0)
        e = await entry(storage, "k1")
        assert c == Claimed(
            key="k1",
            attempt=1,
            entry_id=e.id,
            mode=ClaimMode.SEND,
            payload='{"x":1}',
            event_type="checkout",
            channel_id="chl-1",
            transaction_reference="order-k1",
            sends=0,
            first_sent_at=T + 1,
            in_doubt_since=None,
            lease_expires_at=T + 46,
            created_at=e.created_at,
        )
        assert e.state is State.SENDING
        assert (e.attempt, e.lease_owner, e.lease_expires_at) == (1, "flusher-a", T + 46)
        assert (e.first_sent_at, e.updated_at) == (T + 1, T + 1)
        # a live lease is never handed out again
        assert await claim(storage, now=T + 45.5) == []

    async def test_claim_oldest_due_first_and_limit(self, storage: Storage) -> None:
        """Due entries are claimed earliest due first (ties in insertion order), never more than
        ``limit``, and entries not due yet stay behind."""
        await enqueue(storage, "c", send_after=T + 30)
        await enqueue(storage, "a", send_after=T + 10)
        await enqueue(storage, "b1", "b2", send_after=T + 20)  # a tie: insertion order
        await enqueue(storage, "future", send_after=T + 1000)

        assert await claim(storage, now=T + 100, limit=0) == []
        first = await claim(storage, now=T + 100, limit=2)
        assert [c.key for c in first] == ["a", "b1"]
        rest = await claim(storage, now=T + 100, limit=10)
        assert [c.key for c in rest] == ["b2", "c"]
        assert await claim(storage, now=T + 100) == []

    async def test_expired_leases_are_due_when_they_ran_out(self, storage: Storage) -> None:
        """An entry whose lease ran out takes its turn by the time the lease ended, among the
        entries due by then, and comes back to be reconciled."""
        await enqueue(storage, "lost")
        await claim_one(storage, "lost", now=T)  # lease until T + 30
        await enqueue(storage, "early", send_after=T + 20)
        await enqueue(storage, "late", send_after=T + 40)
        claimed = await claim(storage, now=T + 100)
        assert [(c.key, c.mode) for c in claimed] == [
            ("early", ClaimMode.SEND),
            ("lost", ClaimMode.RECONCILE),
            ("late", ClaimMode.SEND),
        ]

    async def test_every_claim_increments_attempt_and_first_sent_at_is_set_once(
        self,
        storage: Storage,
    ) -> None:
        """Every claim increments ``attempt`` (the fencing token); ``first_sent_at`` is the time of
        the first claim and never moves."""
        await enqueue(storage, "k1")
        c1 = await claim_one(storage, "k1", now=T + 1)
        assert await finish(storage, c1, Release(), now=T + 2)
        c2 = await claim_one(storage, "k1", now=T + 3)
        assert await finish(storage, c2, Retry(due_at=T + 10, error="503"), now=T + 4)
        c3 = await claim_one(storage, "k1", now=T + 10)
        assert [c.attempt for c in (c1, c2, c3)] == [1, 2, 3]
        assert [c.first_sent_at for c in (c1, c2, c3)] == [T + 1] * 3
        assert (await entry(storage, "k1")).first_sent_at == T + 1

    async def test_expired_sending_lease_becomes_in_doubt_and_is_reconciled(
        self, storage: Storage
    ) -> None:
        """A ``sending`` entry whose claimant vanished may have reached eTrusted: once its lease
        runs out it is ``in_doubt`` and handed out to be reconciled, never blindly resent."""
        await enqueue(storage, "k1")
        c1 = await claim_one(storage, "k1", now=T, owner="w1")
        assert await claim(storage, now=T + LEASE - 0.001) == []

        (c2,) = await claim(storage, now=T + LEASE + 5, owner="w2")
        assert (c2.key, c2.mode, c2.attempt) == ("k1", ClaimMode.RECONCILE, c1.attempt + 1)
        assert c2.in_doubt_since == T + LEASE + 5
        assert c2.payload == c1.payload
        assert c2.first_sent_at == T
        e = await entry(storage, "k1")
        assert e.state is State.IN_DOUBT
        assert (e.lease_owner, e.lease_expires_at) == ("w2", T + 2 * LEASE + 5)
        assert e.in_doubt_since == T + LEASE + 5

    async def test_in_doubt_waits_for_due_time_and_for_live_leases(self, storage: Storage) -> None:
        """An entry in doubt is reconciled when it is due and not while a reconciler's lease is
        live; it stays in doubt since the first time, whoever takes it next."""
        await enqueue(storage, "k1")
        c1 = await claim_one(storage, "k1", now=T)
        assert await finish(storage, c1, InDoubt(due_at=T + 100, error="read timeout"), now=T + 1)
        e = await entry(storage, "k1")
        assert (e.state, e.due_at, e.in_doubt_since) == (State.IN_DOUBT, T + 100, T + 1)
        assert (e.lease_owner, e.lease_expires_at) == (None, None)

        assert await claim(storage, now=T + 99) == []
        c2 = await claim_one(storage, "k1", now=T + 100, owner="r1")
        assert (c2.mode, c2.attempt, c2.in_doubt_since) == (ClaimMode.RECONCILE, 2, T + 1)
        assert await claim(storage, now=T + 100 + LEASE - 1) == []  # r1's lease is live
        # r1 vanished: once its lease ran out the entry is handed out again, still in doubt
        c3 = await claim_one(storage, "k1", now=T + 100 + LEASE, owner="r2")
        assert (c3.mode, c3.attempt, c3.in_doubt_since) == (ClaimMode.RECONCILE, 3, T + 1)
        assert (await entry(storage, "k1")).state is State.IN_DOUBT

    async def test_two_storages_never_claim_the_same_key(
        self, storage: Storage, storage_factory: StorageFactory
    ) -> None:
        """Two storage objects on one database, claiming at once, hand out every entry once."""
        other = await storage_factory()
        keys = [f"k{i:03d}" for i in range(240)]
        for start in range(0, len(keys), 60):
            await enqueue(storage, *keys[start : start + 60])
        seen: list[tuple[str, int]] = []
        for _ in range(200):
            got = await asyncio.gather(
                claim(storage, now=T + 1, limit=7, owner="a"),
                claim(other, now=T + 1, limit=5, owner="b"),
                claim(storage, now=T + 1, limit=3, owner="c"),
                claim(other, now=T + 1, limit=4, owner="d"),
            )
            batch = [(c.key, c.attempt) for claimed in got for c in claimed]
            seen.extend(batch)
            if not batch:
                break
        else:  # pragma: no cover - the loop must drain the outbox
            pytest.fail("still claiming after 200 rounds")
        assert sorted(k for k, _ in seen) == keys  # every key exactly once
        assert {a for _, a in seen} == {1}

    async def test_a_zombie_cannot_finish_after_another_claim(
        self, storage: Storage, storage_factory: StorageFactory
    ) -> None:
        """A claimant whose lease ran out and was taken over cannot complete the entry: its
        completion changes nothing and logs nothing, and the new claimant's does."""
        other = await storage_factory()
        await enqueue(storage, "k1")
        zombie = await claim_one(storage, "k1", now=T, owner="zombie")
        fresh = await claim_one(other, "k1", now=T + LEASE + 1, owner="fresh")
        assert fresh.mode is ClaimMode.RECONCILE
        before = await entry(storage, "k1")

        assert (
            await finish(storage, zombie, Delivered("evt-zombie"), now=T + 40, rec=record(1))
            is False
        )
        assert await entry(storage, "k1") == before
        assert await storage.attempts("k1") == []

        adopted = record(2, kind=AttemptKind.RECONCILE, outcome="adopted", status=200)
        assert await finish(other, fresh, Delivered("evt-1", adopted=True), now=T + 41, rec=adopted)
        e = await entry(storage, "k1")
        assert (e.state, e.event_ref, e.adopted) == (State.DELIVERED, "evt-1", True)
        assert await storage.attempts("k1") == [adopted]
