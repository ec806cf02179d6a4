"""A local stand-in for Shopify's GraphQL Admin ``orders`` connection, with its cost bucket.

Written from Shopify's documented shapes, for tests and the bench: it answers
``POST /admin/api/{version}/graphql.json`` on loopback with the ``orders`` connection sorted by
``UPDATED_AT`` and filtered by ``updated_at:>='…'`` (and ``updated_at:<'…'``), pages of
``first`` nodes with ``pageInfo { hasNextPage endCursor }``, and ``extensions.cost``.

The cost bucket is a leaky bucket as Shopify documents it: ``maximum`` points (2,000 and a
restore rate of 100 points per second on a standard plan), refilled continuously. A query
whose *requested* cost (objects 1, connections 2 plus ``first`` times an element) exceeds what
the bucket holds is refused with ``THROTTLED``, as HTTP 200 with ``errors[].extensions.code``
or, with ``throttle_status=429``, as a 429; a query that would cost more than 1,000 points is
refused outright; a served query takes its *actual* cost (what the nodes returned cost). The
stand-in prices this one query shape, not GraphQL at large: it reads the nested ``first``
limits from the query text and the fields it returns are the stored order nodes, trimmed to
those limits.

Counters for tests: :attr:`ShopifyOrdersStandIn.served` (how often each order was served),
``pages``, ``requests``, ``throttled``, ``spent`` (points charged), and
:meth:`ShopifyOrdersStandIn.wait_pages`.
Scripted failures: :meth:`ShopifyOrdersStandIn.fail_next`.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import copy
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import attrs
from aiohttp import web

from kit.codec import format_datetime, parse_datetime
from kit.loopback import serving

STANDARD_MAXIMUM = 2000.0
STANDARD_RESTORE_RATE = 100.0
SINGLE_QUERY_LIMIT = 1000
_SINCE = re.compile(r"updated_at:>='([^']+)'")
_UNTIL = re.compile(r"updated_at:<'([^']+)'")
_LIMIT = "{}\\(first: (\\d+)\\)"


@attrs.define
class CostBucket:
    """Shopify's leaky bucket of query-cost points."""

    maximum: float = STANDARD_MAXIMUM
    restore_rate: float = STANDARD_RESTORE_RATE
    clock: Callable[[], float] = time.monotonic
    available: float = attrs.field(init=False)
    _at: float = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.available = self.maximum  # a bucket starts full
        self._at = self.clock()

    def refill(self) -> float:
        now = self.clock()
        self.available = min(self.maximum, self.available + (now - self._at) * self.restore_rate)
        self._at = now
        return self.available

    def status(self) -> dict[str, float]:
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": round(self.available, 3),
            "restoreRate": self.restore_rate,
        }


@attrs.frozen
class _Fault:
    status: int
    retry_after: float | None = None
    throttled_body: bool = False


def _limit(query: str, name: str) -> int:
    match = re.search(_LIMIT.format(name), query)
    return int(match.group(1)) if match else 0


@attrs.frozen
class _Limits:
    lines: int
    fulfillments: int
    tracking: int
    fulfillment_lines: int
    refunds: int
    refund_lines: int

    @classmethod
    def of(cls, query: str) -> _Limits:
        return cls(
            lines=_limit(query, "lineItems"),
            fulfillments=_limit(query, "fulfillments"),
            tracking=_limit(query, "trackingInfo"),
            fulfillment_lines=_limit(query, "fulfillmentLineItems"),
            refunds=_limit(query, "refunds"),
            refund_lines=_limit(query, "refundLineItems"),
        )

    def requested(self) -> int:
        """The requested cost of one order node: objects 1, connections 2 + first x element."""
        fulfilment = 1 + (2 + self.tracking) + (2 + self.fulfillment_lines * 2)
        refund = 1 + (2 + self.refund_lines * 2)
        return (
            7
            + (2 + self.lines * 3)
            + (2 + self.fulfillments * fulfilment)
            + (2 + self.refunds * refund)
        )


