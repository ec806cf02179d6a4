"""The WooCommerce order feed: the REST v3 orders listing, one page per call.

``GET {store_url}/wp-json/wc/v3/orders`` with ``modified_after`` (and ``modified_before`` for a
bounded backfill), ``orderby=modified&order=asc`` and ``per_page=100`` (platforms.md §7.4).
``dates_are_gmt=true`` makes the window UTC rather than the site's time zone, and
``status=any`` lists every status. The REST API key goes as HTTP Basic auth, which is why the
config refuses plain http by default.

Every request asks for the first page of what changed since the last order read, never for
``page=N``: an order saved while a window is read moves to the end of a listing sorted by
change time, every later order moves a place earlier, and the order that began page N+1 would
never be listed. The cursor is the newest change time read (WooCommerce has whole seconds)
and the ids read with that time, which the next request leaves out with ``exclude``, because
``modified_after`` compares strictly and several orders can share a second. At most
:data:`MAX_EXCLUDED` ids travel in one URL: a second with more changed orders than that (or a
store that ignores ``exclude``) is left after those read, with a warning, and its other
orders are read when they next change.

Each listed order becomes the same events :mod:`adapters.woocommerce._order` makes of a
webhook body. Its identity is its version (``feed:<id>@<date_modified_gmt>``), so the overlap
the kit re-reads is recorded once, while a changed order is a new delivery the policy folds
into the stream the webhooks already filled.

WooCommerce documents no rate limit of its own; hosts and security plugins answer 429, or 503
with ``Retry-After``. Both are :class:`~kit.errors.FeedThrottledError` with the wait they ask
for; the kit's loop waits and asks again.
"""

from __future__ import annotations

import base64
import functools
import logging
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import attrs

from adapters.woocommerce._order import order_events
from adapters.woocommerce.adapter import PLATFORM
from adapters.woocommerce.config import WooCommerceConfig
from kit.adapters import DeliveryIdentity
from kit.domain import order_of
from kit.errors import (
    ConfigError,
    FeedAuthError,
    FeedError,
    FeedThrottledError,
    FeedUnavailableError,
    PayloadError,
)
from kit.feeds import FeedOrder, FeedPage, FeedWindow, ListedOrder
from kit.payload import Node, decode

logger = logging.getLogger(__name__)

PER_PAGE = 100  # the REST API's maximum
MAX_EXCLUDED = 500
"""Ids of orders changed in one second a request leaves out at most: about 4 KB of URL, well
inside the 8 KB request line web servers accept by default."""
TOPIC = "rest.orders"
"""The journal's ``topic`` of a polled order: what the kit read, for ``explain``."""


