"""The flusher against the real sandbox over loopback, on a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import attrs
import pytest
from builders import CHANNEL, OTHER_CHANNEL, T0, order
from flusher_doubles import Clock, LoopTime

from kit.client import ETrustedClient
from kit.errors import (
    AuthenticationError,
    OutboxMovedError,
    PermanentAPIError,
    RetryableAPIError,
    StorageUnavailableError,
)
from kit.flusher import Flusher, FlusherConfig, InDoubtPolicy
from kit.flusher.catalog import REFRESH_MIN_INTERVAL, EventTypeCatalog
from kit.flusher.decisions import LEASE_BUDGET_SPENT
from kit.models import EventType
from kit.outbox import Outbox
from kit.outbox.move import migrate_outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import (
    HOLD_AUTH,
    HOLD_PACE,
    AttemptKind,
    Claimed,
    ClaimMode,
    Hold,
    State,
)
from kit.retry import Backoff
from kit.sandbox import Fault, FaultKind, Sandbox, SandboxConfig, SandboxServer
from kit.testing import FakeDeliveryClient, Raise, WaitFor

FAST = FlusherConfig(
    concurrency=4,
    lease_seconds=30.0,
    poll_interval=0.05,
    max_sends=5,
    backoff=Backoff(base=0.01, cap=0.05),
    reconcile_delay=0.0,
    reconcile_interval=0.05,
    reconcile_window=0.3,
    auth_pause=0.2,
    pace_default=0.05,
    grace_period=5.0,
)


@attrs.define
class World:
    sandbox: Sandbox
    server: SandboxServer
    client: ETrustedClient
    outbox: Outbox
    db: Path

    def flusher(self, config: FlusherConfig = FAST, **kw: Any) -> Flusher:
        return Flusher(self.outbox, self.client, config, **kw)

    async def enqueue(self, n: int, start: int = 0, **kw: Any) -> None:
        await self.outbox.enqueue_many([order(i, **kw) for i in range(start, start + n)])

    def accepted(self) -> Counter[str]:
        return Counter(e.transaction_reference for e in self.sandbox.accepted_events())

    async def assert_exactly_once(self) -> None:
        """Every delivered entry was accepted exactly once, under the ref we recorded."""
        accepted = {e.event_ref: e for e in self.sandbox.accepted_events()}
        counts = self.accepted()
        for entry in await self.outbox.entries(limit=10_000):
            if entry.state is State.DELIVERED:
                assert counts[entry.transaction_reference] == 1, entry.key
                assert entry.event_ref in accepted, entry.key
                assert accepted[entry.event_ref].transaction_reference == (
                    entry.transaction_reference
                )
            else:
                assert counts[entry.transaction_reference] == 0, (entry.key, entry.state)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    sandbox = Sandbox(SandboxConfig(seed=1))
    async with SandboxServer(sandbox) as server:
        await _create_type(server, "order_shipped")
        config = server.client_config(request_timeout=0.5)
        db = tmp_path / "outbox.db"
        async with ETrustedClient(config) as client, Outbox(SQLiteStorage(db)) as outbox:
            yield World(sandbox, server, client, outbox, db)


async def _create_type(server: SandboxServer, name: str) -> None:
    async with ETrustedClient(server.client_config()) as client:
        await client.create_event_type(name, active=True)


async def drain(flusher: Flusher, limit: float = 30.0) -> None:
    await asyncio.wait_for(flusher.run(until_drained=True), limit)


async def wait_until(predicate: Callable[[], Any], limit: float = 10.0) -> None:
    """Wait for a condition the code under test will make true (bounded, not a timing bet)."""
    async with asyncio.timeout(limit):
        while not await predicate():
            await asyncio.sleep(0.01)


async def test_delivers_everything_once_and_records_the_refs(world: World) -> None:
    await world.enqueue(40)
    flusher = world.flusher()
    await drain(flusher)
    stats = await world.outbox.stats()
    assert stats.counts[State.DELIVERED] == 40
    assert flusher.stats.posts == 40
    await world.assert_exactly_once()


async def test_permanent_error_parks_at_once_and_does_not_block_others(world: World) -> None:
    await world.enqueue(5)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=400, times=1)
    )
    await drain(world.flusher(attrs.evolve(FAST, concurrency=1)))
    dead = await world.outbox.entries(state=State.DEAD)
    assert len(dead) == 1
    assert "400" in (dead[0].last_error or "")
    assert dead[0].sends == 1
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 4
    await world.assert_exactly_once()


async def test_retryable_errors_are_retried_with_a_full_attempt_log(world: World) -> None:
    await world.enqueue(1)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=503, times=2)
    )
    await drain(world.flusher())
    (entry,) = await world.outbox.entries()
    assert entry.state is State.DELIVERED
    log = await world.outbox.attempts(entry.key)
    assert [(a.kind, a.http_status, a.outcome) for a in log] == [
        (AttemptKind.SEND, 503, "retry"),
        (AttemptKind.SEND, 503, "retry"),
        (AttemptKind.SEND, 202, "delivered"),
    ]
    assert all(a.duration_ms >= 0 for a in log)
    await world.assert_exactly_once()


async def test_attempt_budget_sends_endless_retryables_to_dead(world: World) -> None:
    await world.enqueue(3)
    world.sandbox.add_fault(Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=503))
    await drain(world.flusher(attrs.evolve(FAST, max_sends=3)))
    dead = await world.outbox.entries(state=State.DEAD)
    assert len(dead) == 3
    assert all(e.sends == 3 and "gave up after 3 sends" in (e.last_error or "") for e in dead)
    assert world.accepted() == Counter()


async def test_rate_limit_paces_the_whole_flusher(world: World) -> None:
    await world.enqueue(6)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.RATE_LIMIT, method="POST", path="/events", retry_after=0.4, times=1)
    )
    flusher = world.flusher(attrs.evolve(FAST, concurrency=1))
    await drain(flusher)
    assert flusher.stats.rate_limited == 1
    sends = []
    for entry in await world.outbox.entries():
        log = await world.outbox.attempts(entry.key)
        sends += [a for a in log if a.kind is not AttemptKind.RECONCILE]
    limited = next(a for a in sends if a.http_status == 429)
    later = [a for a in sends if a.started_at > limited.started_at]
    assert later, "nothing was sent after the 429"
    # No POST of ANY entry left before the server's Retry-After had passed.
    assert min(a.started_at for a in later) >= limited.started_at + 0.4
    await world.assert_exactly_once()


async def test_an_absurd_retry_after_is_capped(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Retry-After: 86400 would pause the whole fleet (through the stored hold) for a day."""
    await world.enqueue(3)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.RATE_LIMIT, method="POST", path="/events", retry_after=86400, times=1)
    )
    caplog.set_level("WARNING", logger="kit.flusher")
    flusher = world.flusher(attrs.evolve(FAST, concurrency=1, retry_after_max=0.2))
    await drain(flusher, limit=10.0)  # a day-long pause would time out here
    assert flusher.stats.rate_limited == 1
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 3
    capped = [r for r in caplog.records if getattr(r, "action", None) == "retry_after_capped"]
    assert [r.getMessage() for r in capped] == [
        "eTrusted asked to wait 86400 s; waiting 0.2 s (retry_after_max) instead"
    ]
    await world.assert_exactly_once()


