"""A stand-in for a WooCommerce store's REST v3 orders listing, served on loopback.

Written from the documented shapes (platforms.md §7.4; WooCommerce's REST API reference), not
from a real store: ``GET /wp-json/wc/v3/orders`` with HTTP Basic auth (the REST API key),
``modified_after`` / ``modified_before`` (UTC with ``dates_are_gmt=true``, else in the site's
``utc_offset``, compared strictly), ``orderby`` ``modified``/``date``/``id``, ``order``,
``status`` (``any`` or a comma-separated list), ``exclude`` (ids, comma-separated or as
``exclude[]``), ``per_page`` (1 to 100, else 400 ``rest_invalid_param``) and ``page``; the
totals in ``X-WP-Total`` and ``X-WP-TotalPages``.

Tests and the bench put orders in (:meth:`WooCommerceStandIn.put`, REST-shaped dicts) and read
what the client asked (:attr:`~WooCommerceStandIn.requests`, :meth:`~WooCommerceStandIn.reads`)
and how often each order was listed (:attr:`~WooCommerceStandIn.served`).
:meth:`~WooCommerceStandIn.fail_next` answers the next requests with an error status (a host's
429 or 503 with ``Retry-After``, a 500), before authentication, as a proxy in front would.
:meth:`~WooCommerceStandIn.between_requests` changes the store right after a listing was
answered, before the client asks for the next page (an order saved mid-read).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
from aiohttp import web

ORDERS_PATH = "/wp-json/wc/v3/orders"
MAX_PER_PAGE = 100
_ORDER_KEYS = {"modified": "date_modified_gmt", "date": "date_created_gmt", "id": "id"}


@attrs.frozen(kw_only=True)
class OrdersRequest:
    """One request the stand-in answered: the query it got and the status it sent."""

    params: Mapping[str, str]
    status: int

    @property
    def page(self) -> int:
        return int(self.params.get("page", "1"))


@attrs.frozen
class _Fault:
    status: int
    retry_after: float | None = None


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "data": {"status": status}}, status=status
    )


def _utc(order: Mapping[str, Any], key: str) -> datetime:
    value = order.get(key)
    if not isinstance(value, str):
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _ids(values: Iterable[str]) -> frozenset[int]:
    """WordPress's id list: comma-separated, repeated, or both."""
    return frozenset(int(part) for value in values for part in value.split(",") if part.strip())


