"""A feed checkpoint per source and run, in the outbox's own database on every backend: it
reads back what was saved, a save replaces, and the runs and sources keep their own."""

from __future__ import annotations

from kit.feeds.checkpoint import Checkpoint, Run

from .conftest import FeedKit


async def test_a_checkpoint_reads_back_what_was_saved(feed_kit: FeedKit) -> None:
    store = feed_kit.checkpoints
    assert await store.load("my-shop", Run.BACKFILL) is None
    first = Checkpoint(source="my-shop", run=Run.BACKFILL, since=100.0, until=900.5, saved_at=1.0)
    await store.save(first)
    assert await store.load("my-shop", Run.BACKFILL) == first
    later = Checkpoint(
        source="my-shop",
        run=Run.BACKFILL,
        since=100.0,
        until=900.5,
        high_water=450.25,
        pages=3,
        orders=21,
        done=True,
        saved_at=2.0,
    )
    await store.save(later)
    assert await store.load("my-shop", Run.BACKFILL) == later


async def test_runs_and_sources_keep_their_own_checkpoints(feed_kit: FeedKit) -> None:
    store = feed_kit.checkpoints
    poll = Checkpoint(source="my-shop", run=Run.POLL, since=5.0, high_water=7.0, saved_at=1.0)
    other = Checkpoint(source="other", run=Run.POLL, since=6.0, saved_at=1.0)
    await store.save(poll)
    await store.save(other)
    assert await store.load("my-shop", Run.POLL) == poll
    assert await store.load("other", Run.POLL) == other
    assert await store.load("my-shop", Run.BACKFILL) is None