def wc_time(value: datetime) -> str:
    """A UTC time as the REST API takes it with ``dates_are_gmt=true``: no offset, seconds."""
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` value of HTTP Basic auth (RFC 7617, UTF-8), built here because
    aiohttp's helper for it is deprecated."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by WordPress hosts)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


@attrs.frozen(kw_only=True)
class WooCommerceFeed:
    """One configured store's order feed (see :class:`kit.feeds.FeedAdapter`)."""

    source: str
    config: WooCommerceConfig
    credentials: tuple[str, str] | None = attrs.field(repr=False)

    @classmethod
    def from_config(cls, *, source: str, config: WooCommerceConfig) -> WooCommerceFeed:
        """The store's feed; without a REST API key it exists but is off (``poll_interval``
        ``None``) and refuses to read, as every platform's feed does without credentials."""
        return cls(source=source, config=config, credentials=config.api_credentials())

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def account(self) -> str:
        return self.config.store_host

    @property
    def max_age(self) -> timedelta:
        return self.config.max_age

    @property
    def poll_interval(self) -> timedelta | None:
        return self.config.polling

    async def read_page(
        self, session: aiohttp.ClientSession, window: FeedWindow, page: str | None
    ) -> FeedPage:
        cursor = None if page is None else _Cursor.decode(page)
        params = {
            # WooCommerce compares strictly after; one second earlier keeps an order changed
            # in the window's first second (the journal folds the re-read).
            "modified_after": wc_time(window.since - timedelta(seconds=1)),
            "dates_are_gmt": "true",
            "orderby": "modified",
            "order": "asc",
            "status": "any",
            "per_page": str(PER_PAGE),
        }
        if cursor is not None:
            params.update(cursor.params())
        if window.until is not None:
            params["modified_before"] = wc_time(window.until + timedelta(seconds=1))
        body, total_pages = await self._get(session, params)
        orders = tuple(self._listed(Node(item, f"orders[{i}]")) for i, item in enumerate(body))
        # Without X-WP-TotalPages (a proxy that drops headers) a full page may have a next one.
        more = len(body) >= PER_PAGE if total_pages is None else total_pages > 1
        after = self._next(cursor, body) if more else None
        return FeedPage(orders=orders, next_page=None if after is None else after.encode())

    def _next(self, cursor: _Cursor | None, body: Sequence[Mapping[str, Any]]) -> _Cursor | None:
        """The cursor past this page; ``None`` if the page has no change time to go on from."""
        listed = [(_id(item), _modified(item)) for item in body]
        times = [at for _, at in listed if at is not None]
        if not times:
            logger.warning(
                "%s: a full page of orders without date_modified_gmt; the window ends here",
                self.source,
                extra={"action": "feed.page_unusable", "source": self.source},
            )
            return None
        at = max(times)
        seen = [i for i, when in listed if when == at and i is not None]
        if cursor is not None and not cursor.past and cursor.at == at:
            seen = list(dict.fromkeys([*cursor.seen, *seen]))
        stuck = cursor is not None and (cursor.at, cursor.seen) == (at, tuple(seen))
        if stuck or len(seen) > MAX_EXCLUDED:
            logger.warning(
                "%s: %d or more orders changed at %s UTC; reading on after that second, the "
                "others are read when they next change",
                self.source,
                len(seen),
                wc_time(at),
                extra={"action": "feed.second_left", "source": self.source},
            )
            return _Cursor(at=at, past=True)
        return _Cursor(at=at, seen=tuple(seen))

    async def _get(
        self, session: aiohttp.ClientSession, params: dict[str, str]
    ) -> tuple[list[dict[str, object]], int | None]:
        url = self.config.orders_url
        if self.credentials is None:
            raise ConfigError(
                f"source {self.source!r}: the order feed needs consumer_key and consumer_secret "
                "(a REST API key with read access)"
            )
        headers = {"Accept": "application/json", "Authorization": basic_auth(*self.credentials)}
        try:
            async with session.get(url, params=params, headers=headers) as response:
                _raise_for(response.status, response.headers.get("Retry-After"), url)
                raw = await response.read()
                pages = response.headers.get("X-WP-TotalPages")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise FeedUnavailableError(f"GET {url}: {type(exc).__name__}: {exc}") from exc
        try:
            body = decode(raw)
        except (ValueError, RecursionError):
            raise FeedUnavailableError(f"GET {url}: the answer is not JSON") from None
        if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
            raise FeedUnavailableError(f"GET {url}: the answer is not a list of orders")
        try:
            total_pages = int(pages) if pages is not None else None
        except ValueError:
            total_pages = None
        return body, total_pages

    def _listed(self, order: Node) -> ListedOrder:
        return ListedOrder(
            order_id=str(order.raw("id")),
            version=str(order.raw("date_modified_gmt") or order.raw("date_created_gmt") or ""),
            read=functools.partial(self._order, order),
        )

    def _order(self, order: Node) -> FeedOrder:
        stream = order.required_ident("id")
        modified = order.text("date_modified_gmt") or order.text("date_created_gmt") or ""
        identity = DeliveryIdentity(f"feed:{stream}@{modified}")
        envelope = {
            "source": self.source,
            "platform": PLATFORM,
            "account": self.account,
            "delivery_id": identity.delivery_id,
            "event_id": None,
            "topic": TOPIC,
        }
        events = order_events(order, self.config, envelope=envelope, placed=True)
        facts = order_of(events[0])
        if facts is None:  # every event of order_events carries the snapshot
            raise PayloadError(f"{order.path} made no order facts")
        return FeedOrder(
            identity=identity,
            stream=stream,
            updated_at=facts.updated_at or facts.placed_at,
            placed_at=facts.placed_at,
            parsed=events,
        )


@attrs.frozen(kw_only=True)
class _Cursor:
    """Where the next page starts: orders changed at ``at`` or later, less the ``seen`` ids
    (read with that change time); ``past``: only orders changed after ``at``."""

    at: datetime
    seen: tuple[int, ...] = ()
    past: bool = False

    def params(self) -> dict[str, str]:
        if self.past:
            return {"modified_after": wc_time(self.at)}
        params = {"modified_after": wc_time(self.at - timedelta(seconds=1))}
        if self.seen:
            params["exclude"] = ",".join(map(str, self.seen))
        return params

    def encode(self) -> str:
        rest = "*" if self.past else ",".join(map(str, self.seen))
        return f"{wc_time(self.at)}|{rest}"

    @classmethod
    def decode(cls, page: str) -> _Cursor:
        stamp, bar, rest = page.partition("|")
        try:
            at = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
            seen = () if rest == "*" else tuple(int(part) for part in rest.split(",") if part)
        except ValueError:
            bar = ""
        if not bar:
            raise ValueError(f"not a page of this feed: {page!r}")
        return cls(at=at, seen=seen, past=rest == "*")


def _id(item: Mapping[str, Any]) -> int | None:
    value = item.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _modified(item: Mapping[str, Any]) -> datetime | None:
    """``date_modified_gmt`` as the store compares it (whole seconds, UTC), if readable."""
    value = item.get("date_modified_gmt")
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed.replace(microsecond=0)


def _raise_for(status: int, wait: str | None, url: str) -> None:
    if status == 200:
        return
    if status in (401, 403):
        raise FeedAuthError(
            f"GET {url} answered {status}: the store refused consumer_key/consumer_secret "
            "(revoked, or without read access)"
        )
    if status == 429 or (status == 503 and wait is not None):
        raise FeedThrottledError(
            f"GET {url} answered {status}: rate limited", retry_after=retry_after(wait)
        )
    if status >= 500:
        raise FeedUnavailableError(f"GET {url} answered {status}")
    if status == 404:
        raise FeedError(
            f"GET {url} answered 404: is store_url the WordPress address, with WooCommerce's "
            "REST API enabled and permalinks other than 'Plain'?"
        )
    raise FeedError(f"GET {url} answered {status}")


__all__ = [
    "MAX_EXCLUDED",
    "PER_PAGE",
    "TOPIC",
    "WooCommerceFeed",
    "basic_auth",
    "retry_after",
    "wc_time",
]
