"""The feed contract: what the kit asks of a platform's order feed, the pull side of an adapter.

Webhooks get lost, so every order platform also offers a feed the kit reads for "orders changed
in a window". A feed adapter does one thing: read ONE page of that listing with one request and
turn each order on it into the same domain events, and the same stream and dedupe keys, as its
webhooks would. Everything around that request belongs to the kit (:mod:`kit.feeds.runner`):
pacing against the platform's budget, retries with backoff and jitter, the checkpoint per
source, the overlap window, dedupe through the journal, progress. An adapter writes none of it:
it reports what happened by return value (a :class:`FeedPage` with the platform's
:class:`Budget`) or by one of the :class:`~kit.errors.FeedError` classes.

A feed is registered through the same ``etrusted_kit.adapters`` entry point as the push side:
the plugin object the entry point names offers ``create_feed`` (:class:`FeedPlugin`) beside, or
instead of, ``create``.

The identity of a polled order (:attr:`FeedOrder.identity`) is its version: the same order read
again unchanged (the overlap window, a resumed run) is the same delivery to the journal and is
recorded once; a changed order is a new delivery whose events the policy folds into the stream
it already knows, webhook facts included, so a fact seen by webhook and by poll makes one
decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

import aiohttp
import attrs

from kit.adapters import DeliveryIdentity, ParseResult, load_plugin
from kit.domain import utc
from kit.errors import ConfigError

C_contra = TypeVar("C_contra", contravariant=True)


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


@attrs.frozen(kw_only=True)
class FeedWindow:
    """Orders whose last change lies in ``[since, until)``; ``until=None`` means up to now."""

    since: datetime = attrs.field(converter=utc)
    until: datetime | None = attrs.field(default=None, converter=_optional_utc)


@attrs.frozen(kw_only=True)
class FeedOrder:
    """One order as a feed page listed it.

    ``identity``: the version of the order (platform, order id and its ``updated_at``), so a
    re-read of the same version is a duplicate delivery. ``updated_at``: the platform's change
    time, by which the listing is sorted and the checkpoint advances. ``placed_at``: when the
    order was placed, for the source's ``max_age`` (``None`` when the platform does not say).
    ``parsed``: the domain events (or a skip), as the webhooks would have made them.
    """

    identity: DeliveryIdentity
    stream: str
    updated_at: datetime = attrs.field(converter=utc)
    placed_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    parsed: ParseResult


@attrs.frozen(kw_only=True)
class ListedOrder:
    """One order as a page listed it, before the adapter reads its data.

    The kit calls ``read`` and, when it raises :class:`~kit.errors.PayloadError` (data the
    adapter refuses), journals the order as skipped ``unreadable_order`` and goes on with the
    rest of the page, so one bad order cannot stop a source's polling. ``order_id`` and
    ``version`` (the platform's change time, as listed) are taken without validating them:
    they name the order in the log and make its skip a duplicate when the same version is
    read again.
    """

    order_id: str
    version: str
    read: Callable[[], FeedOrder]


@attrs.frozen(kw_only=True)
class Budget:
    """The platform's request budget after a page (Shopify's cost bucket), in its own units.

    ``available`` of ``maximum`` are left and ``restore_rate`` come back per second; ``cost``
    is what the page just read cost, the kit's estimate of the next one. The kit waits before
    the next request until the budget covers it, so the bucket is never run dry.
    """

    available: float
    maximum: float
    restore_rate: float
    cost: float


@attrs.frozen(kw_only=True)
class FeedPage:
    """One page of the listing; ``next_page`` is the platform's opaque cursor for the page
    after it, ``None`` on the last page of the window. An order may be listed as a
    :class:`ListedOrder` for the kit to read, so that one unreadable order skips alone."""

    orders: tuple[FeedOrder | ListedOrder, ...]
    next_page: str | None = None
    budget: Budget | None = None


@runtime_checkable
class FeedAdapter(Protocol):
    """One configured source's order feed; built by :class:`FeedPlugin`."""

    @property
    def platform(self) -> str:
        """The adapter's name, as in its domain events (``shopify``)."""
        ...

    @property
    def account(self) -> str:
        """The platform tenant this source serves, as in its domain events."""
        ...

    @property
    def max_age(self) -> timedelta:
        """Orders placed longer ago than this are skipped ``too_old``: too late to ask."""
        ...

    @property
    def poll_interval(self) -> timedelta | None:
        """How often ``serve`` polls this source; ``None`` turns polling off."""
        ...

    async def read_page(
        self, session: aiohttp.ClientSession, window: FeedWindow, page: str | None
    ) -> FeedPage:
        """Read one page of orders changed in ``window``, oldest change first.

        ``page`` is ``None`` for the first page, else a :attr:`FeedPage.next_page` this feed
        returned for the same window. One request, no retries and no sleeping: raise
        :class:`~kit.errors.FeedThrottledError` (with the platform's wait, if it said one),
        :class:`~kit.errors.FeedUnavailableError` (5xx, network) or
        :class:`~kit.errors.FeedAuthError` (credentials refused), and the kit does the rest.
        ``session`` is the caller's: the feed never closes it.

        The cursor must not skip an order that changes while the window is read: a page
        number over a listing sorted by change time does (the changed order moves to the end
        and every later one a place earlier), a cursor past the last order seen does not.
        Read each order's data in a :class:`ListedOrder`, not here: a
        :class:`~kit.errors.PayloadError` raised here fails the whole page, and every poll
        after it.
        """
        ...


@runtime_checkable
class WindowNotes(Protocol):
    """Optional: what a feed knows about a window before reading it (a platform that shows
    only recent orders without an extra permission, say). ``backfill`` prints the notes."""

    def window_notes(self, window: FeedWindow, *, now: datetime) -> Sequence[str]: ...


@runtime_checkable
class FeedPlugin(Protocol[C_contra]):
    """An ``etrusted_kit.adapters`` entry point that offers a feed."""

    @property
    def name(self) -> str: ...

    @property
    def config_type(self) -> type[Any]: ...

    def create_feed(self, *, source: str, config: C_contra) -> FeedAdapter:
        """Bind one configured source's feed; no I/O."""
        ...


def load_feed(name: str) -> FeedPlugin[Any]:
    """The installed adapter called ``name``, which must offer a feed.

    Raises :class:`~kit.errors.ConfigError` as :func:`kit.adapters.load_adapter` does, and for
    an adapter that has no feed.
    """
    plugin = load_plugin(name)
    if not isinstance(plugin, FeedPlugin):
        raise ConfigError(f"adapter {name!r} offers no order feed (no create_feed())")
    return plugin


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
