"""Holds (brakes shared by every flusher on the database) and an outbox that was moved."""

from __future__ import annotations

import attrs
import pytest

from kit.errors import OutboxMovedError
from kit.outbox.protocol import Storage
from kit.outbox.types import (
    HOLD_AUTH,
    HOLD_PACE,
    ClaimMode,
    Hold,
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    LEASE,
    T,
    claim,
    enqueue,
    entry,
    make_state,
    new,
)


class HoldContract(ContractBase):
    """Setting, expiring and clearing holds; a moved outbox refuses work."""

    async def test_holds(self, storage: Storage) -> None:
        """A hold is in force until its ``until``; setting one again replaces it; clearing one, even
        one never set, leaves the others."""
        assert await storage.holds(now=T) == []
        pace = Hold(name=HOLD_PACE, until=T + 30, reason="429 Retry-After: 30")
        await storage.set_hold(pace)
        await storage.set_hold(
            Hold(name=HOLD_AUTH, until=T + 600, reason="401 from token endpoint")
        )
        assert sorted(await storage.holds(now=T), key=lambda h: h.name) == [
            Hold(name=HOLD_AUTH, until=T + 600, reason="401 from token endpoint"),
            pace,
        ]
        longer = Hold(name=HOLD_PACE, until=T + 90, reason="429 again")
        await storage.set_hold(longer)  # replaces
        assert longer in await storage.holds(now=T + 31)
        assert [h.name for h in await storage.holds(now=T + 100)] == [HOLD_AUTH]
        assert await storage.holds(now=T + 600) == []  # expired at its "until"
        await storage.clear_hold(HOLD_AUTH)
        await storage.clear_hold("never-set")
        assert [h.name for h in await storage.holds(now=T)] == [HOLD_PACE]

    async def test_claim_with_holds_claims_and_reads_the_holds_at_once(
        self, storage: Storage
    ) -> None:
        """What ``claim`` hands out, plus the holds in force as the claim saw them."""
        await enqueue(storage, "a", "b")
        pace = Hold(name=HOLD_PACE, until=T + 5, reason="429")
        await storage.set_hold(pace)
        await storage.set_hold(Hold(name=HOLD_AUTH, until=T - 1, reason="over"))
        claimed, holds = await storage.claim_with_holds(
            owner="w1", limit=1, lease_seconds=LEASE, now=T
        )
        assert [(c.key, c.mode, c.attempt, c.lease_expires_at) for c in claimed] == [
            ("a", ClaimMode.SEND, 1, T + LEASE)
        ]
        assert holds == [pace]
        assert (await entry(storage, "a")).lease_owner == "w1"
        assert await storage.claim_with_holds(owner="w1", limit=0, lease_seconds=LEASE, now=T) == (
            [],
            [pace],
        )
        await storage.clear_hold(HOLD_PACE)
        claimed, holds = await storage.claim_with_holds(
            owner="w2", limit=5, lease_seconds=LEASE, now=T
        )
        assert ([c.key for c in claimed], holds) == (["b"], [])

    async def test_a_moved_outbox_takes_no_new_entries_and_hands_none_out(
        self, storage: Storage
    ) -> None:
        """Once migrate-outbox has moved the outbox, no flusher sends from it again, so an entry
        accepted here would never be sent: one entry, a batch, a batch large enough for
        PostgreSQL's COPY and duplicates are all refused, naming where the outbox went, and nothing
        is stored. A claim is refused too (claiming nothing), so a flusher stops with that error."""
        await enqueue(storage, "before")
        assert await storage.moved_to() is None
        await storage.set_moved("postgresql://elsewhere/shop")
        assert await storage.moved_to() == "postgresql://elsewhere/shop"
        for keys in (["one"], ["a", "b"], [f"bulk-{i}" for i in range(120)], ["before"]):
            with pytest.raises(
                OutboxMovedError, match="moved to postgresql://elsewhere/shop"
            ) as err:
                await storage.enqueue([new(k) for k in keys], now=T)
            assert err.value.moved_to == "postgresql://elsewhere/shop"
        with pytest.raises(OutboxMovedError):
            await claim(storage, now=T + 10)
        with pytest.raises(OutboxMovedError):
            await storage.claim_with_holds(owner="w1", limit=5, lease_seconds=LEASE, now=T + 10)
        assert [e.key for e in await storage.entries()] == ["before"]
        assert (await entry(storage, "before")).state is State.PENDING
        assert await storage.holds(now=T) == []  # a state of the outbox, not a brake

        await storage.set_moved(None)  # a move given up before anything was copied
        assert await storage.moved_to() is None
        await enqueue(storage, "after")

    async def test_a_moved_outbox_refuses_cancel_and_amend(self, storage: Storage) -> None:
        """A cancellation or an amend accepted by a moved outbox would change an entry whose
        copy in the new outbox is still sent unchanged: both are refused, whatever the entry's
        state (a pending one, one that ended, a key never seen), and no entry changes."""
        await make_state(storage, "done", State.DELIVERED)
        await enqueue(storage, "waiting")
        await storage.set_moved("postgresql://elsewhere/shop")
        before = await storage.entries()
        amended = new("waiting", payload='{"type":"checkout","v":2}', send_after=T + 500)
        for key in ("waiting", "done", "never-seen"):
            with pytest.raises(OutboxMovedError, match="moved to postgresql://elsewhere/shop"):
                await storage.cancel(key, now=T + 1)
            with pytest.raises(OutboxMovedError, match="moved to postgresql://elsewhere/shop"):
                await storage.amend(attrs.evolve(amended, key=key), now=T + 1)
        assert await storage.entries() == before

        await storage.set_moved(None)
        assert await storage.amend(amended, now=T + 2) is True
        assert await storage.cancel("waiting", now=T + 3) is True
        assert await storage.cancel("done", now=T + 3) is False
