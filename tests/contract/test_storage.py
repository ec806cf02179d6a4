"""The storage contract (kit/outbox/protocol.py), written once and run against every backend.

Where the protocol leaves a choice open, these tests pin the one every backend makes:

* ``due_at`` of a new entry is ``max(now, send_after)``.
* A completion ends its attempt once: it applies only while the attempt is current, the entry is
  ``sending``/``in_doubt`` and the claim's lease is still recorded (a repeat returns False).
* ``Delivered`` clears ``last_error``; ``Release`` keeps it; the other outcomes store their text.
* ``retry_dead`` skips dead entries whose payload was purged (there is nothing left to send).
* ``purge`` and the payload scrub of ``forget_customer`` do not touch ``updated_at``; state
  changes do. ``forget_customer`` also clears ``email_hash``, so asking again finds nothing.
* ``stats().last_error`` is the error of the most recently updated entry that has one.
* ``load`` gives entries new ids in the order of the records; everything else is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from kit.errors import OutboxError, OutboxMovedError
from kit.outbox.memory import InMemoryStorage
from kit.outbox.protocol import Storage, SupportsExternalTransaction
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.transitions import TRANSITIONS, Due, ErrorText, OutcomeKind, Since
from kit.outbox.types import (
    HOLD_AUTH,
    HOLD_PACE,
    AttemptKind,
    AttemptRecord,
    Claimed,
    ClaimMode,
    Completion,
    Dead,
    Delivered,
    Entry,
    EntryRecord,
    Hold,
    InDoubt,
    NewEntry,
    Outcome,
    Release,
    Resend,
    Retry,
    State,
)

from .conftest import Backend
from .external import sqlite_external

StorageFactory = Callable[[], Awaitable[Storage]]  # see conftest.storage_factory

T = 1_700_000_000.0  # an arbitrary "now"; every test passes time explicitly
LEASE = 30.0
ALICE = hashlib.sha256(b"alice@example.com").hexdigest()
BOB = hashlib.sha256(b"bob@example.com").hexdigest()


def new(
    key: str,
    *,
    payload: str | None = None,
    email_hash: str | None = ALICE,
    send_after: float | None = None,
) -> NewEntry:
    return NewEntry(
        key=key,
        payload=payload if payload is not None else f'{{"type":"checkout","ref":"{key}"}}',
        event_type="checkout",
        channel_id="chl-1",
        transaction_reference=f"order-{key}",
        email_hash=email_hash,
        send_after=send_after,
    )


def record(
    attempt: int,
    *,
    kind: AttemptKind = AttemptKind.SEND,
    outcome: str = "delivered",
    status: int | None = 202,
    error: str | None = None,
    started: float = T,
) -> AttemptRecord:
    return AttemptRecord(
        attempt=attempt,
        kind=kind,
        started_at=started,
        duration_ms=12.5,
        outcome=outcome,
        http_status=status,
        error=error,
    )


async def enqueue(storage: Storage, *keys: str, now: float = T, **kw: Any) -> None:
    results = await storage.enqueue([new(k, **kw) for k in keys], now=now)
    assert [r.duplicate for r in results] == [False] * len(keys)


async def claim(
    storage: Storage, *, now: float, limit: int = 100, owner: str = "w1", lease: float = LEASE
) -> list[Claimed]:
    return await storage.claim(owner=owner, limit=limit, lease_seconds=lease, now=now)


async def claim_one(
    storage: Storage,
    key: str,
    *,
    now: float,
    owner: str = "w1",
    lease: float = LEASE,
    limit: int = 100,
) -> Claimed:
    """Claim and insist that ``key`` is the only entry handed out."""
    claimed = await claim(storage, now=now, owner=owner, lease=lease, limit=limit)
    assert [c.key for c in claimed] == [key]
    return claimed[0]


async def finish(
    storage: Storage,
    claimed: Claimed,
    outcome: Outcome,
    *,
    now: float,
    rec: AttemptRecord | None = None,
) -> bool:
    (applied,) = await storage.finish(
        [Completion(claimed.key, claimed.attempt, outcome, rec)], now=now
    )
    return applied


async def entry(storage: Storage, key: str) -> Entry:
    found = await storage.get(key)
    assert found is not None, key
    return found


# Creating entries in this order never claims an earlier one by accident: claimed states first
# (their leases outlive the test's clock unless it says otherwise), unclaimed ones last.
SAFE_ORDER = (
    State.SENDING,
    State.IN_DOUBT,
    State.DELIVERED,
    State.DEAD,
    State.CANCELLED,
    State.PENDING,
)


async def make_state(
    storage: Storage,
    key: str,
    state: State,
    *,
    now: float = T,
    lease: float = LEASE,
    send_after: float | None = None,
) -> None:
    """Drive a fresh entry to ``state`` through the public API only."""
    await enqueue(storage, key, now=now, send_after=send_after)
    if state is State.PENDING:
        return
    if state is State.CANCELLED:
        assert await storage.cancel(key, now=now)
        return
    c = await claim_one(storage, key, now=now, lease=lease)
    if state is State.SENDING:
        return
    outcomes: dict[State, Outcome] = {
        State.DELIVERED: Delivered(f"ref-{key}"),
        State.DEAD: Dead("400 bad request"),
        State.IN_DOUBT: InDoubt(due_at=now + 1000, error="timeout"),
    }
    outcome = outcomes[state]
    assert await finish(storage, c, outcome, now=now, rec=record(c.attempt))
    assert (await entry(storage, key)).state is state


# -- enqueue --------------------------------------------------------------------------------


async def test_enqueue_stores_a_pending_entry(storage: Storage) -> None:
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


async def test_enqueue_results_follow_input_order(storage: Storage) -> None:
    await enqueue(storage, "b")
    results = await storage.enqueue([new(k) for k in ("c", "b", "a", "d")], now=T + 1)
    assert [(r.key, r.duplicate) for r in results] == [
        ("c", False),
        ("b", True),
        ("a", False),
        ("d", False),
    ]
    assert await storage.enqueue([], now=T) == []


async def test_duplicate_key_is_a_no_op(storage: Storage) -> None:
    await enqueue(storage, "k1", payload='{"v":1}')
    (result,) = await storage.enqueue([new("k1", payload='{"v":2}')], now=T + 5)
    assert result.duplicate is True
    e = await entry(storage, "k1")
    assert e.payload == '{"v":1}'
    assert e.updated_at == T
    assert len(await storage.entries()) == 1


async def test_duplicate_within_one_batch_counts_once(storage: Storage) -> None:
    results = await storage.enqueue(
        [new("a", payload='{"v":1}'), new("b"), new("a", payload='{"v":2}'), new("a")], now=T
    )
    assert [r.duplicate for r in results] == [False, False, True, True]
    assert (await entry(storage, "a")).payload == '{"v":1}'
    assert [e.key for e in await storage.entries()] == ["a", "b"]


async def test_the_ledger_outlives_the_payload(storage: Storage) -> None:
    await make_state(storage, "k1", State.DELIVERED)
    assert await storage.purge(before=T + 1, now=T + 1) == 1
    (result,) = await storage.enqueue([new("k1")], now=T + 2)
    assert result.duplicate is True
    e = await entry(storage, "k1")
    assert (e.state, e.payload, e.event_ref) == (State.DELIVERED, None, "ref-k1")
    assert await claim(storage, now=T + 100) == []


async def test_ids_grow_in_insertion_order(storage: Storage) -> None:
    await enqueue(storage, "z", "y")
    await storage.enqueue([new("y"), new("x")], now=T)
    await enqueue(storage, "a")
    listed = await storage.entries()
    assert [e.key for e in listed] == ["z", "y", "x", "a"]
    ids = [e.id for e in listed]
    assert ids == sorted(ids)
    assert len(set(ids)) == 4


async def test_hold_back_is_respected_by_claim(storage: Storage) -> None:
    await enqueue(storage, "later", send_after=T + 60)
    await enqueue(storage, "past", send_after=T - 60)
    assert (await entry(storage, "later")).due_at == T + 60
    assert (await entry(storage, "past")).due_at == T  # never earlier than the enqueue

    assert [c.key for c in await claim(storage, now=T + 59)] == ["past"]
    assert [c.key for c in await claim(storage, now=T + 60)] == ["later"]


# -- cancel ---------------------------------------------------------------------------------


async def test_cancel_only_pending_entries(storage: Storage) -> None:
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


async def test_cancel_unknown_key_raises(storage: Storage) -> None:
    with pytest.raises(OutboxError, match="nope"):
        await storage.cancel("nope", now=T)


# -- claim ----------------------------------------------------------------------------------


async def test_claim_hands_out_a_lease(storage: Storage) -> None:
    await enqueue(storage, "k1", payload='{"x":1}')
    (c,) = await claim(storage, now=T + 1, owner="flusher-a", lease=45.0)
    assert c == Claimed(
        key="k1",
        attempt=1,
        mode=ClaimMode.SEND,
        payload='{"x":1}',
        event_type="checkout",
        channel_id="chl-1",
        transaction_reference="order-k1",
        sends=0,
        first_sent_at=T + 1,
        in_doubt_since=None,
        lease_expires_at=T + 46,
    )
    e = await entry(storage, "k1")
    assert e.state is State.SENDING
    assert (e.attempt, e.lease_owner, e.lease_expires_at) == (1, "flusher-a", T + 46)
    assert (e.first_sent_at, e.updated_at) == (T + 1, T + 1)
    # a live lease is never handed out again
    assert await claim(storage, now=T + 45.5) == []


async def test_claim_oldest_due_first_and_limit(storage: Storage) -> None:
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


async def test_expired_leases_are_due_when_they_ran_out(storage: Storage) -> None:
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
    storage: Storage,
) -> None:
    await enqueue(storage, "k1")
    c1 = await claim_one(storage, "k1", now=T + 1)
    assert await finish(storage, c1, Release(), now=T + 2)
    c2 = await claim_one(storage, "k1", now=T + 3)
    assert await finish(storage, c2, Retry(due_at=T + 10, error="503"), now=T + 4)
    c3 = await claim_one(storage, "k1", now=T + 10)
    assert [c.attempt for c in (c1, c2, c3)] == [1, 2, 3]
    assert [c.first_sent_at for c in (c1, c2, c3)] == [T + 1] * 3
    assert (await entry(storage, "k1")).first_sent_at == T + 1


async def test_expired_sending_lease_becomes_in_doubt_and_is_reconciled(storage: Storage) -> None:
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


async def test_in_doubt_waits_for_due_time_and_for_live_leases(storage: Storage) -> None:
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
    storage: Storage, storage_factory: StorageFactory
) -> None:
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
    storage: Storage, storage_factory: StorageFactory
) -> None:
    other = await storage_factory()
    await enqueue(storage, "k1")
    zombie = await claim_one(storage, "k1", now=T, owner="zombie")
    fresh = await claim_one(other, "k1", now=T + LEASE + 1, owner="fresh")
    assert fresh.mode is ClaimMode.RECONCILE
    before = await entry(storage, "k1")

    assert (
        await finish(storage, zombie, Delivered("evt-zombie"), now=T + 40, rec=record(1)) is False
    )
    assert await entry(storage, "k1") == before
    assert await storage.attempts("k1") == []

    adopted = record(2, kind=AttemptKind.RECONCILE, outcome="adopted", status=200)
    assert await finish(other, fresh, Delivered("evt-1", adopted=True), now=T + 41, rec=adopted)
    e = await entry(storage, "k1")
    assert (e.state, e.event_ref, e.adopted) == (State.DELIVERED, "evt-1", True)
    assert await storage.attempts("k1") == [adopted]


# -- finish: every outcome ------------------------------------------------------------------


async def test_delivered(storage: Storage) -> None:
    await enqueue(storage, "k1")
    c = await claim_one(storage, "k1", now=T)
    assert await finish(storage, c, Retry(due_at=T + 5, error="HTTP 503"), now=T + 1)
    c = await claim_one(storage, "k1", now=T + 5)
    assert await finish(storage, c, Delivered("evt-123"), now=T + 6, rec=record(c.attempt))
    e = await entry(storage, "k1")
    assert e.state is State.DELIVERED
    assert (e.event_ref, e.delivered_at, e.adopted) == ("evt-123", T + 6, False)
    assert (e.lease_owner, e.lease_expires_at) == (None, None)
    assert e.last_error is None  # a delivery clears the error of an earlier attempt
    assert (e.updated_at, e.attempt, e.sends) == (T + 6, 2, 1)
    assert await claim(storage, now=T + 1000) == []


async def test_delivered_adopted_by_reconciliation(storage: Storage) -> None:
    await make_state(storage, "k1", State.IN_DOUBT)
    c = await claim_one(storage, "k1", now=T + 1000)
    rec = record(c.attempt, kind=AttemptKind.RECONCILE, outcome="adopted", status=200)
    assert await finish(storage, c, Delivered("evt-9", adopted=True), now=T + 1001, rec=rec)
    e = await entry(storage, "k1")
    assert (e.state, e.event_ref, e.adopted, e.delivered_at) == (
        State.DELIVERED,
        "evt-9",
        True,
        T + 1001,
    )
    assert e.sends == 1  # only the first, SEND attempt counted
    assert (await storage.stats()).adopted == 1


async def test_retry(storage: Storage) -> None:
    await enqueue(storage, "k1")
    c = await claim_one(storage, "k1", now=T)
    rec = record(1, outcome="retry", status=503, error="HTTP 503")
    assert await finish(storage, c, Retry(due_at=T + 60, error="HTTP 503"), now=T + 1, rec=rec)
    e = await entry(storage, "k1")
    assert (e.state, e.due_at, e.last_error) == (State.PENDING, T + 60, "HTTP 503")
    assert (e.lease_owner, e.lease_expires_at, e.attempt, e.sends) == (None, None, 1, 1)
    assert await claim(storage, now=T + 59) == []
    c2 = await claim_one(storage, "k1", now=T + 60)
    assert (c2.mode, c2.attempt, c2.sends) == (ClaimMode.SEND, 2, 1)


async def test_in_doubt_keeps_the_first_in_doubt_since(storage: Storage) -> None:
    await make_state(storage, "k1", State.IN_DOUBT, now=T)
    assert (await entry(storage, "k1")).in_doubt_since == T
    c = await claim_one(storage, "k1", now=T + 1000)
    rec = record(c.attempt, kind=AttemptKind.RECONCILE, outcome="not_found_yet", status=200)
    assert await finish(
        storage, c, InDoubt(due_at=T + 2000, error="not found yet"), now=T + 1001, rec=rec
    )
    e = await entry(storage, "k1")
    assert (e.state, e.due_at, e.in_doubt_since) == (State.IN_DOUBT, T + 2000, T)
    assert e.last_error == "not found yet"
    assert e.sends == 1  # reconciliation is not a send


async def test_dead(storage: Storage) -> None:
    await enqueue(storage, "k1")
    c = await claim_one(storage, "k1", now=T)
    assert await finish(storage, c, Dead("HTTP 400: channel unknown"), now=T + 1)
    e = await entry(storage, "k1")
    assert (e.state, e.last_error, e.lease_owner) == (State.DEAD, "HTTP 400: channel unknown", None)
    assert e.payload is not None
    assert await claim(storage, now=T + 10_000) == []


async def test_resend_counts_a_blind_resend(storage: Storage) -> None:
    await make_state(storage, "k1", State.IN_DOUBT)
    c = await claim_one(storage, "k1", now=T + 1000)
    assert await finish(
        storage, c, Resend(due_at=T + 1010, reason="nothing found in 1h"), now=T + 1001
    )
    e = await entry(storage, "k1")
    assert (e.state, e.due_at, e.blind_resends) == (State.PENDING, T + 1010, 1)
    assert (e.in_doubt_since, e.last_error, e.lease_owner) == (None, "nothing found in 1h", None)
    c2 = await claim_one(storage, "k1", now=T + 1010)
    assert (c2.mode, c2.in_doubt_since, c2.first_sent_at) == (ClaimMode.SEND, None, T)
    assert (await storage.stats()).blind_resends == 1


async def test_release_of_a_send_claim(storage: Storage) -> None:
    await enqueue(storage, "k1")
    c = await claim_one(storage, "k1", now=T)
    assert await finish(storage, c, Retry(due_at=T, error="boom"), now=T)
    c = await claim_one(storage, "k1", now=T + 1)
    assert await finish(storage, c, Release(), now=T + 2)
    e = await entry(storage, "k1")
    assert (e.state, e.due_at, e.lease_owner, e.lease_expires_at) == (
        State.PENDING,
        T + 2,
        None,
        None,
    )
    assert (e.attempt, e.sends, e.last_error) == (2, 0, "boom")
    c3 = await claim_one(storage, "k1", now=T + 2)
    assert (c3.mode, c3.attempt) == (ClaimMode.SEND, 3)


async def test_release_of_a_reconcile_claim(storage: Storage) -> None:
    await make_state(storage, "k1", State.IN_DOUBT)
    c = await claim_one(storage, "k1", now=T + 1000)
    assert await finish(storage, c, Release(), now=T + 1001)
    e = await entry(storage, "k1")
    assert (e.state, e.due_at, e.lease_owner, e.in_doubt_since) == (
        State.IN_DOUBT,
        T + 1001,
        None,
        T,
    )
    c2 = await claim_one(storage, "k1", now=T + 1001)
    assert c2.mode is ClaimMode.RECONCILE


# What each outcome of the table leaves in last_error (where its row says SET), and its due time.
_TEXTS = {
    OutcomeKind.DELIVERED: None,
    OutcomeKind.RETRY: "retry text",
    OutcomeKind.IN_DOUBT: "in doubt text",
    OutcomeKind.DEAD: "dead text",
    OutcomeKind.RESEND: "resend text",
    OutcomeKind.RELEASE: None,
}


def _outcome_of(kind: OutcomeKind, due: float) -> Outcome:
    text = str(_TEXTS[kind])
    outcomes: dict[OutcomeKind, Outcome] = {
        OutcomeKind.DELIVERED: Delivered("evt-table", adopted=True),
        OutcomeKind.RETRY: Retry(due_at=due, error=text),
        OutcomeKind.IN_DOUBT: InDoubt(due_at=due, error=text),
        OutcomeKind.DEAD: Dead(text),
        OutcomeKind.RESEND: Resend(due_at=due, reason=text),
        OutcomeKind.RELEASE: Release(),
    }
    return outcomes[kind]


@pytest.mark.parametrize(
    ("kind", "start"), list(TRANSITIONS), ids=[f"{k}-from-{s}" for k, s in TRANSITIONS]
)
async def test_every_row_of_the_transition_table(
    storage: Storage, kind: OutcomeKind, start: State
) -> None:
    """Each backend does to a claimed entry exactly what the transition table says for the
    outcome and the state the claim found, field by field, and nothing else."""
    await enqueue(storage, "k")
    if start is State.SENDING:  # a SEND claim of an entry that failed once before
        c = await claim_one(storage, "k", now=T)
        assert await finish(storage, c, Retry(due_at=T + 1, error="earlier"), now=T)
        c = await claim_one(storage, "k", now=T + 1)
        now, rec = T + 2, record(c.attempt)
    else:  # a RECONCILE claim of an entry in doubt since T
        c = await claim_one(storage, "k", now=T)
        assert await finish(storage, c, InDoubt(due_at=T + 1000, error="timeout"), now=T)
        c = await claim_one(storage, "k", now=T + 1000)
        now, rec = T + 1001, record(c.attempt, kind=AttemptKind.RECONCILE, outcome="x")
    before = await entry(storage, "k")
    assert before.state is start
    outcome = _outcome_of(kind, due=now + 50)
    assert await finish(storage, c, outcome, now=now, rec=rec)

    row = TRANSITIONS[kind, start]
    due = {Due.KEEP: before.due_at, Due.OUTCOME: now + 50, Due.NOW: now}[row.due_at]
    since = {
        Since.KEEP: before.in_doubt_since,
        Since.SET_IF_UNSET: before.in_doubt_since if before.in_doubt_since else now,
        Since.CLEAR: None,
    }[row.in_doubt_since]
    delivery = ("evt-table", now, True) if row.records_delivery else (None, None, False)
    expected = attrs.evolve(
        before,
        state=row.to,
        due_at=due,
        in_doubt_since=since,
        event_ref=delivery[0],
        delivered_at=delivery[1],
        adopted=delivery[2],
        blind_resends=before.blind_resends + row.blind_resend,
        sends=before.sends + (rec.kind is AttemptKind.SEND),
        last_error=before.last_error if row.last_error is ErrorText.KEEP else _TEXTS[kind],
        lease_owner=None,
        lease_expires_at=None,
        updated_at=now,
    )
    assert await entry(storage, "k") == expected
    assert (await storage.attempts("k"))[-1] == rec


async def test_fencing_stale_completions_change_nothing(storage: Storage) -> None:
    await enqueue(storage, "k1")
    c = await claim_one(storage, "k1", now=T)
    before = await entry(storage, "k1")
    for attempt in (0, c.attempt + 1):
        stale = Completion("k1", attempt, Delivered("evt-x"), record(attempt))
        assert await storage.finish([stale], now=T + 1) == [False]
    assert await storage.finish([Completion("ghost", 1, Delivered("evt-x"))], now=T + 1) == [False]
    assert await entry(storage, "k1") == before
    assert await storage.attempts("k1") == []

    # the attempt ends once: a repeat of the same completion is stale too
    assert await finish(storage, c, InDoubt(due_at=T + 50, error="timeout"), now=T + 2)
    after = await entry(storage, "k1")
    assert await finish(storage, c, Delivered("evt-late"), now=T + 3, rec=record(1)) is False
    assert await entry(storage, "k1") == after
    # not sending/in_doubt any more (pending after a retry): refused even with the right attempt
    c2 = await claim_one(storage, "k1", now=T + 50)
    assert await finish(storage, c2, Resend(due_at=T + 60, reason="absent"), now=T + 51)
    assert await finish(storage, c2, Delivered("evt-y"), now=T + 52) is False
    assert (await entry(storage, "k1")).state is State.PENDING


async def test_finish_batch_reports_each_completion_in_order(storage: Storage) -> None:
    await enqueue(storage, "a", "b", "c")
    ca, cb, cc = await claim(storage, now=T)
    results = await storage.finish(
        [
            Completion("a", ca.attempt, Delivered("evt-a"), record(ca.attempt)),
            Completion("b", cb.attempt + 7, Delivered("evt-b")),  # stale
            Completion(
                "c",
                cc.attempt,
                Retry(due_at=T + 9, error="429"),
                record(cc.attempt, outcome="retry", status=429),
            ),
            Completion("a", ca.attempt, Dead("late duplicate")),  # the attempt already ended
            Completion("zzz", 1, Delivered("evt-z")),  # unknown
        ],
        now=T + 1,
    )
    assert results == [True, False, True, False, False]
    assert [(await entry(storage, k)).state for k in "abc"] == [
        State.DELIVERED,
        State.SENDING,
        State.PENDING,
    ]
    assert await storage.finish([], now=T) == []


async def test_attempt_log_contents_and_order(storage: Storage) -> None:
    await enqueue(storage, "k1", "other")
    log = [
        record(1, outcome="retry", status=503, error="HTTP 503", started=T),
        record(2, outcome="in_doubt", status=None, error="read timeout", started=T + 10),
        record(3, kind=AttemptKind.RECONCILE, outcome="adopted", status=200, started=T + 2000),
    ]
    c1, c_other = await claim(storage, now=T)
    assert c1.key == "k1"
    assert await finish(storage, c_other, Delivered("evt-o"), now=T, rec=record(1, started=T - 1))
    assert await finish(storage, c1, Retry(due_at=T + 10, error="HTTP 503"), now=T + 1, rec=log[0])
    c2 = await claim_one(storage, "k1", now=T + 10)
    assert await finish(
        storage, c2, InDoubt(due_at=T + 2000, error="read timeout"), now=T + 40, rec=log[1]
    )
    c3 = await claim_one(storage, "k1", now=T + 2000)
    assert await finish(storage, c3, Release(), now=T + 2001)  # no record: nothing logged
    c4 = await claim_one(storage, "k1", now=T + 2001)
    log[2] = attrs.evolve(log[2], attempt=c4.attempt)
    assert await finish(storage, c4, Delivered("evt-1", adopted=True), now=T + 2002, rec=log[2])

    assert await storage.attempts("k1") == log
    assert await storage.attempts("other") == [record(1, started=T - 1)]
    assert await storage.attempts("nope") == []


async def test_sends_counts_send_records_only(storage: Storage) -> None:
    await enqueue(storage, "k1")
    c = await claim_one(storage, "k1", now=T)
    assert c.sends == 0
    assert await finish(
        storage, c, InDoubt(due_at=T, error="timeout"), now=T, rec=record(1, outcome="in_doubt")
    )
    c = await claim_one(storage, "k1", now=T + 1)
    rec = record(c.attempt, kind=AttemptKind.RECONCILE, outcome="not_found_yet")
    assert await finish(storage, c, Resend(due_at=T + 2, reason="absent"), now=T + 1, rec=rec)
    c = await claim_one(storage, "k1", now=T + 2)
    assert c.sends == 1
    assert await finish(storage, c, Retry(due_at=T + 3, error="503"), now=T + 2)  # no record
    c = await claim_one(storage, "k1", now=T + 3)
    assert c.sends == 1
    assert await finish(
        storage, c, Dead("400"), now=T + 3, rec=record(c.attempt, outcome="dead", status=400)
    )
    assert (await entry(storage, "k1")).sends == 2


# -- operators ------------------------------------------------------------------------------


async def test_retry_dead_selected_keys(storage: Storage) -> None:
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


async def test_retry_dead_all_and_skip_purged(storage: Storage) -> None:
    for key in ("d1", "d2", "gone"):
        await make_state(storage, key, State.DEAD)
    assert await storage.purge(before=T + 1, now=T + 1) == 3
    assert await storage.retry_dead(["gone"], now=T + 2) == 0  # nothing left to send
    await make_state(storage, "d3", State.DEAD, now=T + 5)
    assert await storage.retry_dead(None, now=T + 6) == 1
    assert (await entry(storage, "d3")).state is State.PENDING
    assert (await entry(storage, "gone")).state is State.DEAD


async def test_drop_dead(storage: Storage) -> None:
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


async def test_purge_keeps_the_ledger_and_refuses_non_terminal_entries(storage: Storage) -> None:
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


async def test_forget_customer(storage: Storage) -> None:
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


# -- holds ----------------------------------------------------------------------------------


async def test_holds(storage: Storage) -> None:
    assert await storage.holds(now=T) == []
    pace = Hold(name=HOLD_PACE, until=T + 30, reason="429 Retry-After: 30")
    await storage.set_hold(pace)
    await storage.set_hold(Hold(name=HOLD_AUTH, until=T + 600, reason="401 from token endpoint"))
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


async def test_claim_with_holds_claims_and_reads_the_holds_at_once(storage: Storage) -> None:
    """What ``claim`` hands out, plus the holds in force as the claim saw them."""
    await enqueue(storage, "a", "b")
    pace = Hold(name=HOLD_PACE, until=T + 5, reason="429")
    await storage.set_hold(pace)
    await storage.set_hold(Hold(name=HOLD_AUTH, until=T - 1, reason="over"))
    claimed, holds = await storage.claim_with_holds(owner="w1", limit=1, lease_seconds=LEASE, now=T)
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
    claimed, holds = await storage.claim_with_holds(owner="w2", limit=5, lease_seconds=LEASE, now=T)
    assert ([c.key for c in claimed], holds) == (["b"], [])


async def test_a_moved_outbox_takes_no_new_entries_and_hands_none_out(storage: Storage) -> None:
    """Once migrate-outbox has moved the outbox, no flusher sends from it again, so an entry
    accepted here would never be sent: one entry, a batch, a batch large enough for
    PostgreSQL's COPY and duplicates are all refused, naming where the outbox went, and nothing
    is stored. A claim is refused too (claiming nothing), so a flusher stops with that error."""
    await enqueue(storage, "before")
    assert await storage.moved_to() is None
    await storage.set_moved("postgresql://elsewhere/shop")
    assert await storage.moved_to() == "postgresql://elsewhere/shop"
    for keys in (["one"], ["a", "b"], [f"bulk-{i}" for i in range(120)], ["before"]):
        with pytest.raises(OutboxMovedError, match="moved to postgresql://elsewhere/shop") as err:
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


# -- enqueue inside the application's own transaction -----------------------------------


async def test_enqueue_in_commits_and_rolls_back_with_the_callers_transaction(
    backend: Backend,
) -> None:
    """Entries enqueued on the application's own connection become visible to the outbox when
    the application commits, and vanish when it rolls back; duplicates are reported as by
    ``enqueue``, and a moved outbox refuses them as well."""
    storage = backend.storage
    if not isinstance(storage, SupportsExternalTransaction):
        pytest.skip(f"{backend.name}: no external transaction to enqueue in")
    if backend.external is None:  # an in-memory database is private to its one connection
        async with sqlite_external(":memory:") as app:
            await app.begin()
            with pytest.raises(OutboxError, match="in-memory"):
                await storage.enqueue_in(app.connection, [new("a")], now=T)
        return
    await enqueue(storage, "known")
    async with backend.external() as app:
        await app.begin()
        results = await storage.enqueue_in(
            app.connection, [new("a"), new("a"), new("known")], now=T
        )
        assert [(r.key, r.duplicate) for r in results] == [
            ("a", False),
            ("a", True),
            ("known", True),
        ]
        assert await storage.get("a") is None  # not committed yet
        await app.commit()
        assert (await entry(storage, "a")).state is State.PENDING

        await app.begin()
        assert not (await storage.enqueue_in(app.connection, [new("b")], now=T))[0].duplicate
        assert await storage.enqueue_in(app.connection, [], now=T) == []
        await app.rollback()
        assert await storage.get("b") is None

        await storage.set_moved("postgresql://elsewhere/shop")
        await app.begin()
        for keys in (["c"], ["c", "d"], ["known"]):
            with pytest.raises(OutboxMovedError, match="moved to postgresql://elsewhere/shop"):
                await storage.enqueue_in(app.connection, [new(k) for k in keys], now=T)
        await app.rollback()
    assert [e.key for e in await storage.entries()] == ["known", "a"]


# -- reading --------------------------------------------------------------------------------


async def test_stats(storage: Storage) -> None:
    empty = await storage.stats()
    assert empty.counts == dict.fromkeys(State, 0)
    assert (empty.oldest_pending_created_at, empty.last_error) == (None, None)
    assert empty.earliest_due_at is None
    assert (empty.blind_resends, empty.adopted) == (0, 0)

    await make_state(storage, "dead", State.DEAD, now=T + 1)
    await make_state(storage, "sending", State.SENDING, now=T + 2)
    await make_state(storage, "delivered", State.DELIVERED, now=T + 3)
    await make_state(storage, "p-old", State.PENDING, now=T + 4)
    await make_state(storage, "p-new", State.PENDING, now=T + 5)
    s = await storage.stats()
    assert s.counts == {
        State.PENDING: 2,
        State.SENDING: 1,
        State.IN_DOUBT: 0,
        State.DELIVERED: 1,
        State.DEAD: 1,
        State.CANCELLED: 0,
    }
    assert s.oldest_pending_created_at == T + 4
    assert s.earliest_due_at == T + 4
    assert s.last_error == "400 bad request"

    c = await claim_one(storage, "p-old", now=T + 10, limit=1)
    assert await finish(storage, c, Retry(due_at=T + 20, error="HTTP 502"), now=T + 11)
    s = await storage.stats()
    assert s.last_error == "HTTP 502"
    # Backing off: p-old is still the oldest pending entry, but p-new is due earliest.
    assert (s.oldest_pending_created_at, s.earliest_due_at) == (T + 4, T + 5)


async def test_entries_filter_and_pagination(storage: Storage) -> None:
    keys = [f"k{i:02d}" for i in range(25)]
    await enqueue(storage, *keys)
    for key in keys[::3]:
        assert await storage.cancel(key, now=T + 1)

    pages: list[list[Entry]] = []
    after = 0
    while page := await storage.entries(limit=10, after_id=after):
        pages.append(page)
        after = page[-1].id
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [e.key for p in pages for e in p] == keys

    cancelled = await storage.entries(state=State.CANCELLED, limit=100)
    assert [e.key for e in cancelled] == keys[::3]
    second = await storage.entries(state=State.PENDING, limit=4, after_id=cancelled[2].id)
    assert [e.key for e in second] == ["k07", "k08", "k10", "k11"]
    assert await storage.entries(limit=0) == []


# -- dump / load ----------------------------------------------------------------------------


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


async def test_dump_in_batches_and_load_elsewhere(storage: Storage) -> None:
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


async def test_load_from_elsewhere_and_carry_on(storage: Storage) -> None:
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