def _trim(order: dict[str, Any], limits: _Limits, api_version: str) -> dict[str, Any]:
    node = copy.deepcopy(order)
    node["lineItems"]["nodes"] = node["lineItems"]["nodes"][: limits.lines]
    node["fulfillments"] = node["fulfillments"][: limits.fulfillments]
    for parcel in node["fulfillments"]:
        parcel["trackingInfo"] = parcel["trackingInfo"][: limits.tracking]
        items = parcel["fulfillmentLineItems"]
        items["nodes"] = items["nodes"][: limits.fulfillment_lines]
    node["refunds"] = node["refunds"][: limits.refunds]
    for refund in node["refunds"]:
        items = refund["refundLineItems"]
        items["nodes"] = items["nodes"][: limits.refund_lines]
    customer = node.get("customer")
    if customer is not None and api_version < "2025-04":
        customer.pop("defaultEmailAddress", None)  # not in the schema before 2025-04
    return node


def _actual(node: dict[str, Any]) -> int:
    """What a returned order node costs: the objects and connections actually in it."""
    cost = 1 + 2  # the order, totalPriceSet + shopMoney
    if node.get("customer") is not None:
        cost += 1 + (1 if node["customer"].get("defaultEmailAddress") else 0)
    cost += sum(1 for key in ("billingAddress", "shippingAddress") if node.get(key))
    cost += 2 + sum(
        1 + (1 if line.get("variant") else 0) + (1 if line.get("product") else 0)
        for line in node["lineItems"]["nodes"]
    )
    cost += 2 + sum(
        1 + 2 + len(p["trackingInfo"]) + 2 + 2 * len(p["fulfillmentLineItems"]["nodes"])
        for p in node["fulfillments"]
    )
    cost += 2 + sum(1 + 2 + 2 * len(r["refundLineItems"]["nodes"]) for r in node["refunds"])
    return cost


def _cursor(order: dict[str, Any]) -> str:
    raw = f"{order['updatedAt']}|{order['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _sort_key(order: dict[str, Any]) -> tuple[datetime, int]:
    return parse_datetime(order["updatedAt"]), int(order["id"].rpartition("/")[2])