async def test_a_retry_after_counts_from_the_answer_however_long_the_post_took(
    tmp_path: Path,
) -> None:
    """Retry-After is a wait after the answer: a 503 that came 8 s after its POST left and
    asks for 5 s is not sent again before 5 s after it came."""
    clock = Clock(T0)
    async with Outbox(SQLiteStorage(tmp_path / "shop.db"), clock=clock) as outbox:
        (result,) = await outbox.enqueue_many([order(1)])
        key = result.key
        gate = asyncio.Event()
        unavailable = RetryableAPIError("unavailable", status=503, retry_after=5.0)
        client = FakeDeliveryClient(clock=clock)
        client.answer_posts(WaitFor(gate, Raise(unavailable)))
        config = attrs.evolve(FAST, concurrency=1, check_event_types=False)
        flusher = Flusher(outbox, client, config, clock=clock)
        task = asyncio.create_task(flusher.run())
        try:
            await wait_until(lambda: _async(len(client.posts) == 1))
            clock.now += 8.0  # the answer comes 8 s after the POST left
            gate.set()

            async def answered() -> bool:
                return bool(await outbox.attempts(key))

            await wait_until(answered)
        finally:
            flusher.stop()
            await asyncio.wait_for(task, 10)
        entry = await outbox.get(key)
    assert entry is not None
    assert entry.due_at >= T0 + 8.0 + 5.0
    assert (entry.state, len(client.posts)) == (State.PENDING, 1)


async def test_rate_limits_and_refused_connections_never_use_up_the_budget(
    world: World,
) -> None:
    """An eTrusted that keeps saying 429 must not park good events as dead."""
    await world.enqueue(1)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.RATE_LIMIT, method="POST", path="/events", retry_after=0.01, times=6)
    )
    flusher = world.flusher(attrs.evolve(FAST, max_sends=2, concurrency=1))
    await drain(flusher)
    (entry,) = await world.outbox.entries()
    assert entry.state is State.DELIVERED
    log = await world.outbox.attempts(entry.key)
    assert [a.kind for a in log] == [AttemptKind.DEFERRED] * 6 + [AttemptKind.SEND]
    assert entry.sends == 1
    await world.assert_exactly_once()


async def test_rate_limit_hold_is_shared_through_the_database(world: World) -> None:
    await world.enqueue(1)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.RATE_LIMIT, method="POST", path="/events", retry_after=30, times=1)
    )
    flusher = world.flusher()
    task = asyncio.create_task(flusher.run())

    async def hold_set() -> bool:
        holds = await world.outbox.storage.holds(now=time.time())
        return any(h.name == HOLD_PACE for h in holds)

    await wait_until(hold_set)
    # A second flusher process (another storage object on the same file) sees it too.
    async with SQLiteStorage(world.db) as other:
        (hold,) = await other.holds(now=time.time())
        assert hold.name == HOLD_PACE
        assert hold.until >= time.time() + 25
    flusher.stop()
    await task


async def test_persistent_401_pauses_this_flusher_and_resumes_by_itself(world: World) -> None:
    """Refused credentials pause the flusher they belong to (in memory, nothing stored for
    the fleet); it probes instead of hammering eTrusted per entry, and resumes once they work."""
    await world.enqueue(20)
    world.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=401))
    flusher = world.flusher()
    task = asyncio.create_task(flusher.run(until_drained=True))

    await wait_until(lambda: _async(flusher.stats.auth_pauses >= 1))
    # Let several pause periods pass: the flusher must probe, not hammer eTrusted per entry.
    for _ in range(3):
        posts_before = world.sandbox.request_count("POST", "/events")
        await asyncio.sleep(FAST.auth_pause)
        assert world.sandbox.request_count("POST", "/events") - posts_before <= 2
    assert flusher.stats.posts <= 2 * FAST.concurrency
    assert await world.outbox.storage.holds(now=time.time()) == []  # the fleet is not paused
    world.sandbox.clear_faults()
    await asyncio.wait_for(task, 30)
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 20
    assert all(e.state is not State.DEAD for e in await world.outbox.entries())
    await world.assert_exactly_once()


