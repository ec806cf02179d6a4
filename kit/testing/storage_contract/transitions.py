"""Every row of the transition table (kit/outbox/transitions.py), field by field."""

from __future__ import annotations

import attrs
import pytest

from kit.outbox.protocol import Storage
from kit.outbox.transitions import TRANSITIONS, Due, ErrorText, OutcomeKind, Since
from kit.outbox.types import (
    AttemptKind,
    Dead,
    Delivered,
    InDoubt,
    Outcome,
    Release,
    Resend,
    Retry,
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    T,
    claim_one,
    enqueue,
    entry,
    finish,
    record,
)

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


class TransitionContract(ContractBase):
    """Each outcome from each state a claim can find, as the table says."""

    @pytest.mark.parametrize(
        ("kind", "start"), list(TRANSITIONS), ids=[f"{k}-from-{s}" for k, s in TRANSITIONS]
    )
    async def test_every_row_of_the_transition_table(
        self, storage: Storage, kind: OutcomeKind, start: State
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
