"""The contract of ``finish``: each outcome, fencing of stale completions, the attempt log."""

from __future__ import annotations

import attrs

from kit.outbox.protocol import Storage
from kit.outbox.types import (
    AttemptKind,
    ClaimMode,
    Completion,
    Dead,
    Delivered,
    InDoubt,
    Release,
    Resend,
    Retry,
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    T,
    claim,
    claim_one,
    enqueue,
    entry,
    finish,
    make_state,
    record,
)


class FinishContract(ContractBase):
    """What each outcome leaves behind, and completions that must change nothing."""

    async def test_delivered(self, storage: Storage) -> None:
        """``Delivered`` records the event's reference and time, ends the lease, clears the error of
        earlier attempts, and the entry is never claimed again."""
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

    async def test_delivered_adopted_by_reconciliation(self, storage: Storage) -> None:
        """An event found by reconciliation is delivered as adopted, with its reference; adoption
        does not count as a send."""
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

    async def test_retry(self, storage: Storage) -> None:
        """``Retry`` puts the entry back to pending until its due time, ends the lease and keeps the
        error; the next claim is a send."""
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

    async def test_in_doubt_keeps_the_first_in_doubt_since(self, storage: Storage) -> None:
        """An entry found in doubt again keeps the time it first fell in doubt, takes the new due
        time and error, and reconciling is not counted as a send."""
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

    async def test_dead(self, storage: Storage) -> None:
        """``Dead`` parks the entry with its error and payload, and it is never claimed again."""
        await enqueue(storage, "k1")
        c = await claim_one(storage, "k1", now=T)
        assert await finish(storage, c, Dead("HTTP 400: channel unknown"), now=T + 1)
        e = await entry(storage, "k1")
        assert (e.state, e.last_error, e.lease_owner) == (
            State.DEAD,
            "HTTP 400: channel unknown",
            None,
        )
        assert e.payload is not None
        assert await claim(storage, now=T + 10_000) == []

    async def test_resend_counts_a_blind_resend(self, storage: Storage) -> None:
        """``Resend`` takes an entry in doubt back to pending, no longer in doubt, and counts a
        blind resend."""
        await make_state(storage, "k1", State.IN_DOUBT)
        c = await claim_one(storage, "k1", now=T + 1000)
        assert await finish(
            storage, c, Resend(due_at=T + 1010, reason="nothing found in 1h"), now=T + 1001
        )
        e = await entry(storage, "k1")
        assert (e.state, e.due_at, e.blind_resends) == (State.PENDING, T + 1010, 1)
        assert (e.in_doubt_since, e.last_error, e.lease_owner) == (
            None,
            "nothing found in 1h",
            None,
        )
        c2 = await claim_one(storage, "k1", now=T + 1010)
        assert (c2.mode, c2.in_doubt_since, c2.first_sent_at) == (ClaimMode.SEND, None, T)
        assert (await storage.stats()).blind_resends == 1

    async def test_release_of_a_send_claim(self, storage: Storage) -> None:
        """``Release`` gives a send claim back untried: pending and due now, not counted as a send,
        the earlier error kept."""
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

    async def test_release_of_a_reconcile_claim(self, storage: Storage) -> None:
        """``Release`` gives a reconcile claim back still in doubt, due now, in doubt since the
        first time."""
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

    async def test_fencing_stale_completions_change_nothing(self, storage: Storage) -> None:
        """A completion for another attempt, an unknown key, an attempt already ended, or an entry
        no longer sending or in doubt changes nothing and reports False."""
        await enqueue(storage, "k1")
        c = await claim_one(storage, "k1", now=T)
        before = await entry(storage, "k1")
        for attempt in (0, c.attempt + 1):
            stale = Completion("k1", attempt, Delivered("evt-x"), record(attempt))
            assert await storage.finish([stale], now=T + 1) == [False]
        assert await storage.finish([Completion("ghost", 1, Delivered("evt-x"))], now=T + 1) == [
            False
        ]
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

    async def test_a_completion_with_a_wrong_entry_id_changes_nothing(
        self, storage: Storage
    ) -> None:
        """A completion finds its entry by the id from its claim, but only an entry with its key
        too: one naming another entry's id (or an unknown id) changes neither entry."""
        await enqueue(storage, "a", "b")
        ca, cb = await claim(storage, now=T)
        before = [await entry(storage, k) for k in "ab"]
        for wrong in (cb.entry_id, cb.entry_id + 1000):
            stale = Completion("a", ca.attempt, Delivered("evt-x"), record(ca.attempt), wrong)
            assert await storage.finish([stale], now=T + 1) == [False]
        assert [await entry(storage, k) for k in "ab"] == before
        assert await storage.attempts("a") == await storage.attempts("b") == []
        right = Completion("a", ca.attempt, Delivered("evt-a"), record(ca.attempt), ca.entry_id)
        assert await storage.finish([right], now=T + 2) == [True]
        assert (await entry(storage, "a")).event_ref == "evt-a"
        assert len(await storage.attempts("a")) == 1

    async def test_finish_batch_reports_each_completion_in_order(self, storage: Storage) -> None:
        """``finish`` applies each completion of a batch on its own and reports each in order."""
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

    async def test_attempt_log_contents_and_order(self, storage: Storage) -> None:
        """The attempt log holds exactly the records given with applied completions, per key and in
        order."""
        await enqueue(storage, "k1", "other")
        log = [
            record(1, outcome="retry", status=503, error="HTTP 503", started=T),
            record(2, outcome="in_doubt", status=None, error="read timeout", started=T + 10),
            record(3, kind=AttemptKind.RECONCILE, outcome="adopted", status=200, started=T + 2000),
        ]
        c1, c_other = await claim(storage, now=T)
        assert c1.key == "k1"
        assert await finish(
            storage, c_other, Delivered("evt-o"), now=T, rec=record(1, started=T - 1)
        )
        assert await finish(
            storage, c1, Retry(due_at=T + 10, error="HTTP 503"), now=T + 1, rec=log[0]
        )
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

    async def test_sends_counts_send_records_only(self, storage: Storage) -> None:
        """``sends`` counts the completions recorded as sends, not reconciliations nor completions
        without a record."""
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