async def test_a_one_shot_run_under_refused_credentials_exits(world: World) -> None:
    await world.enqueue(3)
    world.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=401))
    flusher = world.flusher()
    with pytest.raises(AuthenticationError, match="refuses the credentials"):
        await asyncio.wait_for(flusher.run_once(), 10)
    assert flusher.stats.auth_pauses >= 1
    assert all(e.state is State.PENDING for e in await world.outbox.entries())


async def test_token_expiry_mid_run_is_invisible(world: World) -> None:
    await world.enqueue(10)
    await drain(world.flusher())
    world.sandbox.expire_tokens()
    await world.enqueue(10, start=10)
    await drain(world.flusher())
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 20
    await world.assert_exactly_once()


async def test_dropped_answer_after_accept_is_adopted_not_resent(world: World) -> None:
    await world.enqueue(8)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_AFTER_ACCEPT, method="POST", path="/events", times=3)
    )
    flusher = world.flusher(attrs.evolve(FAST, reconcile_window=30.0))
    await drain(flusher)
    assert flusher.stats.in_doubt == 3
    assert flusher.stats.adopted == 3
    assert flusher.stats.blind_resends == 0
    adopted = [e for e in await world.outbox.entries() if e.adopted]
    assert len(adopted) == 3
    await world.assert_exactly_once()


async def test_a_foreign_event_for_the_same_order_does_not_block_reconciliation(
    world: World,
) -> None:
    """Another source's event for the same order (the Trustbadge's checkout event, without
    system fields and with numbers in its free-form metadata), listed beside ours, does not
    make the lookup fail: our in-doubt event is found and adopted, not parked or resent."""
    await world.enqueue(1)
    world.sandbox.state.accept_event(
        {
            "type": "checkout",
            "customer": {"email": "buyer0@example.com"},
            "channel": {"id": CHANNEL, "type": "etrusted"},
            "transaction": {"reference": "order-0"},
            "metadata": {"orderTotal": 59.9},
        }
    )
    world.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_AFTER_ACCEPT, method="POST", path="/events", times=1)
    )
    flusher = world.flusher(attrs.evolve(FAST, reconcile_window=30.0))
    await drain(flusher)
    assert (flusher.stats.adopted, flusher.stats.blind_resends) == (1, 0)
    (entry,) = await world.outbox.entries()
    assert (entry.state, entry.adopted) == (State.DELIVERED, True)


async def test_a_500_after_etrusted_stored_the_event_is_adopted_not_resent(world: World) -> None:
    """A server that stored the event and then failed answers 500: the entry is looked up and
    adopted, so the customer gets one invite, not a second one from a blind resend."""
    await world.enqueue(4)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.FAIL_AFTER_ACCEPT, method="POST", path="/events", status=500, times=2)
    )
    flusher = world.flusher(attrs.evolve(FAST, reconcile_window=30.0))
    await drain(flusher)
    assert (flusher.stats.in_doubt, flusher.stats.adopted, flusher.stats.blind_resends) == (2, 2, 0)
    assert len([e for e in await world.outbox.entries() if e.adopted]) == 2
    await world.assert_exactly_once()


async def test_a_500_before_anything_was_stored_is_resent_once_after_the_lookup(
    world: World,
) -> None:
    """A 500 from a server that stored nothing looks the same from outside: the lookup finds no
    event, and the entry is sent again, once."""
    await world.enqueue(2)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=500, times=1)
    )
    flusher = world.flusher()
    await drain(flusher)
    assert (flusher.stats.in_doubt, flusher.stats.blind_resends) == (1, 1)
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 2
    await world.assert_exactly_once()


async def test_late_answer_beyond_the_timeout_is_adopted(world: World) -> None:
    await world.enqueue(2)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.LATE_ANSWER, method="POST", path="/events", delay=1.0, times=1)
    )
    flusher = world.flusher(attrs.evolve(FAST, reconcile_window=30.0))
    await drain(flusher)
    assert flusher.stats.adopted == 1
    await world.assert_exactly_once()


async def test_dropped_request_before_accept_is_resent_after_the_window(world: World) -> None:
    await world.enqueue(3)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_BEFORE_ACCEPT, method="POST", path="/events", times=1)
    )
    flusher = world.flusher()
    await drain(flusher)
    assert flusher.stats.blind_resends == 1
    assert (await world.outbox.stats()).blind_resends == 1
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 3
    await world.assert_exactly_once()


async def test_reconciliation_never_adopts_another_entrys_event(world: World) -> None:
    """Two parcels of one order (custom keys, same type/channel/reference): the in-doubt
    second one must not adopt the first one's event and be marked delivered unsent."""
    body = order(1)
    await world.outbox.enqueue(body, key="order-1/parcel-A")
    await drain(world.flusher())
    world.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_BEFORE_ACCEPT, method="POST", path="/events", times=1)
    )
    await world.outbox.enqueue(body, key="order-1/parcel-B")
    flusher = world.flusher()
    await drain(flusher)
    first = await world.outbox.get("order-1/parcel-A")
    second = await world.outbox.get("order-1/parcel-B")
    assert second.state is State.DELIVERED
    assert not second.adopted
    assert flusher.stats.blind_resends == 1
    accepted = {e.event_ref: e.body for e in world.sandbox.accepted_events()}
    assert set(accepted) == {first.event_ref, second.event_ref}
    assert accepted[second.event_ref or ""]["metadata"]["etrustedKitKey"] == "order-1/parcel-B"


async def test_park_policy_parks_unresolved_in_doubt_entries(world: World) -> None:
    await world.enqueue(2)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_BEFORE_ACCEPT, method="POST", path="/events", times=1)
    )
    await drain(world.flusher(attrs.evolve(FAST, in_doubt_policy=InDoubtPolicy.PARK)))
    (dead,) = await world.outbox.entries(state=State.DEAD)
    assert "in doubt" in (dead.last_error or "")
    assert world.accepted()[dead.transaction_reference] == 0
    await world.assert_exactly_once()


