"""The Shopify order feed: the GraphQL Admin API's ``orders`` connection, one page per call.

Orders come sorted by ``UPDATED_AT`` and filtered with the search query
``updated_at:>='…'`` (and ``updated_at:<'…'`` for a bounded backfill), ``first`` as large as
the single-query cost limit allows (:func:`adapters.shopify._graphql.page_size`), the page
cursor from ``pageInfo { hasNextPage endCursor }``. The token travels in
``X-Shopify-Access-Token``; the API version is the source's ``api_version``.

What an answer means for the kit's loop (:mod:`kit.feeds.pacing`): ``extensions.cost`` becomes
the :class:`~kit.feeds.Budget` (the *requested* cost is what the bucket must hold before the
next page is served); ``THROTTLED``, as HTTP 200 with ``errors[].extensions.code`` or as a 429,
is :class:`~kit.errors.FeedThrottledError` with the time the bucket needs to restore (a
``Retry-After`` header wins); a 5xx or a broken connection is
:class:`~kit.errors.FeedUnavailableError`; a 401 or 403, or ``ACCESS_DENIED``, is
:class:`~kit.errors.FeedAuthError`.

Each order becomes the events its webhooks would have made, through the webhook adapter's own
topic handlers on the order translated to the webhook shape (:mod:`adapters.shopify._graphql`):
``orders/cancelled`` and ``refunds/create`` per refund first (so a trigger the snapshot already
rules out is skipped, not enqueued and withdrawn), then ``orders/create``, ``orders/paid`` once
paid (at ``processedAt``), ``orders/fulfilled`` per shipped fulfilment and
``fulfillments/update`` per delivered one. Its delivery id is the order's version
(``poll:{order id}@{updatedAt}``), so an unchanged order read again is a duplicate.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from adapters.shopify._graphql import orders_query, page_size, rest_order
from adapters.shopify.adapter import PLATFORM, SHIPPED, ShopifyAdapter, _Delivery
from adapters.shopify.config import ReferenceField, ShopifyConfig
from kit.adapters import DeliveryIdentity, ParseResult
from kit.codec import format_datetime
from kit.domain import DomainEvent, Skip
from kit.errors import (
    ConfigError,
    FeedAuthError,
    FeedError,
    FeedThrottledError,
    FeedUnavailableError,
    PayloadError,
)
from kit.feeds import Budget, FeedOrder, FeedPage, FeedWindow, ListedOrder
from kit.payload import Node, decode

PAID = frozenset({"paid", "partially_refunded", "refunded"})
FULFILLED = frozenset({"fulfilled", "partially_fulfilled"})
RECENT_ORDERS = timedelta(days=60)  # what Shopify lists without the read_all_orders scope
POLL_TOPIC = "poll:"  # events from the feed name the webhook topic they stand for after this


class ShopifyFeed:
    """One Shopify shop's order feed (see :class:`kit.feeds.FeedAdapter`)."""

    def __init__(self, *, source: str, config: ShopifyConfig) -> None:
        self._source = source
        token = config.admin_access_token
        self._token = None if token is None else token.value
        self._adapter = ShopifyAdapter(source=source, config=config)
        self._config = config
        self._query = orders_query(
            config.api_version, with_number=config.reference is ReferenceField.ORDER_NUMBER
        )
        self._first = page_size()

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def account(self) -> str:
        return self._config.shop_domain

    @property
    def max_age(self) -> timedelta:
        return self._config.max_age

    @property
    def poll_interval(self) -> timedelta | None:
        """Off without ``admin_access_token``: such a source has webhooks only."""
        return self._config.polling

    @property
    def page_size(self) -> int:
        return self._first

    def window_notes(self, window: FeedWindow, *, now: datetime) -> Sequence[str]:
        """Without ``read_all_orders``, Shopify lists only the last 60 days of orders."""
        if window.since >= now - RECENT_ORDERS:
            return ()
        days = (now - window.since).days
        return (
            f"the window starts {days} days back: without the read_all_orders scope Shopify "
            f"lists only the last {RECENT_ORDERS.days} days of orders, and older ones are not "
            "read",
        )

    async def read_page(
        self, session: aiohttp.ClientSession, window: FeedWindow, page: str | None
    ) -> FeedPage:
        if self._token is None:
            raise ConfigError(
                f"source {self._source!r} has no admin_access_token: the order feed needs an "
                "Admin API access token with read_orders"
            )
        search = f"updated_at:>='{format_datetime(window.since)}'"
        if window.until is not None:
            search += f" AND updated_at:<'{format_datetime(window.until)}'"
        request = {
            "query": self._query,
            "variables": {"first": self._first, "after": page, "query": search},
        }
        headers = {"X-Shopify-Access-Token": self._token, "Accept": "application/json"}
        url = self._config.graphql_url
        try:
            async with session.post(url, json=request, headers=headers) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FeedUnavailableError(
                f"no answer from {url}: {type(exc).__name__}: {exc}"
            ) from exc
        return self._page(status, retry_after, raw)

    # -- reading the answer -------------------------------------------------------------------

    def _page(self, status: int, retry_after: str | None, raw: bytes) -> FeedPage:
        shop = self._config.shop_domain
        if status in (401, 403):
            raise FeedAuthError(
                f"Shopify refused admin_access_token for {shop} (HTTP {status}): the token is "
                "wrong, expired or revoked, or lacks read_orders"
            )
        doc = _json(raw) if status == 200 or status == 429 else None
        if status == 429:
            raise FeedThrottledError(
                f"Shopify throttled the orders query for {shop} (HTTP 429)",
                retry_after=_seconds(retry_after) or _restore_wait(doc),
            )
        if status >= 500:
            raise FeedUnavailableError(f"Shopify answered HTTP {status} for {shop}")
        if status != 200:
            raise FeedError(f"Shopify answered HTTP {status} for {shop}'s orders query")
        if doc is None:
            raise FeedUnavailableError(f"Shopify's answer for {shop} is not a JSON object")
        errors = doc.get("errors")
        if errors:
            codes = _codes(errors)
            if "THROTTLED" in codes:
                raise FeedThrottledError(
                    f"Shopify throttled the orders query for {shop} (THROTTLED)",
                    retry_after=_seconds(retry_after) or _restore_wait(doc),
                )
            if "ACCESS_DENIED" in codes:
                raise FeedAuthError(
                    f"Shopify denied the orders query for {shop} (ACCESS_DENIED): the token "
                    "lacks read_orders"
                )
            raise FeedError(f"Shopify refused the orders query for {shop}: {_messages(errors)}")
        body = Node(doc, "")
        data = body.node("data")
        orders = data.node("orders") if data is not None else None
        if orders is None:
            raise PayloadError("the answer has no data.orders")
        info = orders.node("pageInfo")
        more = info is not None and info.flag("hasNextPage")
        cursor = info.text("endCursor") if info is not None else None
        if more and cursor is None:
            raise PayloadError("pageInfo.hasNextPage is true but there is no endCursor")
        return FeedPage(
            orders=tuple(self._listed(node) for node in orders.nodes("nodes")),
            next_page=cursor if more else None,
            budget=_budget(doc),
        )

    def _listed(self, node: Node) -> ListedOrder:
        return ListedOrder(
            order_id=str(node.raw("id")).rpartition("/")[2],
            version=str(node.raw("updatedAt") or ""),
            read=functools.partial(self._order, node),
        )

    def _order(self, node: Node) -> FeedOrder:
        body = Node(rest_order(node), node.path)
        stream = body.required_ident("id")
        updated_at = body.when("updated_at")
        if updated_at is None:
            raise PayloadError(f"{node.path}.updatedAt is required")
        identity = DeliveryIdentity(f"poll:{stream}@{format_datetime(updated_at)}")
        return FeedOrder(
            identity=identity,
            stream=stream,
            updated_at=updated_at,
            placed_at=body.when("created_at"),
            parsed=self._events(body, identity, updated_at),
        )

    def _events(self, order: Node, identity: DeliveryIdentity, at: datetime) -> ParseResult:
        adapter = self._adapter

        def run(
            handler: Callable[[ShopifyAdapter, _Delivery], ParseResult],
            topic: str,
            body: Node = order,
            triggered_at: datetime | None = None,
        ) -> list[DomainEvent]:
            delivery = _Delivery(
                body=body,
                topic=POLL_TOPIC + topic,
                identity=identity,
                triggered_at=triggered_at,
                received_at=at,
            )
            parsed = handler(adapter, delivery)
            return [] if isinstance(parsed, Skip) else list(parsed)

        # What rules an invite out comes first: the snapshot knows it already, so the trigger
        # below is skipped at once instead of enqueued and withdrawn in the same transaction.
        events: list[DomainEvent] = []
        if order.has("cancelled_at"):
            events += run(ShopifyAdapter._order_cancelled, "orders/cancelled")
        for refunded in order.nodes("refunds"):
            events += run(ShopifyAdapter._refund, "refunds/create", refunded)
        events += run(ShopifyAdapter._order_created, "orders/create")
        if order.text("financial_status") in PAID:
            paid_at = order.when("processed_at")
            events += run(ShopifyAdapter._order_paid, "orders/paid", triggered_at=paid_at)
        fulfilments = order.nodes("fulfillments")
        shipped = [f for f in fulfilments if f.text("status") == SHIPPED]
        if shipped or order.text("fulfillment_status") in FULFILLED:
            events += run(ShopifyAdapter._order_fulfilled, "orders/fulfilled")
        for parcel in shipped:
            if parcel.text("shipment_status") == "delivered":
                events += run(ShopifyAdapter._fulfilment, "fulfillments/update", parcel)
        return events


