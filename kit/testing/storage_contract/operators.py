"""The operators' commands: retry and drop dead entries, purge payloads, forget a customer."""

from __future__ import annotations

import hashlib

import attrs

from kit.outbox.protocol import Storage
from kit.outbox.types import (
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    ALICE,
    BOB,
    SAFE_ORDER,
    T,
    claim,
    enqueue,
    entry,
    make_state,
    new,
)


class OperatorContract(ContractBase):
    """What operators change, and what they must never touch."""

    async def test_retry_dead_selected_keys(self, storage: Storage) -> None:
        """``retry_dead`` makes the named dead entries pending and due now, with their sends reset
        and the fencing token kept; other states are untouched."""
        for key in ("d1", "d2", "d3"):
            await make_state(storage, key, State.DEAD)
        await make_state(storage, "p", State.PENDING)
        assert await storage.retry_dead(["d1", "d3", "p", "unknown"], now=T + 50) == 2
        for key in ("d1", "d3"):
            e = await entry(storage, key)
            assert (e.state, e.due_at, e.sends, e.updated_at) == (State.PENDING, T + 50, 0, T + 50)
            assert e.attempt == 1  # the fencing token never goes back
        assert (await entry(storage, "d2")).state is State.DEAD
        claimed = await claim(storage, now=T + 50)
        assert sorted(c.key for c in claimed) == ["d1", "d3", "p"]
        assert {c.key: c.attempt for c in claimed} == {"d1": 2, "d3": 2, "p": 1}
        assert await storage.retry_dead([], now=T + 51) == 0

    async def test_retry_dead_all_and_skip_purged(self, storage: Storage) -> None:
        """``retry_dead`` of all dead entries skips those whose payload was purged: there is nothing
        left to send."""
        for key in ("d1", "d2", "gone"):
            await make_state(storage, key, State.DEAD)
        assert await storage.purge(before=T + 1, now=T + 1) == 3
        assert await storage.retry_dead(["gone"], now=T + 2) == 0  # nothing left to send
        await make_state(storage, "d3", State.DEAD, now=T + 5)
        assert await storage.retry_dead(None, now=T + 6) == 1
        assert (await entry(storage, "d3")).state is State.PENDING
        assert (await entry(storage, "gone")).state is State.DEAD

    async def test_drop_dead(self, storage: Storage) -> None:
        """``drop_dead`` cancels dead entries and removes their payload and customer hash, keeping
        the payload hash and error as the ledger."""
        for key in ("d1", "d2", "d3"):
            await make_state(storage, key, State.DEAD)
        await make_state(storage, "p", State.PENDING)
        assert await storage.drop_dead(["d2", "p", "unknown"], now=T + 1) == 1
        e = await entry(storage, "d2")
        assert (e.state, e.payload, e.updated_at) == (State.CANCELLED, None, T + 1)
        assert e.email_hash is None  # no customer data left behind with the payload
        assert (e.payload_sha256, e.last_error) == (
            hashlib.sha256(new("d2").payload.encode()).hexdigest(),
            "400 bad request",
        )
        assert await storage.drop_dead(None, now=T + 2) == 2
        assert {(await entry(storage, k)).state for k in ("d1", "d3")} == {State.CANCELLED}
        assert (await entry(storage, "p")).state is State.PENDING
        assert await storage.drop_dead(None, now=T + 3) == 0

    async def test_purge_keeps_the_ledger_and_refuses_non_terminal_entries(
        self, storage: Storage
    ) -> None:
        """``purge`` removes payloads and customer hashes of finished entries older than the cutoff,
        and nothing of entries that may still be sent nor their attempt logs."""
        await make_state(storage, "recent", State.DELIVERED, now=T + 100)
        for state in SAFE_ORDER:
            await make_state(storage, state.value, state, now=T)
        old = {e.key: e for e in await storage.entries()}
        log = await storage.attempts(State.DELIVERED.value)

        assert await storage.purge(before=T + 50, now=T + 200) == 3
        for state in State:
            e = await entry(storage, state.value)
            if state in (State.DELIVERED, State.DEAD, State.CANCELLED):
                assert old[state.value].email_hash is not None
                assert e == attrs.evolve(old[state.value], payload=None, email_hash=None)
            else:
                assert e == old[state.value]  # never purged while it may still be sent
        assert (await entry(storage, "recent")).payload is not None
        assert await storage.attempts(State.DELIVERED.value) == log
        assert await storage.purge(before=T + 50, now=T + 300) == 0

    async def test_forget_customer(self, storage: Storage) -> None:
        """``forget_customer`` removes a customer's payloads and hash, cancels their entries not
        delivered, skips an entry in flight (counted, for a later call), leaves other customers
        alone, and finds nothing when asked again."""
        for state in (State.IN_DOUBT, State.DEAD, State.DELIVERED, State.SENDING, State.PENDING):
            await make_state(storage, f"alice-{state.value}", state)
        await enqueue(storage, "bob", email_hash=BOB)
        await enqueue(storage, "anon", email_hash=None)

        result = await storage.forget_customer(ALICE, now=T + 5)
        assert (result.purged, result.skipped_in_flight) == (4, 1)
        for key, state in [
            ("alice-pending", State.CANCELLED),
            ("alice-in_doubt", State.CANCELLED),
            ("alice-dead", State.CANCELLED),
            ("alice-delivered", State.DELIVERED),
        ]:
            e = await entry(storage, key)
            assert (e.state, e.payload, e.email_hash) == (state, None, None), key
            assert (e.lease_owner, e.lease_expires_at) == (None, None)
            assert e.payload_sha256 is not None
        assert (await entry(storage, "alice-pending")).updated_at == T + 5
        assert (await entry(storage, "alice-delivered")).updated_at == T  # only the payload went
        sending = await entry(storage, "alice-sending")
        assert (sending.state, sending.email_hash) == (State.SENDING, ALICE)
        assert sending.payload is not None
        assert (await entry(storage, "bob")).payload is not None

        again = await storage.forget_customer(ALICE, now=T + 6)
        assert (again.purged, again.skipped_in_flight) == (0, 1)
        assert await storage.forget_customer("0" * 64, now=T + 6) == type(result)(
            purged=0, skipped_in_flight=0
        )