async def test_a_flusher_killed_mid_post_is_reconciled_by_the_next(world: World) -> None:
    """The dead flusher's POST reached eTrusted; its lease expires; nobody sends it again."""
    await world.enqueue(1)
    now = time.time()
    (claim,) = await world.outbox.storage.claim(owner="dead", limit=1, lease_seconds=5, now=now)
    assert claim.payload is not None
    accepted = await world.client.post_event_json(claim.payload)  # ... and then it died
    later = now + 6  # the lease has expired
    flusher = world.flusher(clock=lambda: later + (time.time() - now))
    await drain(flusher)
    (entry,) = await world.outbox.entries()
    assert entry.state is State.DELIVERED
    assert entry.event_ref == accepted.event_ref
    assert entry.adopted
    assert flusher.stats.posts == 0
    await world.assert_exactly_once()


async def test_reconcile_claims_never_post(world: World) -> None:
    await world.enqueue(1)
    now = time.time()
    await world.outbox.storage.claim(owner="dead", limit=1, lease_seconds=1, now=now)
    (claim,) = await world.outbox.storage.claim(owner="b", limit=1, lease_seconds=1, now=now + 2)
    assert claim.mode is ClaimMode.RECONCILE
    flusher = world.flusher(
        attrs.evolve(FAST, reconcile_window=60.0), clock=lambda: now + 4 + (time.time() - now)
    )
    await asyncio.wait_for(flusher.run_once(), 10)
    assert world.sandbox.request_count("POST", "/events") == 0
    (entry,) = await world.outbox.entries()
    assert entry.state is State.IN_DOUBT


async def test_inactive_event_type_is_parked_without_a_post(world: World) -> None:
    await _create_type(world.server, "retired_touchpoint")
    await world.enqueue(2, type_="retired_touchpoint")
    found = await world.client.find_event_type("retired_touchpoint")
    assert found is not None
    await world.client.set_event_type_active(found.id, False)
    flusher = world.flusher()
    await drain(flusher)
    dead = await world.outbox.entries(state=State.DEAD)
    assert len(dead) == 2
    assert all("unknown or inactive" in (e.last_error or "") for e in dead)
    assert flusher.stats.posts == 0


async def test_warns_once_where_invites_are_switched_off(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A type created through the API starts with invite settings disabled: eTrusted then
    sends no invite, and reconciliation has nothing to find. The operator hears of it once
    per type and channel; delivery itself goes on."""
    found = await world.client.find_event_type("order_shipped")
    assert found is not None
    settings = await world.client.list_invite_settings(event_type_id=found.id)
    (second,) = [s for s in settings if s.channel_id == OTHER_CHANNEL]
    await world.client.update_invite_settings(second.id, {"enabled": True})
    await world.enqueue(3, channel=CHANNEL)
    await world.enqueue(2, start=3, channel=OTHER_CHANNEL)
    caplog.set_level("WARNING", logger="kit.flusher")
    await drain(world.flusher())
    warnings = [r for r in caplog.records if getattr(r, "action", None) == "invites_off"]
    assert [r.getMessage() for r in warnings] == [
        f"invites are switched off for event type 'order_shipped' in channel"
        f" {CHANNEL}: eTrusted sends no invite for these events, and an event"
        " whose POST ends in doubt cannot be found again (it is resent blind or parked, see"
        " --in-doubt)"
    ]
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 5


async def test_no_invite_warning_when_invites_are_on(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    found = await world.client.find_event_type("order_shipped")
    assert found is not None
    for s in await world.client.list_invite_settings(event_type_id=found.id):
        await world.client.update_invite_settings(s.id, {"enabled": True})
    await world.enqueue(2)
    caplog.set_level("WARNING", logger="kit.flusher")
    await drain(world.flusher())
    assert not [r for r in caplog.records if getattr(r, "action", None) == "invites_off"]


async def test_with_invites_switched_off_a_lost_answer_is_resent_blind(tmp_path: Path) -> None:
    """The documented limit (guarantees.md): no invite, nothing for reconciliation to find,
    so an event whose answer was lost after eTrusted accepted it is sent a second time."""
    sandbox = Sandbox(SandboxConfig(seed=1, invites_follow_settings=True))
    async with SandboxServer(sandbox) as server:
        await _create_type(server, "order_shipped")  # invite settings start disabled
        async with (
            ETrustedClient(server.client_config(request_timeout=0.5)) as client,
            Outbox(SQLiteStorage(tmp_path / "outbox.db")) as outbox,
        ):
            await outbox.enqueue_many([order(i) for i in range(2)])
            sandbox.add_fault(
                Fault(kind=FaultKind.DROP_AFTER_ACCEPT, method="POST", path="/events", times=1)
            )
            flusher = Flusher(outbox, client, FAST)
            await drain(flusher)
            assert (flusher.stats.adopted, flusher.stats.blind_resends) == (0, 1)
            assert (await outbox.stats()).counts[State.DELIVERED] == 2
    sent = Counter(e.transaction_reference for e in sandbox.accepted_events())
    assert sorted(sent.values()) == [1, 2]


class CountedClaims(SQLiteStorage):
    """Tells when the flusher's first claim has come back (empty): it then waits for a poll."""

    claims = 0

    async def claim_with_holds(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> tuple[list[Claimed], list[Hold]]:
        result = await super().claim_with_holds(
            owner=owner, limit=limit, lease_seconds=lease_seconds, now=now
        )
        self.claims += 1
        return result


async def test_enqueue_in_the_same_process_wakes_the_flusher(world: World) -> None:
    """An event enqueued in the application's own transaction (``enqueue_in`` on its aiosqlite
    connection, docs/outbox.md) and followed by ``notify()`` after the commit is delivered at
    once by a flusher in the same process: with a 60 s poll, only the doorbell delivers it
    within the test's bound."""
    async with CountedClaims(world.db) as storage:
        outbox = Outbox(storage, owns_storage=False)
        flusher = Flusher(outbox, world.client, attrs.evolve(FAST, poll_interval=60.0))
        task = asyncio.create_task(flusher.run())
        await wait_until(lambda: _async(storage.claims >= 1))  # idle until the next poll
        async with aiosqlite.connect(world.db) as app:
            await app.execute("PRAGMA busy_timeout = 10000")
            await app.execute("BEGIN IMMEDIATE")
            result = await outbox.enqueue_in(app, order(1))
            await app.commit()
        outbox.notify()
        assert not result.duplicate

        async def delivered() -> bool:
            return (await outbox.stats()).counts[State.DELIVERED] == 1

        await wait_until(delivered, limit=10.0)
        flusher.stop()
        await asyncio.wait_for(task, 10)
    assert [e.transaction_reference for e in world.sandbox.accepted_events()] == ["order-1"]


async def test_graceful_stop_finishes_in_flight_posts(world: World) -> None:
    await world.enqueue(1)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.LATE_ANSWER, method="POST", path="/events", delay=0.3, times=1)
    )
    flusher = world.flusher()
    task = asyncio.create_task(flusher.run())
    await wait_until(lambda: _async(flusher.stats.posts == 1))
    flusher.stop()
    await asyncio.wait_for(task, 10)
    (entry,) = await world.outbox.entries()
    assert entry.state is State.DELIVERED
    assert entry.lease_owner is None


