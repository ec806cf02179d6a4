"""Random walks through the outbox state machine, checked against a tiny pure-Python model.

Hypothesis drives a real backend (in memory, a SQLite file, and PostgreSQL) with enqueue
(duplicates included), cancel, claim, finish (every outcome, sometimes with a stale attempt),
clock advances that let leases run out, purge and retry_dead. After every step the backend must
agree with the model on each key's state, attempt, event_ref, blind_resends, sends, due time,
lease and payload, and on the counts. The backends share only the transition table
(kit/outbox/transitions.py): memory applies it in Python, SQLite and PostgreSQL each in SQL of
their own, so any of them may drift. Hypothesis is synchronous, so each machine owns an
:class:`asyncio.Runner`.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from builders import T0
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from kit.errors import OutboxError
from kit.outbox.memory import InMemoryStorage
from kit.outbox.postgres import PostgresStorage
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import (
    TERMINAL_STATES,
    AttemptKind,
    AttemptRecord,
    ClaimMode,
    Completion,
    Dead,
    Delivered,
    InDoubt,
    NewEntry,
    Outcome,
    Release,
    Resend,
    Retry,
    State,
)

R = TypeVar("R")

KEYS = [f"k{i}" for i in range(6)]
OUTCOMES = ["delivered", "adopted", "retry", "in_doubt", "dead", "resend", "release"]

# One example's storage, from that example's own scratch directory: entering opens it, leaving
# closes it and removes whatever else it made. A Storage is its own async context manager.
StorageFactory = Callable[[Path], AbstractAsyncContextManager[Storage]]


@attrs.define
class Model:
    """What the state machine says one entry must look like."""

    id: int
    state: State
    due_at: float
    updated_at: float
    attempt: int = 0
    sends: int = 0
    lease_expires_at: float | None = None
    in_doubt_since: float | None = None
    event_ref: str | None = None
    blind_resends: int = 0
    has_payload: bool = True

    def claim_due(self, now: float) -> float | None:
        lease = self.lease_expires_at
        if self.state is State.PENDING and self.due_at <= now:
            return self.due_at
        if self.state is State.IN_DOUBT and self.due_at <= now and (lease is None or lease <= now):
            return self.due_at
        if self.state is State.SENDING and lease is not None and lease <= now:
            return lease
        return None


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self, make_storage: StorageFactory) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.tmp = Path(tempfile.mkdtemp(prefix="etk-sm-"))
        self.stack = contextlib.AsyncExitStack()
        try:
            self.storage = self.run(self.stack.enter_async_context(make_storage(self.tmp)))
        except BaseException:
            self.teardown()
            raise
        self.now = T0
        self.next_id = 1
        self.model: dict[str, Model] = {}
        self.handed_out: list[tuple[str, int]] = []  # every (key, attempt) a claim returned

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        return self.runner.run(coro)

    def teardown(self) -> None:
        try:
            self.run(self.stack.aclose())
        finally:
            self.runner.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- rules ------------------------------------------------------------------------------

    @rule(
        keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=4),
        hold=st.sampled_from([None, -5.0, 0.0, 7.0, 40.0]),
    )
    def enqueue(self, keys: list[str], hold: float | None) -> None:
        send_after = None if hold is None else self.now + hold
        entries = [
            NewEntry(
                key=k,
                payload=f'{{"k":"{k}"}}',
                event_type="checkout",
                channel_id="chl-1",
                transaction_reference=f"ref-{k}",
                send_after=send_after,
            )
            for k in keys
        ]
        results = self.run(self.storage.enqueue(entries, now=self.now))
        expected = []
        for key in keys:
            duplicate = key in self.model
            expected.append((key, duplicate))
            if not duplicate:
                due = self.now if send_after is None else max(self.now, send_after)
                self.model[key] = Model(
                    id=self.next_id, state=State.PENDING, due_at=due, updated_at=self.now
                )
                self.next_id += 1
        assert [(r.key, r.duplicate) for r in results] == expected

    @rule(key=st.sampled_from(KEYS))
    def cancel(self, key: str) -> None:
        m = self.model.get(key)
        if m is None:
            try:
                self.run(self.storage.cancel(key, now=self.now))
            except OutboxError:
                return
            raise AssertionError(f"cancel of unknown {key} did not raise")
        done = self.run(self.storage.cancel(key, now=self.now))
        assert done is (m.state is State.PENDING)
        if done:
            m.state, m.updated_at = State.CANCELLED, self.now

    @rule(
        owner=st.sampled_from(["a", "b"]),
        limit=st.integers(min_value=0, max_value=4),
        lease=st.sampled_from([10.0, 60.0]),
    )
    def claim(self, owner: str, limit: int, lease: float) -> None:
        claimed = self.run(
            self.storage.claim(owner=owner, limit=limit, lease_seconds=lease, now=self.now)
        )
        due = sorted(
            (when, m.id, key)
            for key, m in self.model.items()
            if (when := m.claim_due(self.now)) is not None
        )
        expected = []
        for _, _, key in due[: max(limit, 0)]:
            m = self.model[key]
            mode = ClaimMode.SEND if m.state is State.PENDING else ClaimMode.RECONCILE
            if m.state is State.SENDING:
                assert m.lease_expires_at is not None
                m.due_at = m.lease_expires_at
            if m.state is State.PENDING:
                m.state = State.SENDING
            else:
                m.state = State.IN_DOUBT
                m.in_doubt_since = self.now if m.in_doubt_since is None else m.in_doubt_since
            m.attempt += 1
            m.lease_expires_at = self.now + lease
            m.updated_at = self.now
            expected.append((key, m.attempt, mode))
        assert [(c.key, c.attempt, c.mode) for c in claimed] == expected
        self.handed_out.extend((c.key, c.attempt) for c in claimed)

    @precondition(lambda self: bool(self.handed_out))
    @rule(
        pick=st.integers(min_value=0, max_value=10_000),
        skew=st.sampled_from([0, 0, 0, -1, 1]),
        outcome=st.sampled_from(OUTCOMES),
        kind=st.sampled_from([None, AttemptKind.SEND, AttemptKind.RECONCILE]),
        delay=st.sampled_from([0.0, 5.0, 30.0]),
    )
    def finish(
        self, pick: int, skew: int, outcome: str, kind: AttemptKind | None, delay: float
    ) -> None:
        key, handed = self.handed_out[pick % len(self.handed_out)]
        attempt = handed + skew
        choices: dict[str, Outcome] = {
            "delivered": Delivered(f"evt-{key}-{attempt}"),
            "adopted": Delivered(f"evt-{key}-{attempt}", adopted=True),
            "retry": Retry(due_at=self.now + delay, error="HTTP 503"),
            "in_doubt": InDoubt(due_at=self.now + delay, error="timeout"),
            "dead": Dead("HTTP 400"),
            "resend": Resend(due_at=self.now + delay, reason="not found"),
            "release": Release(),
        }
        result = choices[outcome]
        record = None
        if kind is not None:
            record = AttemptRecord(
                attempt=attempt,
                kind=kind,
                started_at=self.now,
                duration_ms=1.0,
                outcome=outcome,
            )
        (applied,) = self.run(
            self.storage.finish([Completion(key, attempt, result, record)], now=self.now)
        )
        m = self.model[key]
        expected = (
            m.state in (State.SENDING, State.IN_DOUBT)
            and m.attempt == attempt
            and m.lease_expires_at is not None
        )
        assert applied is expected
        if not expected:
            return
        m.lease_expires_at = None
        m.updated_at = self.now
        m.sends += 1 if kind is AttemptKind.SEND else 0
        if isinstance(result, Delivered):
            m.state, m.event_ref = State.DELIVERED, result.event_ref
        elif isinstance(result, Retry):
            m.state, m.due_at = State.PENDING, result.due_at
        elif isinstance(result, InDoubt):
            m.state, m.due_at = State.IN_DOUBT, result.due_at
            m.in_doubt_since = self.now if m.in_doubt_since is None else m.in_doubt_since
        elif isinstance(result, Dead):
            m.state = State.DEAD
        elif isinstance(result, Resend):
            m.state, m.due_at, m.in_doubt_since = State.PENDING, result.due_at, None
            m.blind_resends += 1
        else:
            m.state = State.PENDING if m.state is State.SENDING else State.IN_DOUBT
            m.due_at = self.now

    @rule(seconds=st.sampled_from([1.0, 5.0, 11.0, 61.0]))
    def advance_clock(self, seconds: float) -> None:
        self.now += seconds

    @rule(age=st.sampled_from([0.0, 10.0, 100.0]))
    def purge(self, age: float) -> None:
        before = self.now - age
        purged = self.run(self.storage.purge(before=before, now=self.now))
        expected = 0
        for m in self.model.values():
            if m.state in TERMINAL_STATES and m.has_payload and m.updated_at < before:
                m.has_payload = False
                expected += 1
        assert purged == expected

    @rule(keys=st.none() | st.lists(st.sampled_from([*KEYS, "unknown"]), max_size=3))
    def retry_dead(self, keys: list[str] | None) -> None:
        count = self.run(self.storage.retry_dead(keys, now=self.now))
        wanted = self.model.keys() if keys is None else set(keys) & self.model.keys()
        expected = 0
        for key in wanted:
            m = self.model[key]
            if m.state is State.DEAD and m.has_payload:
                m.state, m.due_at, m.sends, m.in_doubt_since = State.PENDING, self.now, 0, None
                m.updated_at = self.now
                expected += 1
        assert count == expected

    # -- the check after every step ---------------------------------------------------------

    @invariant()
    def agrees_with_the_model(self) -> None:
        entries = self.run(self.storage.entries(limit=1000))
        seen = {
            e.key: (
                e.state,
                e.attempt,
                e.event_ref,
                e.blind_resends,
                e.sends,
                e.due_at,
                e.lease_expires_at,
                e.in_doubt_since,
                e.payload is not None,
            )
            for e in entries
        }
        assert [e.key for e in entries] == sorted(self.model, key=lambda k: self.model[k].id)
        for key, m in self.model.items():
            want = (
                m.state,
                m.attempt,
                m.event_ref,
                m.blind_resends,
                m.sends,
                m.due_at,
                m.lease_expires_at,
                m.in_doubt_since,
                m.has_payload,
            )
            assert seen[key] == want, key
        counts = self.run(self.storage.stats()).counts
        assert counts == {s: sum(m.state is s for m in self.model.values()) for s in State}


def _memory(tmp: Path) -> Storage:
    return InMemoryStorage()


def _sqlite_file(tmp: Path) -> Storage:
    return SQLiteStorage(tmp / "outbox.db")


def _postgres(dsn: str) -> StorageFactory:
    """A schema of its own per example, dropped afterwards, so no example sees another's rows."""

    @contextlib.asynccontextmanager
    async def throwaway_schema(tmp: Path) -> AsyncIterator[Storage]:
        import asyncpg

        schema = f"etk_sm_{uuid.uuid4().hex[:12]}"
        try:
            async with PostgresStorage(dsn, schema=schema, min_size=1, max_size=1) as storage:
                yield storage
        finally:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()

    return throwaway_schema


# Databases on a busy CI machine: wall-clock speed is not the subject, so no deadline.
_BASE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_in_memory_state_machine() -> None:
    run_state_machine_as_test(
        lambda: OutboxMachine(_memory),
        settings=settings(_BASE, max_examples=150, stateful_step_count=50),
    )


def test_sqlite_file_state_machine() -> None:
    run_state_machine_as_test(
        lambda: OutboxMachine(_sqlite_file),
        settings=settings(_BASE, max_examples=50, stateful_step_count=40),
    )


@pytest.mark.postgres
def test_postgres_state_machine(pg_dsn: str) -> None:
    # A fresh schema costs ~40 ms and each step a few round trips: ~10 s on 2 cores.
    make_storage = _postgres(pg_dsn)
    run_state_machine_as_test(
        lambda: OutboxMachine(make_storage),
        settings=settings(_BASE, max_examples=60, stateful_step_count=50),
    )