class ShopifyOrdersStandIn:
    """The orders connection's state: the shop's orders, the bucket, counters and faults."""

    def __init__(
        self,
        *,
        token: str,
        maximum: float = STANDARD_MAXIMUM,
        restore_rate: float = STANDARD_RESTORE_RATE,
        throttle_status: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.bucket = CostBucket(maximum=maximum, restore_rate=restore_rate, clock=clock)
        self.throttle_status = throttle_status
        self.orders: dict[str, dict[str, Any]] = {}  # GID -> order node
        self.served: collections.Counter[str] = collections.Counter()
        self.pages = 0
        self.requests = 0
        self.throttled = 0
        self.spent = 0.0  # actual query cost charged, in points
        self.versions: list[str] = []  # the API versions requests named
        self._faults: collections.deque[_Fault] = collections.deque()
        self._served_page = asyncio.Condition()

    # -- set-up -------------------------------------------------------------------------------

    def put(self, *orders: dict[str, Any]) -> None:
        """Add or replace orders (GraphQL order nodes, see :func:`synthetic_order`)."""
        for order in orders:
            self.orders[order["id"]] = order

    def fail_next(
        self,
        status: int,
        *,
        times: int = 1,
        retry_after: float | None = None,
        throttled_body: bool = False,
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (``throttled_body``: a THROTTLED
        GraphQL body, as a real 429 or a 200 carries)."""
        for _ in range(times):
            self._faults.append(_Fault(status, retry_after, throttled_body))

    async def wait_pages(self, count: int) -> None:
        """Return once ``count`` pages were served in all (bound it with ``asyncio.timeout``)."""
        async with self._served_page:
            await self._served_page.wait_for(lambda: self.pages >= count)

    # -- serving ------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/admin/api/{version}/graphql.json", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        self.versions.append(request.match_info["version"])
        if request.headers.get("X-Shopify-Access-Token") != self.token:
            return web.json_response(
                {
                    "errors": "[API] Invalid API key or access token (unrecognized login or wrong "
                    "password)"
                },
                status=401,
            )
        try:
            body = json.loads(await request.read())
            query: str = body["query"]
            variables: dict[str, Any] = body.get("variables") or {}
            first = int(variables["first"])
        except (ValueError, KeyError, TypeError):
            return web.json_response({"errors": [{"message": "Bad request"}]}, status=400)
        limits = _Limits.of(query)
        requested = 2 + first * limits.requested()
        if self._faults:
            return self._fault(self._faults.popleft(), requested)
        if first > 250:
            return _errors("The first argument must be at most 250", "BAD_REQUEST")
        if requested > SINGLE_QUERY_LIMIT:
            return _errors(
                f"Query cost is {requested}, which exceeds the single query max cost limit "
                f"({SINGLE_QUERY_LIMIT}).",
                "MAX_COST_EXCEEDED",
            )
        if self.bucket.refill() < requested:
            self.throttled += 1
            return self._throttled(requested, status=self.throttle_status)
        nodes, more = self._select(variables, first)
        version = request.match_info["version"]
        returned = [_trim(node, limits, version) for node in nodes]
        actual = 2 + sum(_actual(node) for node in returned)
        self.bucket.available -= actual
        self.spent += actual
        for node in nodes:
            self.served[node["id"]] += 1
        end = _cursor(nodes[-1]) if nodes else None
        answer = {
            "data": {
                "orders": {
                    "pageInfo": {"hasNextPage": more, "endCursor": end},
                    "nodes": returned,
                }
            },
            "extensions": {
                "cost": {
                    "requestedQueryCost": requested,
                    "actualQueryCost": actual,
                    "throttleStatus": self.bucket.status(),
                }
            },
        }
        async with self._served_page:
            self.pages += 1
            self._served_page.notify_all()
        return web.json_response(answer)

    def _select(self, variables: dict[str, Any], first: int) -> tuple[list[dict[str, Any]], bool]:
        search = str(variables.get("query") or "")
        since = _SINCE.search(search)
        until = _UNTIL.search(search)
        low = parse_datetime(since.group(1)) if since else None
        high = parse_datetime(until.group(1)) if until else None
        after = variables.get("after")
        start: tuple[datetime, int] | None = None
        if after:
            stamp, _, gid = base64.urlsafe_b64decode(after.encode()).decode().partition("|")
            start = parse_datetime(stamp), int(gid.rpartition("/")[2])
        matching = sorted(
            (
                o
                for o in self.orders.values()
                if (low is None or parse_datetime(o["updatedAt"]) >= low)
                and (high is None or parse_datetime(o["updatedAt"]) < high)
                and (start is None or _sort_key(o) > start)
            ),
            key=_sort_key,
        )
        return matching[:first], len(matching) > first

    def _throttled(self, requested: int, *, status: int) -> web.Response:
        answer = {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {
                        "code": "THROTTLED",
                        "documentation": "https://shopify.dev/api/usage/rate-limits",
                    },
                }
            ],
            "extensions": {
                "cost": {
                    "requestedQueryCost": requested,
                    "actualQueryCost": None,
                    "throttleStatus": self.bucket.status(),
                }
            },
        }
        return web.json_response(answer, status=status)

    def _fault(self, fault: _Fault, requested: int) -> web.Response:
        if fault.throttled_body:
            self.throttled += 1
            response = self._throttled(requested, status=fault.status)
        else:
            response = web.json_response(
                {"errors": [{"message": f"stand-in fault {fault.status}"}]}, status=fault.status
            )
        if fault.retry_after is not None:
            response.headers["Retry-After"] = f"{fault.retry_after:g}"
        return response


def _errors(message: str, code: str) -> web.Response:
    return web.json_response({"errors": [{"message": message, "extensions": {"code": code}}]})


class ShopifyServer:
    """Serves a :class:`ShopifyOrdersStandIn` on loopback; ``url`` is its ``api_base_url``."""

    def __init__(self, stand_in: ShopifyOrdersStandIn, *, host: str = "127.0.0.1") -> None:
        self.stand_in = stand_in
        self._serving = serving(stand_in.app(), host=host)
        self.url = ""

    async def __aenter__(self) -> ShopifyServer:
        self.url = await self._serving.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._serving.__aexit__(*exc_info)


@asynccontextmanager
async def running_shopify(stand_in: ShopifyOrdersStandIn) -> AsyncIterator[ShopifyServer]:
    """The stand-in listening on loopback for the duration of the block."""
    async with ShopifyServer(stand_in) as server:
        yield server


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def synthetic_order(
    number: int,
    *,
    updated_at: datetime,
    created_at: datetime | None = None,
    email: str | None = None,
    fulfilled_at: datetime | None = None,
    delivered_at: datetime | None = None,
    cancelled_at: datetime | None = None,
    refunded_lines: int = 0,
    test: bool = False,
    lines: int = 2,
    locale: str = "de",
) -> dict[str, Any]:
    """A GraphQL order node of a made-up order ``number`` (ids derive from it), shaped as the
    feed's query asks for it. ``fulfilled_at`` adds one successful fulfilment of every line."""
    order_id = 5560000000000 + number
    created = created_at or updated_at - timedelta(days=1)
    line_nodes = [
        {
            "id": gid("LineItem", order_id * 10 + i),
            "title": f"Product {i}",
            "name": f"Product {i} - Default",
            "sku": f"SKU-{i}",
            "vendor": "Kit Demo",
            "quantity": 1,
            "currentQuantity": 1,
            "isGiftCard": False,
            "variant": {"id": gid("ProductVariant", 4400000 + i)},
            "product": {"id": gid("Product", 8800000 + i)},
        }
        for i in range(1, lines + 1)
    ]
    fulfilments = []
    if fulfilled_at is not None:
        fulfilments.append(
            {
                "id": gid("Fulfillment", order_id * 10 + 1),
                "name": f"#{number}.1",
                "status": "SUCCESS",
                "displayStatus": "DELIVERED" if delivered_at else "IN_TRANSIT",
                "createdAt": format_datetime(fulfilled_at),
                "updatedAt": format_datetime(delivered_at or fulfilled_at),
                "deliveredAt": format_datetime(delivered_at) if delivered_at else None,
                "estimatedDeliveryAt": None,
                "trackingInfo": [{"company": "DHL"}],
                "fulfillmentLineItems": {
                    "nodes": [{"lineItem": {"id": n["id"]}} for n in line_nodes]
                },
            }
        )
    refunds = []
    if refunded_lines:
        refunds.append(
            {
                "id": gid("Refund", order_id * 10 + 1),
                "createdAt": format_datetime(updated_at),
                "refundLineItems": {
                    "nodes": [
                        {"lineItem": {"id": n["id"]}, "quantity": 1}
                        for n in line_nodes[:refunded_lines]
                    ]
                },
            }
        )
    address = {"firstName": "Erika", "lastName": "Muster", "countryCodeV2": "DE"}
    mail = email if email is not None else f"buyer{number}@example.org"
    return {
        "id": gid("Order", order_id),
        "name": f"#{number}",
        "email": mail,
        "createdAt": format_datetime(created),
        "processedAt": format_datetime(created),
        "updatedAt": format_datetime(updated_at),
        "cancelledAt": format_datetime(cancelled_at) if cancelled_at else None,
        "cancelReason": "CUSTOMER" if cancelled_at else None,
        "test": test,
        "sourceName": "web",
        "tags": [],
        "customerLocale": locale,
        "displayFinancialStatus": "PARTIALLY_REFUNDED" if refunded_lines else "PAID",
        "displayFulfillmentStatus": "FULFILLED" if fulfilled_at else "UNFULFILLED",
        "currencyCode": "EUR",
        "totalPriceSet": {"shopMoney": {"amount": "59.80", "currencyCode": "EUR"}},
        "customer": {
            "id": gid("Customer", 7010000000000 + number),
            "firstName": "Erika",
            "lastName": "Muster",
            "tags": [],
            "email": mail,
            "defaultEmailAddress": {"emailAddress": mail, "marketingState": "NOT_SUBSCRIBED"},
        },
        "billingAddress": address,
        "shippingAddress": address,
        "lineItems": {"nodes": line_nodes},
        "fulfillments": fulfilments,
        "refunds": refunds,
    }


__all__ = [
    "STANDARD_MAXIMUM",
    "STANDARD_RESTORE_RATE",
    "CostBucket",
    "ShopifyOrdersStandIn",
    "ShopifyServer",
    "gid",
    "running_shopify",
    "synthetic_order",
]