async def test_second_stop_abandons_in_flight_posts_as_in_doubt(world: World) -> None:
    await world.enqueue(1)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.LATE_ANSWER, method="POST", path="/events", delay=5.0, times=1)
    )
    config = attrs.evolve(FAST, reconcile_window=60.0)
    async with ETrustedClient(world.server.client_config(request_timeout=10)) as slow:
        flusher = Flusher(world.outbox, slow, config)
        task = asyncio.create_task(flusher.run())
        await wait_until(lambda: _async(flusher.stats.posts == 1))
        flusher.stop()
        flusher.stop()
        await asyncio.wait_for(task, 3)
    (entry,) = await world.outbox.entries()
    assert entry.state is State.IN_DOUBT
    # The next flusher finds the event the abandoned POST created instead of sending again.
    await drain(world.flusher(config))
    (entry,) = await world.outbox.entries()
    assert entry.state is State.DELIVERED
    assert entry.adopted
    await world.assert_exactly_once()


async def test_cancelling_run_stops_gracefully_and_reraises(world: World) -> None:
    await world.enqueue(3)
    flusher = world.flusher()
    task = asyncio.create_task(flusher.run())
    await wait_until(lambda: _async(flusher.stats.delivered == 3))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert all(e.lease_owner is None for e in await world.outbox.entries())


async def test_concurrent_flushers_on_one_database_never_double_send(world: World) -> None:
    await world.enqueue(120)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=503, probability=0.1)
    )
    world.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_AFTER_ACCEPT, method="POST", path="/events", probability=0.05)
    )
    storages = [SQLiteStorage(world.db) for _ in range(3)]
    try:
        flushers = []
        for storage in storages:
            outbox = await Outbox(storage).open()
            flushers.append(Flusher(outbox, world.client, attrs.evolve(FAST, reconcile_window=30)))
        await asyncio.wait_for(asyncio.gather(*(f.run(until_drained=True) for f in flushers)), 60)
    finally:
        for storage in storages:
            await storage.aclose()
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 120
    assert sum(f.stats.blind_resends for f in flushers) == 0
    await world.assert_exactly_once()


class FlakyFinish(SQLiteStorage):
    """A database that fails the first result writes (a failover, a locked file)."""

    failures = 3

    async def finish(self, completions: Any, *, now: float) -> list[bool]:
        if self.failures:
            self.failures -= 1
            raise StorageUnavailableError("the database is down")
        return await super().finish(completions, now=now)


@pytest.mark.parametrize("once", [False, True])
async def test_results_survive_a_database_outage_without_reconciliation(
    world: World, tmp_path: Path, once: bool
) -> None:
    """Also at the very end of a one-shot run: it waits for the write, it does not exit."""
    async with FlakyFinish(tmp_path / "flaky.db") as storage:
        outbox = Outbox(storage, owns_storage=False)
        await outbox.enqueue_many([order(i) for i in range(5)])
        flusher = Flusher(outbox, world.client, attrs.evolve(FAST, concurrency=1))
        if once:
            await asyncio.wait_for(flusher.run_once(), 30)
        else:
            await drain(flusher)
        delivered = await outbox.entries()
        assert storage.failures == 0
    assert all(e.state is State.DELIVERED and not e.adopted for e in delivered)
    assert flusher.stats.posts == 5  # no 202 was lost, so nothing was looked up or resent
    assert flusher.stats.reconcile_checks == 0
    assert {e.event_ref for e in delivered} == {
        e.event_ref for e in world.sandbox.accepted_events()
    }


async def test_a_result_the_database_cannot_store_does_not_hold_up_the_others(
    tmp_path: Path,
) -> None:
    """eTrusted's error text is stored as it was sent. One that SQLite cannot encode (a lone
    surrogate, as a truncated "\\ud83d" in an error body decodes) is set aside, and the results
    of the other entries are still recorded: the run ends with them delivered."""
    async with Outbox(SQLiteStorage(tmp_path / "shop.db")) as outbox:
        await outbox.enqueue_many([order(i) for i in range(3)])
        client = FakeDeliveryClient()
        client.answer_posts(Raise(PermanentAPIError("invalid field: Zo\ud83d", status=400)))
        await asyncio.wait_for(Flusher(outbox, client, FAST).run_once(), 30)
        states = Counter(e.state for e in await outbox.entries())
    assert states[State.DELIVERED] == 2


