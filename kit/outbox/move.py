"""Moving an outbox from one backend to another (e.g. SQLite to PostgreSQL when a shop grows).

Everything that exactly-once delivery depends on travels: the key ledger (so a replayed webhook
stays a duplicate), event refs, attempt numbers (the fencing tokens), ``in_doubt`` state and its
timestamps, blind resends, leases and the attempt logs. The journal travels after them (so a
platform's retry of an earlier delivery stays a duplicate, a cancellation finds its order's
history, and ``explain`` shows earlier orders: :mod:`kit.journal.dump`), and so do the feed
checkpoints (a poll or backfill resumes where it stood). Holds and feed leases do not: they are
short-lived, and set again by whoever still needs them.

Flushers must be stopped on the source while it is copied: an entry that changes after its batch
was copied would be stale in the target. A live lease proves a flusher is at work, so its presence
refuses the move unless ``force=True``. Before copying, the source is marked as moved
(:meth:`~kit.outbox.protocol.Storage.set_moved`), a permanent state: from then on it refuses
enqueues and claims, so no flusher (an idle one, a cron'd ``flush --once``) can ever deliver from
it again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

import attrs

from kit.errors import ConfigError, OutboxError
from kit.outbox.protocol import Storage, SupportsWriterBarrier
from kit.outbox.types import Hold, State

log = logging.getLogger(__name__)

_PAGE = 500
# Schema versions (kit/outbox/migrations): the journal's tables, their reference column, feeds.
_JOURNAL, _JOURNAL_REFERENCE, _FEEDS = 3, 4, 5


@attrs.frozen(kw_only=True)
class MigrationReport:
    """What :func:`migrate_outbox` did.

    ``by_state`` counts every source entry by state (every State present, zero when none), so it
    sums to ``copied + skipped_existing``. ``journal_copied`` counts the journal's rows
    (deliveries, events and decisions) and ``checkpoints_copied`` the feed checkpoints this run
    wrote; both are 0 on a run that repeats a finished move.
    """

    copied: int
    skipped_existing: int
    by_state: dict[State, int]
    journal_copied: int = 0
    checkpoints_copied: int = 0


async def migrate_outbox(
    source: Storage,
    target: Storage,
    *,
    batch: int = 500,
    force: bool = False,
    now: float | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> MigrationReport:
    """Copy every entry of ``source`` into ``target``; keys already in ``target`` are skipped.

    Both storages must be open. Safe to run again after an interruption: what was copied is
    skipped. ``now`` (default: the wall clock) decides which leases are still live.
    ``on_batch(copied, skipped)`` is called after each batch (a progress bar).

    Raises :class:`~kit.errors.OutboxError` when ``source`` is ``target``, when entries of
    ``source`` are leased by a running flusher, or when ``source`` was already moved to another
    target (both unless ``force``: the way out of a mistyped target, from which nothing may
    have been delivered, or two databases could deliver the same entries).
    """
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    if source is target:
        raise OutboxError(f"source and target are the same outbox ({source.url})")
    moment = time.time() if now is None else now
    await _refuse_same_database(source, target, moment)
    existing = await source.moved_to()
    if existing is not None and existing != target.url and not force:
        # Copying to a second target would let two databases deliver the same entries.
        raise OutboxError(f"{source.url} was already moved to {existing}")
    onward = await target.moved_to()
    if onward is not None:
        # Its flushers stopped for good: what was copied there would never be sent.
        raise OutboxError(f"{target.url} was itself moved to {onward}; move to that one instead")
    carried = await _journal_to_copy(source, target)
    if not force:
        # Before the mark, so that a move refused for a running flusher leaves no trace (the
        # mark would make that flusher stop); checked again below, after the mark.
        await _refuse_live_leases(source, moment)
    if existing != target.url:
        # From here on the source must never deliver again: an entry sent from it after being
        # copied would be sent a second time from the target. Its enqueues and claims refuse
        # (a running flusher stops at its next claim), and the mark stays after the copy.
        await source.set_moved(target.url)
    if isinstance(source, SupportsWriterBarrier):
        # An enqueue that began before the mark did not see it; let it end before the copy
        # reads the table (SQLite's writers already queue for its one write lock).
        await source.wait_for_writers()
    if not force:
        try:
            await _refuse_live_leases(source, moment)
        except OutboxError:
            if existing != target.url:  # nothing was copied by anyone: leave the source as is
                await source.set_moved(existing)
            raise
    copied = skipped = 0
    by_state = dict.fromkeys(State, 0)
    async for records in source.dump(batch=batch):
        inserted = await target.load(records)
        copied += inserted
        skipped += len(records) - inserted
        for record in records:
            by_state[record.entry.state] += 1
        if on_batch is not None:
            on_batch(copied, skipped)
        log.info(
            "outbox migration: %d copied, %d already there",
            copied,
            skipped,
            extra={"action": "outbox.migrate_outbox.batch", "copied": copied, "skipped": skipped},
        )
    journal, checkpoints = await _copy_journal(source, target, carried, batch)
    report = MigrationReport(
        copied=copied,
        skipped_existing=skipped,
        by_state=by_state,
        journal_copied=journal,
        checkpoints_copied=checkpoints,
    )
    log.info(
        "outbox migrated from %s to %s: %d copied, %d already there, %d journal rows,"
        " %d feed checkpoints",
        source.url,
        target.url,
        copied,
        skipped,
        journal,
        checkpoints,
        extra={
            "action": "outbox.migrate_outbox",
            "copied": copied,
            "skipped": skipped,
            "journal_copied": journal,
            "checkpoints_copied": checkpoints,
        },
    )
    return report


@attrs.frozen
class _Carried:
    """What of the journal's database the source's schema holds for a move."""

    journal: bool
    checkpoints: bool


async def _journal_to_copy(source: Storage, target: Storage) -> _Carried:
    """Before the source is marked: which of the journal and the feed checkpoints the source's
    schema (never upgraded by a move) holds, and a refusal for a target with a journal of its
    own (two journals cannot be merged without reordering one)."""
    from kit.journal.dump import refuse_foreign_journal, rows_of

    rows, onto = rows_of(source), rows_of(target)
    if rows is None or onto is None:  # a storage of another kind keeps no journal
        return _Carried(journal=False, checkpoints=False)
    version_of = getattr(source, "schema_version", None)
    version: int = _FEEDS if version_of is None else await version_of()  # memory: all
    if _JOURNAL <= version < _JOURNAL_REFERENCE:
        raise OutboxError(
            f"the journal of {source.url} is at schema version {version}: upgrade it first"
            " (open it once with this kit, e.g. `etrusted-kit doctor --fix`), then move it"
        )
    if version >= _JOURNAL:
        await refuse_foreign_journal(rows, onto)
    return _Carried(journal=version >= _JOURNAL, checkpoints=version >= _FEEDS)


async def _copy_journal(
    source: Storage, target: Storage, carried: _Carried, batch: int
) -> tuple[int, int]:
    """The journal's rows, then the feed checkpoints; how many of each were copied. After the
    entries, so that a decision's outbox entry is there when its journal row is."""
    from kit.feeds.checkpoint import checkpoints_in
    from kit.journal.dump import copy_journal, rows_of

    rows, onto = rows_of(source), rows_of(target)
    journal = checkpoints = 0
    if carried.journal and rows is not None and onto is not None:
        journal = await copy_journal(rows, onto, batch=batch)
    if carried.checkpoints:
        there = checkpoints_in(target)
        checkpoints = sum([await there.add(c) for c in await checkpoints_in(source).dump()])
    return journal, checkpoints


