"""Order feeds: the pull side of an adapter (polling and backfill) and the kit's loop around it.

:mod:`kit.feeds.contract` is what an adapter implements; the rest is the kit's: pacing,
retries, the checkpoint per source, the overlap window and progress.
"""

from __future__ import annotations

from kit.feeds.contract import (
    Budget,
    FeedAdapter,
    FeedOrder,
    FeedPage,
    FeedPlugin,
    FeedWindow,
    ListedOrder,
    WindowNotes,
    load_feed,
)

__all__ = [
    "Budget",
    "FeedAdapter",
    "FeedOrder",
    "FeedPage",
    "FeedPlugin",
    "FeedWindow",
    "ListedOrder",
    "WindowNotes",
    "load_feed",
]