async def test_a_post_never_outlives_its_lease(world: World) -> None:
    """A slow answer is abandoned before the lease runs out, then found, not resent."""
    await world.enqueue(1)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.LATE_ANSWER, method="POST", path="/events", delay=5.0, times=1)
    )
    config = attrs.evolve(FAST, lease_seconds=2.0, reconcile_window=30.0)
    async with ETrustedClient(world.server.client_config(request_timeout=30)) as slow:
        await drain(Flusher(world.outbox, slow, config))
    (entry,) = await world.outbox.entries()
    log = await world.outbox.attempts(entry.key)
    assert (log[0].outcome, log[0].error) == ("in_doubt", "POST outlived its lease budget")
    assert log[0].duration_ms < 2000
    assert entry.state is State.DELIVERED
    assert entry.adopted
    await world.assert_exactly_once()


class WallClockStepsBack(SQLiteStorage):
    """The host's wall clock steps back an hour right after the first claim (an NTP step, a
    resumed VM): that claim's lease still ends at its stored time for every other flusher."""

    def __init__(self, path: Path, clock: Clock) -> None:
        super().__init__(path)
        self.clock = clock

    async def claim_with_holds(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> tuple[list[Claimed], list[Hold]]:
        result = await super().claim_with_holds(
            owner=owner, limit=limit, lease_seconds=lease_seconds, now=now
        )
        if result[0] and self.clock.now == T0:
            self.clock.now = T0 - 3600.0
        return result


async def test_a_post_is_cut_off_at_its_leases_end_on_the_loop_clock_when_the_wall_clock_steps_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flusher measures the lease it holds from its claim on the event loop's clock: with the
    wall clock stepped back after the claim, a POST in flight is still cut off (and its entry
    in doubt) before the lease ends, not an hour later, when other flushers may take it over."""
    loop_time = LoopTime(monkeypatch)
    clock = Clock(T0)
    storage = WallClockStepsBack(tmp_path / "shop.db", clock)
    async with Outbox(storage, clock=clock) as outbox:
        (result,) = await outbox.enqueue_many([order(1)])
        client = FakeDeliveryClient(clock=clock)
        client.answer_posts(WaitFor(asyncio.Event()))  # never answered
        config = attrs.evolve(
            FAST, concurrency=1, check_event_types=False, lease_seconds=10.0, reconcile_window=60
        )
        flusher = Flusher(outbox, client, config, clock=clock)
        task = asyncio.create_task(flusher.run())
        try:
            await wait_until(lambda: _async(len(client.posts) == 1))
            assert clock.now == T0 - 3600.0
            loop_time.ahead += 8.0  # the cutoff is due at 9 s of the lease's 10
            for _ in range(50):  # turns in which a cutoff already due would fire
                await asyncio.sleep(0)
            assert client.cancelled == []  # not before its time either
            loop_time.ahead += 1.5

            async def answered() -> bool:
                return bool(await outbox.attempts(result.key))

            await wait_until(answered)
        finally:
            flusher.stop()
            await asyncio.wait_for(task, 10)
        (attempt, *_) = await outbox.attempts(result.key)
    assert (attempt.outcome, attempt.error) == ("in_doubt", LEASE_BUDGET_SPENT)
    assert len(client.posts) == 1


async def test_an_entry_taken_late_in_its_lease_goes_back_when_the_wall_clock_stepped_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A POST starts only in the first half of the lease as measured on the event loop's clock
    since the claim: an entry a worker takes later goes back unsent, although the wall clock,
    stepped back after the claim, says most of the lease is left."""
    loop_time = LoopTime(monkeypatch)
    clock = Clock(T0)
    storage = WallClockStepsBack(tmp_path / "shop.db", clock)
    async with Outbox(storage, clock=clock) as outbox:
        await outbox.enqueue_many([order(1), order(2)])
        gate = asyncio.Event()
        client = FakeDeliveryClient(clock=clock)
        client.answer_posts(WaitFor(gate))  # the first POST waits; the second is answered
        config = attrs.evolve(FAST, concurrency=1, check_event_types=False, lease_seconds=10.0)
        flusher = Flusher(outbox, client, config, clock=clock)
        task = asyncio.create_task(flusher.run())
        try:
            await wait_until(lambda: _async(len(client.posts) == 1))  # both claimed, one sent
            loop_time.ahead += 6.0  # past half the lease, before its cutoff
            gate.set()

            async def delivered() -> bool:
                return (await outbox.stats()).counts[State.DELIVERED] == 2

            await wait_until(delivered)  # the second went back, and was claimed and sent again
        finally:
            flusher.stop()
            await asyncio.wait_for(task, 10)
    assert (flusher.stats.released, flusher.stats.claimed, len(client.posts)) == (1, 3, 2)


@pytest.mark.parametrize("policy", list(InDoubtPolicy))
async def test_a_lookup_refused_for_a_whole_window_parks_whatever_the_policy(
    world: World, policy: InDoubtPolicy
) -> None:
    """Not having been able to look is no licence to resend: that could duplicate."""
    await world.enqueue(1)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_AFTER_ACCEPT, method="POST", path="/events", times=1)
    )
    world.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="GET", path="/channels/*", status=403)
    )
    await drain(world.flusher(attrs.evolve(FAST, in_doubt_policy=policy)))
    (entry,) = await world.outbox.entries()
    assert entry.state is State.DEAD
    assert "refused the lookup" in (entry.last_error or "")
    assert sum(world.accepted().values()) == 1  # the dropped answer's event, and no resend


