"""The storage contract of ``amend`` (kit/outbox/protocol.py), on every backend.

The rule (one place: ``amend_entry`` in kit/outbox/memory.py, mirrored by each backend's
SQL): only a ``pending`` entry changes; it takes the new payload, payload hash, e-mail hash and
a due time of ``max(now, send_after)``; key, type, channel, reference and counters stay.
"""

from __future__ import annotations

import hashlib

import attrs
import pytest

from kit.errors import OutboxError
from kit.outbox.protocol import Storage
from kit.outbox.types import State

from .test_storage import ALICE, T, claim, enqueue, entry, make_state, new

BOB = hashlib.sha256(b"bob@example.com").hexdigest()


async def test_amend_replaces_a_pending_entrys_payload_and_hold_back(storage: Storage) -> None:
    await enqueue(storage, "k", send_after=T + 100)
    before = await entry(storage, "k")
    changed = new("k", payload='{"type":"checkout","v":2}', email_hash=BOB, send_after=T + 500)

    assert await storage.amend(changed, now=T + 10) is True

    after = await entry(storage, "k")
    assert after.payload == changed.payload
    assert after.payload_sha256 == hashlib.sha256(changed.payload.encode()).hexdigest()
    assert (after.email_hash, after.due_at, after.updated_at) == (BOB, T + 500, T + 10)
    assert (
        attrs.evolve(
            after,
            payload=before.payload,
            payload_sha256=before.payload_sha256,
            email_hash=ALICE,
            due_at=before.due_at,
            updated_at=before.updated_at,
        )
        == before
    )


async def test_amend_never_makes_an_entry_due_before_now(storage: Storage) -> None:
    await enqueue(storage, "k", send_after=T + 100)
    assert await storage.amend(new("k", send_after=T - 50), now=T + 20) is True
    assert (await entry(storage, "k")).due_at == T + 20
    assert [c.key for c in await claim(storage, now=T + 20)] == ["k"]


async def test_amend_leaves_every_entry_that_is_not_pending_alone(storage: Storage) -> None:
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


async def test_amend_unknown_key_raises(storage: Storage) -> None:
    with pytest.raises(OutboxError, match="nope"):
        await storage.amend(new("nope"), now=T)
