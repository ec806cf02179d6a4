"""The contract of ``enqueue`` and ``cancel``: one entry per key, forever, and nothing else."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from kit.errors import OutboxError, ValidationError
from kit.outbox import Outbox
from kit.outbox.protocol import Storage
from kit.outbox.types import (
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    ALICE,
    T,
    claim,
    enqueue,
    entry,
    make_state,
    new,
)


def _event(reference: str) -> dict[str, Any]:
    """A valid event body for the outbox's front door."""
    return {
        "type": "order_shipped",
        "customer": {"email": "b@example.org"},
        "channel": {"id": "chl-11111111-2222-3333-4444-555555555555"},
        "transaction": {"reference": reference},
        "system": "contract",
        "systemVersion": "1.0",
    }


class EnqueueContract(ContractBase):
    """Enqueueing, duplicates, hold-back and cancelling."""

    async def test_enqueue_stores_a_pending_entry(self, storage: Storage) -> None:
        """A new entry is pending and due at once, with its payload, its hash and the fields the
        outbox derived, and nothing of a send yet."""
        body = '{"type":"checkout","customer":{"email":"alice@example.com"}}'
        (result,) = await storage.enqueue([new("k1", payload=body)], now=T)
        assert result.key == "k1"
        assert result.duplicate is False

        e = await entry(storage, "k1")
        assert e.id > 0
        assert e.state is State.PENDING
        assert (e.event_type, e.channel_id, e.transaction_reference) == (
            "checkout",
            "chl-1",
            "order-k1",
        )
        assert e.payload == body
        assert e.payload_sha256 == hashlib.sha256(body.encode()).hexdigest()
        assert e.email_hash == ALICE
        assert (e.attempt, e.sends, e.blind_resends) == (0, 0, 0)
        assert e.due_at == e.created_at == e.updated_at == T
        assert e.adopted is False
        for unset in (
            e.first_sent_at,
            e.in_doubt_since,
            e.event_ref,
            e.delivered_at,
            e.last_error,
            e.lease_owner,
            e.lease_expires_at,
        ):
            assert unset is None
        assert e.body() == {"type": "checkout", "customer": {"email": "alice@example.com"}}
        assert await storage.get("nope") is None

    async def test_enqueue_results_follow_input_order(self, storage: Storage) -> None:
        """``enqueue`` answers each entry of a batch in the order given, saying which were already
        there."""
        await enqueue(storage, "b")
        results = await storage.enqueue([new(k) for k in ("c", "b", "a", "d")], now=T + 1)
        assert [(r.key, r.duplicate) for r in results] == [
            ("c", False),
            ("b", True),
            ("a", False),
            ("d", False),
        ]
        assert await storage.enqueue([], now=T) == []

    async def test_duplicate_key_is_a_no_op(self, storage: Storage) -> None:
        """Enqueueing a key again changes nothing: the first payload stays and the entry is not
        touched."""
        await enqueue(storage, "k1", payload='{"v":1}')
        (result,) = await storage.enqueue([new("k1", payload='{"v":2}')], now=T + 5)
        assert result.duplicate is True
        e = await entry(storage, "k1")
        assert e.payload == '{"v":1}'
        assert e.updated_at == T
        assert len(await storage.entries()) == 1

    async def test_duplicate_within_one_batch_counts_once(self, storage: Storage) -> None:
        """A key repeated within one batch is stored once, with its first payload."""
        results = await storage.enqueue(
            [new("a", payload='{"v":1}'), new("b"), new("a", payload='{"v":2}'), new("a")], now=T
        )
        assert [r.duplicate for r in results] == [False, False, True, True]
        assert (await entry(storage, "a")).payload == '{"v":1}'
        assert [e.key for e in await storage.entries()] == ["a", "b"]

    async def test_the_ledger_outlives_the_payload(self, storage: Storage) -> None:
        """A key stays known after its payload is purged: enqueueing it again is a duplicate, never
        a second delivery."""
        await make_state(storage, "k1", State.DELIVERED)
        assert await storage.purge(before=T + 1, now=T + 1) == 1
        (result,) = await storage.enqueue([new("k1")], now=T + 2)
        assert result.duplicate is True
        e = await entry(storage, "k1")
        assert (e.state, e.payload, e.event_ref) == (State.DELIVERED, None, "ref-k1")
        assert await claim(storage, now=T + 100) == []

    async def test_ids_grow_in_insertion_order(self, storage: Storage) -> None:
        """Entry ids grow in the order entries were first stored, duplicates taking none."""
        await enqueue(storage, "z", "y")
        await storage.enqueue([new("y"), new("x")], now=T)
        await enqueue(storage, "a")
        listed = await storage.entries()
        assert [e.key for e in listed] == ["z", "y", "x", "a"]
        ids = [e.id for e in listed]
        assert ids == sorted(ids)
        assert len(set(ids)) == 4

    async def test_hold_back_is_respected_by_claim(self, storage: Storage) -> None:
        """An entry held back by ``send_after`` is not claimed before then; a ``send_after`` in the
        past means now."""
        await enqueue(storage, "later", send_after=T + 60)
        await enqueue(storage, "past", send_after=T - 60)
        assert (await entry(storage, "later")).due_at == T + 60
        assert (await entry(storage, "past")).due_at == T  # never earlier than the enqueue

        assert [c.key for c in await claim(storage, now=T + 59)] == ["past"]
        assert [c.key for c in await claim(storage, now=T + 60)] == ["later"]

    async def test_cancel_only_pending_entries(self, storage: Storage) -> None:
        """Only a pending entry can be cancelled (its payload kept); an entry in any other state is
        left as it was."""
        await enqueue(storage, "p")
        assert await storage.cancel("p", now=T + 1) is True
        e = await entry(storage, "p")
        assert (e.state, e.updated_at) == (State.CANCELLED, T + 1)
        assert e.payload is not None  # cancelling is not purging
        assert await storage.cancel("p", now=T + 2) is False
        assert await claim(storage, now=T + 10) == []

        for state in (State.SENDING, State.IN_DOUBT, State.DELIVERED, State.DEAD):
            key = f"k-{state.value}"
            await make_state(storage, key, state)
            before = await entry(storage, key)
            assert await storage.cancel(key, now=T + 3) is False
            assert await entry(storage, key) == before

    async def test_cancel_unknown_key_raises(self, storage: Storage) -> None:
        """Cancelling a key the outbox never had is an OutboxError naming it."""
        with pytest.raises(OutboxError, match="nope"):
            await storage.cancel("nope", now=T)

    async def test_every_backend_refuses_what_postgresql_cannot_store(
        self, storage: Storage
    ) -> None:
        """A NUL character in a transaction reference or a custom key is a ValidationError on
        every backend, PostgreSQL included, and nothing is stored, so an outbox that took an
        event can always be moved to PostgreSQL (whose text cannot hold a NUL)."""
        app = Outbox(storage, owns_storage=False)  # the backend opens and closes the storage
        with pytest.raises(ValidationError, match=r"transaction\.reference: contains a NUL"):
            await app.enqueue(_event("o-2\x00"))
        with pytest.raises(ValidationError, match="key: contains a NUL"):
            await app.enqueue(_event("o-3"), key="mine\x00")
        assert (await app.stats()).counts[State.PENDING] == 0