async def test_resends_stop_at_the_attempt_budget(world: World) -> None:
    await world.enqueue(1)
    world.sandbox.add_fault(Fault(kind=FaultKind.DROP_BEFORE_ACCEPT, method="POST", path="/events"))
    await drain(world.flusher(attrs.evolve(FAST, max_sends=3, reconcile_window=0.05)))
    (entry,) = await world.outbox.entries()
    assert entry.state is State.DEAD
    assert (entry.sends, entry.blind_resends) == (3, 2)
    assert world.accepted() == Counter()


class UnreadableHolds(SQLiteStorage):
    """A database whose holds table cannot be read for a while."""

    broken = True
    refused = 0

    async def holds(self, *, now: float) -> list[Hold]:
        if self.broken:
            self.refused += 1
            raise StorageUnavailableError("cannot read holds")
        return await super().holds(now=now)


class UnreadableHoldsInClaims(UnreadableHolds):
    """The same, where the claim reads the holds in its own transaction: the claim fails."""

    async def claim_with_holds(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> tuple[list[Claimed], list[Hold]]:
        if self.broken:
            self.refused += 1
            raise StorageUnavailableError("cannot read holds")
        return await super().claim_with_holds(
            owner=owner, limit=limit, lease_seconds=lease_seconds, now=now
        )


async def test_nothing_is_sent_while_the_holds_cannot_be_read(world: World, tmp_path: Path) -> None:
    async with UnreadableHoldsInClaims(tmp_path / "holds.db") as storage:
        outbox = Outbox(storage, owns_storage=False)
        await outbox.enqueue_many([order(i) for i in range(3)])
        flusher = Flusher(outbox, world.client, FAST)
        task = asyncio.create_task(flusher.run(until_drained=True))
        await wait_until(lambda: _async(storage.refused >= 3))
        assert world.sandbox.request_count("POST", "/events") == 0
        storage.broken = False
        await asyncio.wait_for(task, 30)
        assert (await outbox.stats()).counts[State.DELIVERED] == 3
    assert sum(world.accepted().values()) == 3


async def test_a_migrated_outbox_refuses_to_flush(world: World, tmp_path: Path) -> None:
    await world.enqueue(3)
    async with SQLiteStorage(tmp_path / "new.db") as target:
        await migrate_outbox(world.outbox.storage, target)
        with pytest.raises(OutboxMovedError, match="moved to"):
            await asyncio.wait_for(world.flusher().run_once(), 10)
        assert world.sandbox.request_count("POST", "/events") == 0
        async with Outbox(target, owns_storage=False) as moved:
            await drain(Flusher(moved, world.client, FAST))
            refs = {e.event_ref for e in await moved.entries() if e.state is State.DELIVERED}
    assert len(refs) == 3
    assert refs == {e.event_ref for e in world.sandbox.accepted_events()}


async def test_a_move_committed_before_a_claim_stops_the_flusher(world: World) -> None:
    """Even with a stale view of the holds, nothing is claimed or sent once the outbox was
    moved: the flusher stops with the error naming where it went."""
    flusher = world.flusher(attrs.evolve(FAST, hold_check_interval=3600.0, poll_interval=60.0))
    task = asyncio.create_task(flusher.run())
    await wait_until(lambda: _async(flusher._holds.checked_at > 0))  # first (empty) read done
    # Entries the flusher is not told about (another Outbox object rings no bell of ours),
    # stored before the hold, which refuses new ones.
    async with Outbox(SQLiteStorage(world.db)) as other:
        await other.enqueue_many([order(i) for i in range(2)])
    await world.outbox.storage.set_moved("sqlite:///elsewhere.db")
    world.outbox.notify()  # the flusher claims, with cached holds an hour from stale
    with pytest.raises(OutboxMovedError, match=r"moved to sqlite:///elsewhere\.db"):
        await asyncio.wait_for(task, 10)
    assert world.sandbox.request_count("POST", "/events") == 0
    assert {e.state for e in await world.outbox.entries()} == {State.PENDING}


async def _async(value: bool) -> bool:
    return value


async def test_wrong_credentials_of_one_flusher_do_not_stall_the_others(world: World) -> None:
    """A flusher whose credentials are refused pauses alone and gives its claims back; a
    flusher with working credentials on the same outbox delivers everything, unpaused."""
    await world.enqueue(40)
    wrong = world.server.client_config(client_secret="wrong-secret")
    async with ETrustedClient(wrong) as refused_client:
        refused = Flusher(world.outbox, refused_client, FAST)
        refused_run = asyncio.create_task(refused.run())
        await wait_until(lambda: _async(refused.stats.auth_pauses >= 1))
        assert await world.outbox.storage.holds(now=time.time()) == []
        good = world.flusher()
        await drain(good)
        refused.stop()
        await asyncio.wait_for(refused_run, 10)  # a daemon with refused credentials just waits
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 40
    assert good.stats.delivered == 40
    assert refused.stats.delivered == 0
    await world.assert_exactly_once()


async def test_an_auth_hold_stored_by_an_older_version_is_ignored(world: World) -> None:
    """A database upgraded from a version that paused the whole fleet on refused credentials
    may still hold such a pause: it stops nothing."""
    await world.enqueue(3)
    old = Hold(name=HOLD_AUTH, until=time.time() + 3600, reason="401 from token endpoint")
    await world.outbox.storage.set_hold(old)
    await drain(world.flusher())
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 3


async def test_a_wait_on_a_hold_is_logged_once_with_its_reason(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator sees why nothing is sent, and when it goes on, without a line per poll."""
    caplog.set_level(logging.INFO, logger="kit.flusher")
    await world.enqueue(4)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=429, retry_after=0.3)
    )
    flusher = world.flusher(attrs.evolve(FAST, concurrency=1))
    task = asyncio.create_task(flusher.run(until_drained=True))

    async def paused() -> bool:
        return any(getattr(r, "action", None) == "paused" for r in caplog.records)

    await wait_until(paused)
    world.sandbox.clear_faults()
    await asyncio.wait_for(task, 30)
    pauses = [r for r in caplog.records if getattr(r, "action", None) == "paused"]
    resumes = [r for r in caplog.records if getattr(r, "action", None) == "resumed"]
    assert len(pauses) == 1, [r.getMessage() for r in pauses]
    assert "pausing all sends for" in pauses[0].getMessage()
    assert "HTTP 429 from eTrusted" in pauses[0].getMessage()
    assert len(resumes) == 1
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 4


@pytest.mark.parametrize("was", ["missing", "inactive"])
async def test_a_type_created_after_parking_is_seen_by_a_running_flusher(
    world: World, was: str
) -> None:
    """``dead retry`` after creating (or activating) the event type, here or in eTrusted's
    UI, delivers: a running flusher asks eTrusted again before it parks on an old 'no'."""
    if was == "inactive":
        async with ETrustedClient(world.server.client_config()) as admin:
            inactive = await admin.create_event_type("review_me", active=False)
    offset = 0.0
    flusher = world.flusher(clock=lambda: time.time() + offset)
    task = asyncio.create_task(flusher.run())
    try:
        await world.enqueue(1, type_="review_me")

        async def parked() -> bool:
            return (await world.outbox.stats()).counts[State.DEAD] == 1

        await wait_until(parked)
        if was == "inactive":
            async with ETrustedClient(world.server.client_config()) as admin:
                await admin.set_event_type_active(inactive.id, True)
        else:
            await _create_type(world.server, "review_me")
        offset = REFRESH_MIN_INTERVAL + 1  # the 'unknown' answer is now older than that
        async with Outbox(SQLiteStorage(world.db)) as operator:  # another process
            assert await operator.retry_dead() == 1
        world.outbox.notify()

        async def delivered() -> bool:
            return (await world.outbox.stats()).counts[State.DELIVERED] == 1

        await wait_until(delivered)
    finally:
        flusher.stop()
        await asyncio.wait_for(task, 10)
    await world.assert_exactly_once()


async def test_a_no_is_asked_again_once_the_wall_clock_stepped_back_since_it_was_read() -> None:
    """An answer read at a time the wall clock has stepped back behind (an NTP step, a resumed
    VM) is of unknown age: a 'no' is asked again before it parks anything, as an old one is."""
    clock = Clock(T0)
    client = FakeDeliveryClient(event_types=["checkout"])
    catalog = EventTypeCatalog(client, ttl=300.0, clock=clock)
    assert await catalog.active("review_me") is False
    client.event_types.append(EventType(id="ety-9", name="review_me", active=True))
    clock.now = T0 - 3600.0
    assert await catalog.active("review_me") is True


async def test_an_etrusted_outage_is_retried_with_a_warning_per_try_and_no_traceback(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """5xx and refused connections are passing outages: one warning per retry naming the
    wait, one info line when eTrusted accepts again; tracebacks are kept for bugs."""
    caplog.set_level(logging.INFO, logger="kit.flusher")
    await world.enqueue(1)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=503, times=2)
    )
    await drain(world.flusher(attrs.evolve(FAST, concurrency=1)))
    retries = [r for r in caplog.records if getattr(r, "action", None) == "retry"]
    assert len(retries) == 2
    assert all("trying again in" in r.getMessage() and r.exc_info is None for r in retries)
    over = [r for r in caplog.records if getattr(r, "action", None) == "etrusted_recovered"]
    assert len(over) == 1
    assert not [r for r in caplog.records if r.exc_info and r.name.startswith("kit.")]
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 1


async def test_a_scheduled_one_shot_run_delivers_once_the_credentials_work(world: World) -> None:
    """An application calling run_once() on a schedule: the run after a refused one checks the
    credentials again instead of failing on the earlier pause."""
    await world.enqueue(3)
    world.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=401))
    flusher = world.flusher()
    with pytest.raises(AuthenticationError):
        await asyncio.wait_for(flusher.run_once(), 10)
    world.sandbox.clear_faults()
    await asyncio.wait_for(flusher.run_once(), 10)
    assert (await world.outbox.stats()).counts[State.DELIVERED] == 3


def _lines(caplog: pytest.LogCaptureFixture, action: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == action]


async def test_parking_an_entry_as_dead_is_a_warning_with_its_key_and_reason(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator must act on every dead entry, so each one is a WARNING naming it and why."""
    caplog.set_level(logging.DEBUG, logger="kit")
    await world.enqueue(3)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=400, times=1)
    )
    await drain(world.flusher(attrs.evolve(FAST, concurrency=1)))
    (dead,) = await world.outbox.entries(state=State.DEAD)
    (line,) = _lines(caplog, "dead")
    assert line.levelno == logging.WARNING
    assert line.key == dead.key  # type: ignore[attr-defined]
    assert "400" in line.reason  # type: ignore[attr-defined]
    assert dead.key in line.getMessage()


async def test_adopting_an_entry_by_reconciliation_is_an_info_line(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """An answer lost after eTrusted accepted: the adoption is one INFO line with key and ref."""
    caplog.set_level(logging.DEBUG, logger="kit")
    await world.enqueue(2)
    world.sandbox.add_fault(
        Fault(kind=FaultKind.DROP_AFTER_ACCEPT, method="POST", path="/events", times=1)
    )
    await drain(world.flusher(attrs.evolve(FAST, reconcile_window=30.0)))
    (adopted,) = [e for e in await world.outbox.entries() if e.adopted]
    (line,) = _lines(caplog, "adopted")
    assert line.levelno == logging.INFO
    assert (line.key, line.event_ref) == (adopted.key, adopted.event_ref)  # type: ignore[attr-defined]
    assert not _lines(caplog, "dead")
