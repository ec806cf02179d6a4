"""Reading the outbox: statistics and paginated listings."""

from __future__ import annotations

from kit.outbox.protocol import Storage
from kit.outbox.types import (
    Delivered,
    Entry,
    Retry,
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    T,
    claim_one,
    enqueue,
    finish,
    make_state,
)


class ReadingContract(ContractBase):
    """What ``stats`` and ``entries`` report."""

    async def test_stats(self, storage: Storage) -> None:
        """``stats`` counts entries per state and reports the oldest pending entry, the earliest due
        time and the latest error."""
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

    async def test_stats_count_entries_backing_off(self, storage: Storage) -> None:
        """``stats`` counts the pending entries that failed and wait for their next try, with
        the enqueue time of the oldest; pending entries that never failed are not counted, so
        an outage in which every entry fails shows, although none of them is due."""
        empty = await storage.stats()
        assert (empty.backing_off, empty.oldest_backing_off_created_at) == (0, None)
        await enqueue(storage, "first", now=T + 1)
        await enqueue(storage, "second", now=T + 2)
        await enqueue(storage, "fresh", now=T + 3, send_after=T + 50)  # held back, no failure
        for key in ("first", "second"):
            c = await claim_one(storage, key, now=T + 10, limit=1)
            assert await finish(storage, c, Retry(due_at=T + 100, error="HTTP 503"), now=T + 11)
        s = await storage.stats()
        assert (s.backing_off, s.oldest_backing_off_created_at) == (2, T + 1)
        assert s.earliest_due_at == T + 50  # nothing failed is due: only the held-back one

        c = await claim_one(storage, "fresh", now=T + 60, limit=1)
        assert await finish(storage, c, Delivered(event_ref="evt-0"), now=T + 61)
        c = await claim_one(storage, "first", now=T + 100, limit=1)
        assert await finish(storage, c, Delivered(event_ref="evt-1"), now=T + 101)
        s = await storage.stats()
        assert (s.backing_off, s.oldest_backing_off_created_at) == (1, T + 2)

    async def test_entries_filter_and_pagination(self, storage: Storage) -> None:
        """``entries`` lists in id order, filtered by state, a page at a time after a given id."""
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
