"""The contract of ``amend``: a waiting entry may change, one that was claimed never does.

The rule lives in one place, ``amend_entry`` in :mod:`kit.outbox.lifecycle`, and each SQL backend
mirrors it: only a ``pending`` entry changes; it takes the new payload, payload hash, e-mail
hash and a due time of ``max(now, send_after)``; its key, type, channel, reference and counters
stay.
"""

from __future__ import annotations

import hashlib

import attrs
import pytest

from kit.errors import OutboxError
from kit.outbox.protocol import Storage
from kit.outbox.types import State
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    ALICE,
    BOB,
    T,
    claim,
    enqueue,
    entry,
    make_state,
    new,
)


class AmendContract(ContractBase):
    async def test_amend_replaces_a_pending_entrys_payload_and_hold_back(
        self, storage: Storage
    ) -> None:
        """The new payload, its hash, the e-mail hash and the hold-back replace the old ones;
        nothing else about the entry changes."""
        await enqueue(storage, "k", send_after=T + 100)
        before = await entry(storage, "k")
        changed = new("k", payload='{"type":"checkout","v":2}', email_hash=BOB, send_after=T + 500)

        assert await storage.amend(changed, now=T + 10) is True

        after = await entry(storage, "k")
        assert after.payload == changed.payload
        assert after.payload_sha256 == hashlib.sha256(changed.payload.encode()).hexdigest()
        assert (after.email_hash, after.due_at, after.updated_at) == (BOB, T + 500, T + 10)
        restored = attrs.evolve(
            after,
            payload=before.payload,
            payload_sha256=before.payload_sha256,
            email_hash=ALICE,
            due_at=before.due_at,
            updated_at=before.updated_at,
        )
        assert restored == before

    async def test_amend_never_makes_an_entry_due_before_now(self, storage: Storage) -> None:
        """A hold-back that has passed makes the entry due now, as at enqueue."""
        await enqueue(storage, "k", send_after=T + 100)
        assert await storage.amend(new("k", send_after=T - 50), now=T + 20) is True
        assert (await entry(storage, "k")).due_at == T + 20
        assert [c.key for c in await claim(storage, now=T + 20)] == ["k"]

    async def test_amend_leaves_every_entry_that_is_not_pending_alone(
        self, storage: Storage
    ) -> None:
        """Once claimed (or ended), what may have been sent is never changed: False, untouched."""
        for state in (State.SENDING, State.IN_DOUBT, State.DELIVERED, State.DEAD, State.CANCELLED):
            key = f"k-{state.value}"
            if state is State.CANCELLED:
                await enqueue(storage, key)
                await storage.cancel(key, now=T)
            else:
                await make_state(storage, key, state)
            before = await entry(storage, key)
            assert await storage.amend(new(key, payload='{"changed":1}'), now=T + 3) is False
            assert await entry(storage, key) == before

    async def test_amend_unknown_key_raises(self, storage: Storage) -> None:
        """Amending a key the outbox never had is an OutboxError naming it."""
        with pytest.raises(OutboxError, match="nope"):
            await storage.amend(new("nope"), now=T)