class WooCommerceStandIn:
    """The store's orders and the REST API key it accepts."""

    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        orders: Iterable[Mapping[str, Any]] = (),
        utc_offset: timedelta = timedelta(0),
    ) -> None:
        self._credentials = f"{consumer_key}:{consumer_secret}".encode()
        self._orders: dict[int, dict[str, Any]] = {}
        self._faults: deque[_Fault] = deque()
        self._faults_after = 0  # requests still answered normally before the faults start
        self._changes: list[tuple[int, Callable[[WooCommerceStandIn], None]]] = []
        self.utc_offset = utc_offset
        self.requests: list[OrdersRequest] = []
        self.served: Counter[int] = Counter()  # order id -> times listed in a 200 answer
        for order in orders:
            self.put(order)

    # -- the store's side ------------------------------------------------------------------

    def put(self, order: Mapping[str, Any]) -> None:
        """Add an order or replace it (by ``id``), as the store's last save left it."""
        self._orders[int(order["id"])] = dict(order)

    def fail_next(
        self, status: int, *, retry_after: float | None = None, times: int = 1, after: int = 0
    ) -> None:
        """Answer ``times`` requests with ``status`` (and ``Retry-After``), starting once
        ``after`` more requests were answered as usual (a key revoked mid-way, say)."""
        self._faults.extend(_Fault(status, retry_after) for _ in range(times))
        self._faults_after = after

    def between_requests(
        self, change: Callable[[WooCommerceStandIn], None], *, after: int = 1
    ) -> None:
        """Call ``change`` with the store once ``after`` more listings were answered, before
        the next request is: the store saving an order while a client pages through."""
        self._changes.append((len(self.requests) + after, change))

    def reads(self) -> Counter[tuple[str, int]]:
        """How often each page of each window (``modified_after``, page) was answered 200."""
        return Counter(
            (r.params.get("modified_after", ""), r.page) for r in self.requests if r.status == 200
        )

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(ORDERS_PATH, self._list)
        return app

    async def _list(self, request: web.Request) -> web.Response:
        response = self._answer(request)
        self.requests.append(OrdersRequest(params=dict(request.query), status=response.status))
        due = [change for at, change in self._changes if at == len(self.requests)]
        self._changes = [(at, c) for at, c in self._changes if at != len(self.requests)]
        for change in due:
            change(self)
        return response

    def _answer(self, request: web.Request) -> web.Response:
        if self._faults and self._faults_after > 0:
            self._faults_after -= 1
        elif self._faults:
            fault = self._faults.popleft()
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            return web.json_response(
                {"code": "stand_in_fault", "message": "injected", "data": {"status": fault.status}},
                status=fault.status,
                headers=headers,
            )
        if not self._authorised(request.headers.get("Authorization", "")):
            return _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
        query = request.query
        try:
            per_page = int(query.get("per_page", "10"))
            page = int(query.get("page", "1"))
            after = self._when(query.get("modified_after"), query)
            before = self._when(query.get("modified_before"), query)
            excluded = _ids(query.getall("exclude", []) + query.getall("exclude[]", []))
        except ValueError as exc:
            return _error(400, "rest_invalid_param", f"Invalid parameter(s): {exc}")
        if not 1 <= per_page <= MAX_PER_PAGE:
            return _error(
                400, "rest_invalid_param", "per_page must be between 1 (inclusive) and 100"
            )
        if page < 1:
            return _error(400, "rest_invalid_param", "page must be greater than or equal to 1")
        orderby = _ORDER_KEYS.get(query.get("orderby", "date"))
        if orderby is None:
            return _error(400, "rest_invalid_param", "orderby is not one of date, id, modified")
        statuses = {s for s in query.get("status", "any").split(",") if s}
        listed = [
            order
            for order in self._orders.values()
            if ("any" in statuses or order.get("status") in statuses)
            and (after is None or _utc(order, "date_modified_gmt") > after)
            and (before is None or _utc(order, "date_modified_gmt") < before)
            and int(order["id"]) not in excluded
        ]
        listed.sort(
            key=lambda o: (o[orderby] if orderby == "id" else _utc(o, orderby), o["id"]),
            reverse=query.get("order", "desc") == "desc",
        )
        total_pages = math.ceil(len(listed) / per_page)
        chunk = listed[(page - 1) * per_page : page * per_page]
        headers = {"X-WP-Total": str(len(listed)), "X-WP-TotalPages": str(total_pages)}
        self.served.update(int(o["id"]) for o in chunk)
        return web.json_response(chunk, headers=headers)

    def _authorised(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            sent = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(sent, self._credentials)

    def _when(self, value: str | None, query: Mapping[str, str]) -> datetime | None:
        if value is None:
            return None
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
        gmt = query.get("dates_are_gmt", "false").lower() in ("1", "true")
        return parsed.replace(tzinfo=UTC) - (timedelta(0) if gmt else self.utc_offset)


@attrs.frozen
class RunningStandIn:
    """A stand-in being served: ``url`` is the store URL to configure as ``store_url``."""

    stand_in: WooCommerceStandIn
    url: str


@asynccontextmanager
async def running_woocommerce(
    stand_in: WooCommerceStandIn, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningStandIn]:
    """Serve ``stand_in`` on loopback (``port`` 0 picks a free one) for the block."""
    runner = web.AppRunner(stand_in.app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield RunningStandIn(stand_in, f"http://{bound_host}:{bound_port}")
    finally:
        await runner.cleanup()


__all__ = [
    "MAX_PER_PAGE",
    "ORDERS_PATH",
    "OrdersRequest",
    "RunningStandIn",
    "WooCommerceStandIn",
    "running_woocommerce",
]
