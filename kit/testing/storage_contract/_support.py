"""What every part of the contract builds on: fixed times, new entries, claims and completions.

Every call passes time explicitly, so no test depends on the clock of the machine it runs on.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kit.outbox.protocol import Storage
from kit.outbox.types import (
    AttemptKind,
    AttemptRecord,
    Claimed,
    Completion,
    Dead,
    Delivered,
    Entry,
    InDoubt,
    NewEntry,
    Outcome,
    State,
)

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
        [Completion(claimed.key, claimed.attempt, outcome, rec, claimed.entry_id)], now=now
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