def _json(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = decode(raw)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _codes(errors: object) -> set[str]:
    if not isinstance(errors, list):
        return set()
    codes = set()
    for error in errors:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        if isinstance(code, str):
            codes.add(code.upper())
        elif isinstance(error, dict) and str(error.get("message", "")).lower() == "throttled":
            codes.add("THROTTLED")  # the shape older answers (and the docs' example) have
    return codes


def _messages(errors: object) -> str:
    if not isinstance(errors, list):
        return str(errors)[:200]
    found = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
    return "; ".join(found)[:500] or "no message"


def _cost(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    extensions = doc.get("extensions") if doc is not None else None
    cost = extensions.get("cost") if isinstance(extensions, dict) else None
    return cost if isinstance(cost, dict) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _budget(doc: dict[str, Any]) -> Budget | None:
    cost = _cost(doc)
    status = cost.get("throttleStatus") if cost is not None else None
    if cost is None or not isinstance(status, dict):
        return None
    values = (
        _number(status.get("currentlyAvailable")),
        _number(status.get("maximumAvailable")),
        _number(status.get("restoreRate")),
        _number(cost.get("requestedQueryCost")),
    )
    available, maximum, rate, requested = values
    if available is None or maximum is None or rate is None or requested is None:
        return None
    return Budget(available=available, maximum=maximum, restore_rate=rate, cost=requested)


def _restore_wait(doc: dict[str, Any] | None) -> float | None:
    """How long the bucket needs to hold the query's requested cost again."""
    budget = _budget(doc) if doc is not None else None
    if budget is None or budget.restore_rate <= 0:
        return None
    return max(0.0, budget.cost - budget.available) / budget.restore_rate


def _seconds(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        value = float(header.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


__all__ = ["ShopifyFeed"]