async def _refuse_same_database(source: Storage, target: Storage, now: float) -> None:
    """Two storage objects on one database (one file or schema, spelt two ways) would copy
    nothing and mark the only outbox there is as moved. A marker written through
    one and looked for through the other tells, whatever the spelling. (Flushers of the source
    see it as a hold too, and pause for at most its one second.)"""
    probe = Hold(
        name=f"migrate-probe-{uuid.uuid4().hex}",
        until=now + 1.0,
        reason="migrate_outbox: same-database check",
    )
    await source.set_hold(probe)
    try:
        same = any(h.name == probe.name for h in await target.holds(now=now))
    finally:
        await source.clear_hold(probe.name)
    if same:
        raise OutboxError(f"source and target are the same outbox ({source.url} and {target.url})")


async def _refuse_live_leases(source: Storage, now: float) -> None:
    """A live lease on ``sending`` (a POST under way) or ``in_doubt`` (a reconciliation) means a
    flusher is running on ``source``."""
    live: list[str] = []
    for state in (State.SENDING, State.IN_DOUBT):
        after = 0
        while True:
            page = await source.entries(state=state, limit=_PAGE, after_id=after)
            if not page:
                break
            live.extend(
                e.key for e in page if e.lease_expires_at is not None and e.lease_expires_at > now
            )
            after = page[-1].id
    if live:
        shown = ", ".join(repr(k) for k in live[:5]) + (", ..." if len(live) > 5 else "")
        raise OutboxError(
            f"{len(live)} entries of {source.url} are leased by a running flusher ({shown}):"
            " stop the flushers (or wait for the leases to expire), or pass force=True"
        )


__all__ = ["MigrationReport", "migrate_outbox"]
