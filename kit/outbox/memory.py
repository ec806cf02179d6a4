"""The outbox in plain Python: a test double that keeps the whole storage contract.

The state machine itself is pure functions in :mod:`kit.outbox.lifecycle` (re-exported here
under their old names); this module keeps entries in dictionaries and applies them.

Nothing is persisted; ``open``/``aclose`` only satisfy the protocol, so one object can be shared
by several "flushers" in a test and its data lives as long as the object.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Protocol, Self

import attrs

from kit.errors import OutboxError, OutboxMovedError
from kit.outbox.lifecycle import (
    ACTIVE_STATES,
    FORGET_CANCELS,
    amend_entry,
    apply_completion,
    claim_due,
    claim_entry,
    empty_stats_counts,
    new_entry,
    retry_dead_entry,
    to_claimed,
)
from kit.outbox.types import (
    TERMINAL_STATES,
    AttemptRecord,
    Claimed,
    Completion,
    EnqueueResult,
    Entry,
    EntryRecord,
    ForgetResult,
    Hold,
    NewEntry,
    OutboxStats,
    State,
)

# -- the backend ----------------------------------------------------------------------------


class Companion(Protocol):
    """Customer data kept beside an in-memory outbox, cleared by its purge and forget."""

    def purge_now(self, *, before: float) -> None: ...

    def forget_now(self, email_hash: str) -> set[str]:
        """Erase what it keeps of the customer; the e-mail hashes whose entries go too."""
        ...


class InMemoryStorage:
    """A :class:`kit.outbox.protocol.Storage` held in dictionaries, for tests."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._ids: list[int] = []  # ascending, parallel to _keys
        self._keys: list[str] = []
        self._active: set[str] = set()  # keys whose state is in ACTIVE_STATES
        self._attempts: dict[str, list[AttemptRecord]] = {}
        self._holds: dict[str, Hold] = {}
        self._moved_to: str | None = None
        self._next_id = 1
        # Data kept beside the outbox (the journal) that purge and forget must clear too.
        self.companions: list[Companion] = []

    @property
    def url(self) -> str:
        return "memory://"

    async def open(self, *, migrate: bool = True) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def migrate(self) -> int:
        return 1

    # -- internal ---------------------------------------------------------------------------

    def _put(self, entry: Entry) -> None:
        self._entries[entry.key] = entry
        if entry.state in ACTIVE_STATES:
            self._active.add(entry.key)
        else:
            self._active.discard(entry.key)

    def _append(self, entry: Entry, attempts: Iterable[AttemptRecord] = ()) -> None:
        self._ids.append(entry.id)
        self._keys.append(entry.key)
        self._attempts[entry.key] = list(attempts)
        self._put(entry)

    def _selected(self, keys: Sequence[str] | None, state: State) -> list[Entry]:
        if keys is None:
            return [e for e in self._entries.values() if e.state is state]
        found = (self._entries.get(k) for k in dict.fromkeys(keys))
        return [e for e in found if e is not None and e.state is state]

    # -- writing ----------------------------------------------------------------------------

    def savepoint(self) -> Callable[[], None]:
        """A function that undoes every change made after this call: the rollback of a caller
        that writes through the ``*_now`` methods in one go (the journal's ingest)."""
        saved = {name: copy.copy(value) for name, value in vars(self).items()}
        saved["_attempts"] = {key: list(log) for key, log in self._attempts.items()}

        def restore() -> None:
            vars(self).update(saved)

        return restore

    def insert_now(self, new: NewEntry, now: float) -> bool:
        """One entry without an await, for callers that must stay atomic (the journal); False
        for a known key."""
        (result,) = self._enqueue([new], now)
        return not result.duplicate

    async def enqueue(self, entries: Sequence[NewEntry], *, now: float) -> list[EnqueueResult]:
        return self._enqueue(entries, now)

    def refuse_if_moved(self) -> None:
        """Raise :class:`~kit.errors.OutboxMovedError` once the outbox was moved: every write
        and claim asks first (the journal's too)."""
        if self._moved_to is not None:
            raise OutboxMovedError(self.url, self._moved_to)

    def _enqueue(self, entries: Sequence[NewEntry], now: float) -> list[EnqueueResult]:
        if entries:
            self.refuse_if_moved()
        results: list[EnqueueResult] = []
        for new in entries:
            if new.key in self._entries:
                results.append(EnqueueResult(new.key, duplicate=True))
                continue
            self._append(new_entry(self._next_id, new, now))
            self._next_id += 1
            results.append(EnqueueResult(new.key, duplicate=False))
        return results

    async def cancel(self, key: str, *, now: float) -> bool:
        return self.cancel_now(key, now)

    def cancel_now(self, key: str, now: float) -> bool:
        """:meth:`cancel` without an await, for callers that must stay atomic (the journal)."""
        self.refuse_if_moved()
        entry = self._entries.get(key)
        if entry is None:
            raise OutboxError(f"unknown outbox key {key!r}")
        if entry.state is not State.PENDING:
            return False
        self._put(attrs.evolve(entry, state=State.CANCELLED, updated_at=now))
        return True

    async def amend(self, entry: NewEntry, *, now: float) -> bool:
        return self.amend_now(entry, now)

    def amend_now(self, new: NewEntry, now: float) -> bool:
        """:meth:`amend` without an await, for callers that must stay atomic (the journal)."""
        self.refuse_if_moved()
        entry = self._entries.get(new.key)
        if entry is None:
            raise OutboxError(f"unknown outbox key {new.key!r}")
        after = amend_entry(entry, new, now)
        if after is None:
            return False
        self._put(after)
        return True

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[Claimed]:
        return self._claim(owner, limit, lease_seconds, now)

    async def claim_with_holds(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> tuple[list[Claimed], list[Hold]]:
        claimed = await self.claim(owner=owner, limit=limit, lease_seconds=lease_seconds, now=now)
        # No await after the claim: atomic, as the SQL backends' single transaction is.
        return claimed, self._holds_at(now)

    def _claim(self, owner: str, limit: int, lease_seconds: float, now: float) -> list[Claimed]:
        self.refuse_if_moved()
        if limit <= 0:
            return []
        due: list[tuple[float, int, str]] = []
        for key in self._active:
            entry = self._entries[key]
            when = claim_due(entry, now)
            if when is not None:
                due.append((when, entry.id, key))
        due.sort()
        claimed: list[Claimed] = []
        for _, _, key in due[:limit]:
            entry = claim_entry(
                self._entries[key], owner=owner, lease_seconds=lease_seconds, now=now
            )
            self._put(entry)
            claimed.append(to_claimed(entry))
        return claimed

    async def finish(self, completions: Sequence[Completion], *, now: float) -> list[bool]:
        applied: list[bool] = []
        for completion in completions:
            entry = self._entries.get(completion.key)
            after = None if entry is None else apply_completion(entry, completion, now)
            if after is None:
                applied.append(False)
                continue
            self._put(after)
            if completion.record is not None:
                self._attempts[after.key].append(completion.record)
            applied.append(True)
        return applied

    # -- operators --------------------------------------------------------------------------

    async def retry_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        count = 0
        for entry in self._selected(keys, State.DEAD):
            after = retry_dead_entry(entry, now)
            if after is not None:
                self._put(after)
                count += 1
        return count

    async def drop_dead(self, keys: Sequence[str] | None, *, now: float) -> int:
        dead = self._selected(keys, State.DEAD)
        for entry in dead:
            self._put(
                attrs.evolve(
                    entry, state=State.CANCELLED, payload=None, email_hash=None, updated_at=now
                )
            )
        return len(dead)

    async def purge(self, *, before: float, now: float) -> int:
        for companion in self.companions:
            companion.purge_now(before=before)
        count = 0
        for entry in list(self._entries.values()):
            if (
                entry.state in TERMINAL_STATES
                and entry.payload is not None
                and entry.updated_at < before
            ):
                self._put(attrs.evolve(entry, payload=None, email_hash=None))
                count += 1
        return count

    async def forget_customer(self, email_hash: str, *, now: float) -> ForgetResult:
        hashes = {email_hash}
        for companion in self.companions:
            hashes |= companion.forget_now(email_hash)
        return ForgetResult.total(self.forget_now(hashed, now) for hashed in sorted(hashes))

    def forget_now(self, email_hash: str, now: float) -> ForgetResult:
        """The outbox's forget rule for one e-mail hash, without an await."""
        return self._forget([e for e in self._entries.values() if e.email_hash == email_hash], now)

    def forget_keys_now(self, keys: Sequence[str], now: float) -> ForgetResult:
        """The forget rule for the entries of ``keys`` (an erased account's)."""
        found = (self._entries.get(key) for key in set(keys))
        return self._forget(
            [e for e in found if e is not None and (e.payload or e.email_hash)], now
        )

    def _forget(self, entries: list[Entry], now: float) -> ForgetResult:
        purged = skipped = 0
        for entry in entries:
            if entry.state is State.SENDING:
                skipped += 1
                continue
            if entry.state not in FORGET_CANCELS:
                after = attrs.evolve(entry, payload=None, email_hash=None)
            else:
                after = attrs.evolve(
                    entry,
                    state=State.CANCELLED,
                    payload=None,
                    email_hash=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            self._put(after)
            purged += 1
        return ForgetResult(purged=purged, skipped_in_flight=skipped)

    # -- holds ------------------------------------------------------------------------------

    async def set_hold(self, hold: Hold) -> None:
        self._holds[hold.name] = hold

    async def clear_hold(self, name: str) -> None:
        self._holds.pop(name, None)

    async def holds(self, *, now: float) -> list[Hold]:
        return self._holds_at(now)

    def _holds_at(self, now: float) -> list[Hold]:
        return sorted((h for h in self._holds.values() if h.until > now), key=lambda h: h.name)

    # -- the outbox as a whole --------------------------------------------------------------

    async def moved_to(self) -> str | None:
        return self._moved_to

    async def set_moved(self, to: str | None) -> None:
        self._moved_to = to

    # -- reading ----------------------------------------------------------------------------

    async def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def get_now(self, key: str) -> Entry | None:
        """:meth:`get` without an await (the journal reads inside its transaction)."""
        return self._entries.get(key)

    async def entries(
        self, *, state: State | None = None, limit: int = 100, after_id: int = 0
    ) -> list[Entry]:
        found: list[Entry] = []
        if limit <= 0:
            return found
        for key in self._keys[bisect.bisect_right(self._ids, after_id) :]:
            entry = self._entries[key]
            if state is None or entry.state is state:
                found.append(entry)
                if len(found) >= limit:
                    break
        return found

    async def attempts(self, key: str) -> list[AttemptRecord]:
        return list(self._attempts.get(key, ()))

    async def stats(self) -> OutboxStats:
        counts = empty_stats_counts()
        oldest: float | None = None
        earliest_due: float | None = None
        latest: tuple[float, int, str] | None = None
        blind = adopted = backing_off = 0
        oldest_backing_off: float | None = None
        for entry in self._entries.values():
            counts[entry.state] += 1
            if entry.state is State.PENDING and entry.last_error is not None:
                backing_off += 1
                if oldest_backing_off is None or entry.created_at < oldest_backing_off:
                    oldest_backing_off = entry.created_at
            if entry.state is State.PENDING:
                if oldest is None or entry.created_at < oldest:
                    oldest = entry.created_at
                if earliest_due is None or entry.due_at < earliest_due:
                    earliest_due = entry.due_at
            if entry.last_error is not None:
                mark = (entry.updated_at, entry.id, entry.last_error)
                if latest is None or mark[:2] > latest[:2]:
                    latest = mark
            blind += entry.blind_resends
            adopted += entry.adopted
        return OutboxStats(
            counts=counts,
            oldest_pending_created_at=oldest,
            earliest_due_at=earliest_due,
            last_error=None if latest is None else latest[2],
            blind_resends=blind,
            adopted=adopted,
            backing_off=backing_off,
            oldest_backing_off_created_at=oldest_backing_off,
        )

    # -- moving an outbox -------------------------------------------------------------------

    async def dump(self, *, batch: int = 500) -> AsyncIterator[list[EntryRecord]]:
        size = max(1, batch)
        keys = list(self._keys)
        for start in range(0, len(keys), size):
            yield [
                EntryRecord(entry=self._entries[k], attempts=tuple(self._attempts[k]))
                for k in keys[start : start + size]
            ]

    async def load(self, records: Sequence[EntryRecord]) -> int:
        inserted = 0
        for record in records:
            if record.entry.key in self._entries:
                continue
            self._append(attrs.evolve(record.entry, id=self._next_id), record.attempts)
            self._next_id += 1
            inserted += 1
        return inserted


__all__ = ["InMemoryStorage", "amend_entry", "apply_completion", "claim_due", "claim_entry"]
