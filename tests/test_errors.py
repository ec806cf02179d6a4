"""The error tree, and the table of HTTP outcomes in docs/etrusted-api.md, against the code.

Every row of that table is met for real, in each outcome it names (every status of a range, each
body, a "GET" row through a GET, PUT, PATCH and DELETE): the client talks to a loopback server
that answers as the row says, and the class raised, its kind and what a flusher does with an
entry whose send met it must match the row. A row changed without the code, or the code without
the row, fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import kit.errors
from kit.client import ETrustedClient
from kit.config import ClientConfig
from kit.errors import (
    ETrustedError,
    FailureKind,
    InDoubtError,
    PermanentAPIError,
    UnauthorizedError,
)
from kit.flusher import Flusher, FlusherConfig
from kit.outbox import Outbox
from kit.outbox.types import State
from kit.retry import Backoff
from kit.testing import InMemoryStorage

DOC = Path(__file__).parent.parent / "docs" / "etrusted-api.md"
HEADER = "| call | what happened | raised | `kind` | flusher |"
CHANNEL = "chl-00000000-0000-4000-8000-000000000001"
EVENT = {
    "type": "order_shipped",
    "customer": {"email": "ada@example.com"},
    "channel": {"id": CHANNEL, "type": "etrusted"},
    "transaction": {"reference": "order-1"},
    "system": "tests",
    "systemVersion": "1.0",
}
# The client's request_timeout. Only a reply that never comes should meet it: the rows that hang
# end the call this soon, every other row gets ample time, so a loaded machine cannot turn a slow
# answer into a timeout and the row into another class.
HANG_TIMEOUT = 0.5
TIMEOUT = 30.0


# -- the table ------------------------------------------------------------------------------


@attrs.frozen
class Row:
    call: str
    what: str
    raised: str | None  # a class name, or None: the call succeeds
    kind: str | None
    flusher: str | None  # None: the flusher never meets this while sending
    retry_after_set: bool  # the raised cell says the error carries the server's Retry-After

    @property
    def id(self) -> str:
        return f"{self.call}: {self.what}"


def _cell(text: str) -> str | None:
    """The first word of a cell, backticks removed; None for a dash."""
    word = text.strip().split(" ")[0].strip("`")
    return None if word == "—" else word


def doc_rows() -> list[Row]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER) + 2  # skip the |---| line
    rows: list[Row] = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        call, what, raised, kind, flusher = (c.strip() for c in line.strip("|").split("|"))
        rows.append(
            Row(
                call,
                what,
                _cell(raised),
                _cell(kind),
                None if flusher == "—" else flusher,
                "`retry_after` set" in raised,
            )
        )
    return rows


# -- answering as a row says ----------------------------------------------------------------


class Cut(enum.Enum):
    DROP = "drop"  # the connection is closed before any answer
    HANG = "hang"  # no answer until the client's timeout
    REFUSED = "refused"  # nothing listens
    TLS = "tls"  # an https URL for a plain-HTTP listener: the TLS handshake fails


@attrs.frozen
class Reply:
    """How the token endpoint (``token=True``) or the API answers in one row."""

    status: int = 200
    body: bytes | None = None  # None: the good body for the call
    headers: dict[str, str] = attrs.field(factory=dict)
    cut: Cut | None = None
    first_only: bool = False  # only the first request; later ones get the good answer
    token: bool = False


ERROR = b'{"Message": "refused by the test server"}'
OAUTH_ERROR = b'{"error": "invalid_client"}'
RETRY_AFTER = {"Retry-After": "1"}


def api(status: int = 200, **kwargs: Any) -> Reply:
    body = kwargs.pop("body", None if 200 <= status < 300 else ERROR)
    return Reply(status=status, body=body, **kwargs)


def token(status: int = 200, **kwargs: Any) -> Reply:
    body = kwargs.pop("body", None if 200 <= status < 300 else OAUTH_ERROR)
    return Reply(status=status, body=body, token=True, **kwargs)


Variants = Reply | tuple[Reply, ...]  # a row naming several outcomes is met in each of them


def _cuts(call: str, maker: Any) -> dict[tuple[str, str], Variants]:
    timeout = "timeout" if call != "POST /events" else "timeout after the request was sent"
    return {
        (call, timeout): maker(cut=Cut.HANG),
        (call, "disconnect before the answer"): maker(cut=Cut.DROP),
        (call, "connection refused (or DNS, TLS, connect timeout)"): (
            maker(cut=Cut.REFUSED),
            maker(cut=Cut.TLS),
        ),
    }


def _statuses(call: str, maker: Any, statuses: list[int]) -> dict[tuple[str, str], Variants]:
    return {(call, str(s)): maker(s) for s in statuses}


def _each(maker: Any, statuses: range | list[int]) -> tuple[Reply, ...]:
    return tuple(maker(s, body=b"") for s in statuses)


SCENARIOS: dict[tuple[str, str], Variants] = {
    ("token", "2xx with an `access_token`"): token(),
    **_statuses("token", token, [400, 401, 403, 408, 500, 502, 503, 504]),
    (
        "token",
        "any other 1xx, 3xx or 4xx, e.g. 404 (a wrong `token_url`; redirects are not followed)",
    ): _each(token, [301, 302, 307, 404, 405, 422]),
    ("token", "429 with `Retry-After`"): token(429, headers=RETRY_AFTER),
    ("token", "429 without `Retry-After`"): token(429),
    ("token", "2xx whose body is not JSON or has no `access_token`"): (
        token(body=b"<html>"),
        token(body=b'{"expires_in": 300}'),
    ),
    ("token", "2xx with an empty `access_token`"): (
        token(body=b'{"access_token": ""}'),
        token(body=b'{"access_token": " "}'),
    ),
    **_cuts("token", token),
    ("POST /events", "202 with an `EventRef`"): api(),
    ("POST /events", "2xx whose body is not JSON"): api(body=b"<html>accepted</html>"),
    ("POST /events", "2xx without an `EventRef`, or an empty one"): (
        api(body=b'{"Message": "accepted"}'),
        api(body=b'{"EventRef": ""}'),
    ),
    (
        "POST /events",
        "any 1xx/3xx but 307/308 (a 303, 302 or 301 after a POST may point at its result)",
    ): _each(api, [300, 301, 302, 303, 304]),
    (
        "POST /events",
        "307 or 308 (repeat the request elsewhere: not acted on; not followed)",
    ): _each(api, [307, 308]),
    **_statuses("POST /events", api, [400, 403, 404, 408, 422, 500, 503, 504]),
    ("POST /events", "401, then 2xx with a fresh token"): api(401, first_only=True),
    ("POST /events", "401, and 401 again with a fresh token"): api(401),
    ("POST /events", '409 (undocumented here; possibly "already have it")'): api(409),
    ("POST /events", "429 with `Retry-After`"): api(429, headers=RETRY_AFTER),
    ("POST /events", "429 without `Retry-After`"): api(429),
    ("POST /events", "502 (a gateway gave up on an upstream that may have acted)"): api(502),
    ("POST /events", "503 with `Retry-After`"): api(503, headers=RETRY_AFTER),
    ("POST /events", "520 to 527 (a CDN's origin errors)"): tuple(api(s) for s in range(520, 528)),
    **_cuts("POST /events", api),
    ("POST /event-types", "409 (the name exists)"): api(409),
    ("GET", "200"): api(),
    ("GET", "2xx whose body is not JSON or does not fit the model (a DELETE reads none)"): (
        api(body=b'{"not": "a list"}'),
        api(body=b"<html>"),
    ),
    ("GET", "302 or any 1xx/3xx"): _each(api, [300, 301, 302, 303, 304, 307, 308]),
    **_statuses("GET", api, [400, 403, 404, 408, 409, 422, 500, 502, 503, 504]),
    ("GET", "401, then 2xx with a fresh token"): api(401, first_only=True),
    ("GET", "401, and 401 again with a fresh token"): api(401),
    ("GET", "429 with `Retry-After`"): api(429, headers=RETRY_AFTER),
    ("GET", "429 without `Retry-After`"): api(429),
    **_cuts("GET", api),
}
# The good answer per API request: POST /events, POST /event-types, the PUT, PATCH and DELETE
# that a "GET" row stands for, and any GET (a list).
EVENT_TYPE = b'{"id": "ety-1", "name": "twice", "active": true}'
GOOD = {
    ("POST", "/events"): (202, b'{"EventRef": "evt-00000000-0000-4000-8000-000000000001"}'),
    ("POST", "/event-types"): (201, EVENT_TYPE),
    ("PUT", "/event-types/ety-1"): (200, EVENT_TYPE),
    ("PATCH", "/invite-settings/is-1"): (200, b'{"id": "is-1", "enabled": true}'),
    ("DELETE", "/event-types/ety-1"): (204, b""),
}


class Server:
    """A loopback server with a token endpoint and an API that answer as a :class:`Reply`."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.seen = {True: 0, False: 0}
        self.tokens = 0
        self.never = asyncio.Event()  # set at teardown only: a hung answer ends then
        app = web.Application()
        app.router.add_post("/oauth/token", self._token)
        app.router.add_route("*", "/{tail:.*}", self._api)
        self.server = TestServer(app, host="127.0.0.1")

    async def __aenter__(self) -> Server:
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.never.set()
        await self.server.close()

    def config(self, unused_port: int) -> ClientConfig:
        base = str(self.server.make_url("")).rstrip("/")
        dead = f"http://127.0.0.1:{unused_port}"
        broken = {Cut.REFUSED: dead, Cut.TLS: base.replace("http://", "https://", 1)}
        cut = broken.get(self.reply.cut) if self.reply.cut else None
        return ClientConfig(
            client_id="client",
            client_secret="secret",
            api_url=cut if cut and not self.reply.token else base,
            token_url=(cut if cut and self.reply.token else base) + "/oauth/token",
            request_timeout=HANG_TIMEOUT if self.reply.cut is Cut.HANG else TIMEOUT,
        )

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.tokens += 1
        good = web.json_response({"access_token": f"tok-{self.tokens}", "expires_in": 300})
        return await self._answer(request, True, good)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        status, body = GOOD.get((request.method, request.path), (200, b"[]"))
        good = web.Response(status=status, body=body, content_type="application/json")
        return await self._answer(request, False, good)

    async def _answer(
        self, request: web.Request, token: bool, good: web.Response
    ) -> web.StreamResponse:
        reply = self.reply
        self.seen[token] += 1
        if reply.token != token or (reply.first_only and self.seen[token] > 1):
            return good
        if reply.cut is Cut.HANG:
            await self.never.wait()
        if reply.cut is Cut.DROP:
            await request.read()
            if request.transport is not None:
                request.transport.abort()
            return good  # never written: the connection is gone
        if reply.body is None:
            good.set_status(reply.status)
            good.headers.update(reply.headers)
            return good
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)


# The requests a "GET" row stands for: none of them can create anything twice.
SAFE_METHODS = ("GET", "PUT", "PATCH", "DELETE")


async def _call(client: ETrustedClient, call: str, method: str) -> None:
    if method == "GET":
        await client.list_channels()
    elif method == "PUT":
        await client.set_event_type_active("ety-1", True)
    elif method == "PATCH":
        await client.update_invite_settings("is-1", {"enabled": True})
    elif method == "DELETE":
        await client.delete_event_type("ety-1")
    elif call == "POST /event-types":
        await client.create_event_type("twice")
    else:  # the token request is made for a POST /events here
        await client.create_event(EVENT)


@attrs.frozen
class Case:
    """One way to meet a row: one of the outcomes it names, through one of the requests."""

    row: Row
    reply: Reply | None  # None: the row has no scenario, which fails the test
    method: str

    @property
    def id(self) -> str:
        reply = self.reply
        if reply is None:
            return self.row.id
        what = reply.cut.value if reply.cut else str(reply.status)
        if reply.body and 200 <= reply.status < 300:
            what += f" {reply.body.decode()}"
        return f"{self.row.id} [{self.method} {what}]"


def _cases(row: Row) -> list[Case]:
    variants = SCENARIOS.get((row.call, row.what))
    replies: tuple[Reply | None, ...] = (
        (None,) if variants is None else variants if isinstance(variants, tuple) else (variants,)
    )
    methods: tuple[str, ...] = ("POST",)
    if row.call == "GET":
        reads_body = "body" in row.what
        methods = tuple(m for m in SAFE_METHODS if m != "DELETE" or not reads_body)
    return [Case(row, reply, method) for reply in replies for method in methods]


def _scenario(case: Case) -> Reply:
    if case.reply is None:
        pytest.fail(f"docs/etrusted-api.md has a row this test cannot produce: {case.row.id}")
    return case.reply


ROWS = doc_rows()
CASES = [c for r in ROWS for c in _cases(r)]
FLUSHER_CASES = [c for c in CASES if c.row.flusher is not None]


def test_every_scenario_has_its_row() -> None:
    """The table lists every outcome this test knows how to produce (none left out)."""
    documented = {(r.call, r.what) for r in ROWS}
    assert len(documented) == len(ROWS), "a row appears twice"
    assert sorted(set(SCENARIOS) - documented) == []


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_the_client_raises_what_the_row_says(case: Case, unused_port: int) -> None:
    """Each outcome raises the documented class, whose kind is the documented kind."""
    row = case.row
    raised: ETrustedError | None = None
    async with (
        Server(_scenario(case)) as server,
        ETrustedClient(server.config(unused_port)) as client,
    ):
        try:
            await _call(client, row.call, case.method)
        except ETrustedError as exc:
            raised = exc
    if row.raised is None:
        assert raised is None, f"{row.id}: raised {raised!r}"
        return
    assert raised is not None, f"{row.id}: nothing raised"
    assert type(raised).__name__ == row.raised, f"{row.id}: raised {raised!r}"
    assert raised.kind.name == row.kind
    assert raised.retry_after == (1.0 if row.retry_after_set else None)


@pytest.mark.parametrize("case", FLUSHER_CASES, ids=[c.id for c in FLUSHER_CASES])
async def test_the_flusher_does_what_the_row_says(case: Case, unused_port: int) -> None:
    """An entry whose send meets the outcome ends as the row's flusher column says."""
    config = FlusherConfig(
        concurrency=1,
        lease_seconds=10.0,
        poll_interval=0.01,
        max_sends=5,
        backoff=Backoff(base=3600.0, cap=3600.0),  # a retry is never due again in this run
        reconcile_delay=3600.0,
        auth_pause=3600.0,
        pace_default=0.01,
        check_event_types=False,
    )
    async with (
        Server(_scenario(case)) as server,
        Outbox(InMemoryStorage()) as outbox,
        ETrustedClient(server.config(unused_port)) as client,
    ):
        await outbox.enqueue(EVENT)
        flusher = Flusher(outbox, client, config)
        with contextlib.suppress(UnauthorizedError):  # how a one-shot run under refusal ends
            await asyncio.wait_for(flusher.run_once(), 30)
        (entry,) = await outbox.entries()
    if entry.state is State.DELIVERED:
        done = "delivered"
    elif entry.state is State.DEAD:
        done = "dead-letter"
    elif entry.state is State.IN_DOUBT:
        done = "reconcile"
    elif flusher.stats.auth_pauses:
        done = "pause"
    else:
        assert entry.state is State.PENDING
        # One send, counted once, or none: anything else matches no row.
        done = {0: "retry, not counted", 1: "retry, counted"}.get(entry.sends, f"{entry.sends}")
    assert done == case.row.flusher, case.id


# -- the tree --------------------------------------------------------------------------------


def _tree() -> dict[str, str]:
    """``{class: parent}`` as drawn in the kit.errors module docstring."""
    doc = kit.errors.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        match = re.match(r"^    ((?:│   |    )*)(?:├── |└── )?([A-Z]\w+Error)\b", line)
        if match is None:
            continue
        depth = len(match.group(1)) // 4 + (0 if line.strip().startswith("KitError") else 1)
        del stack[depth:]
        if stack:
            parents[match.group(2)] = stack[-1]
        stack.append(match.group(2))
    return parents


def _error_classes() -> list[type[BaseException]]:
    out = []
    for name in kit.errors.__all__:
        value = getattr(kit.errors, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            out.append(value)
    return out


def test_the_docstring_tree_is_the_class_tree() -> None:
    """The tree drawn in kit.errors lists every exported error under its real parent."""
    drawn = _tree()
    for cls in _error_classes():
        if cls is kit.errors.KitError:
            continue
        assert cls.__name__ in drawn, f"{cls.__name__} is missing from the docstring tree"
        assert drawn[cls.__name__] == cls.__bases__[0].__name__, cls.__name__
    assert set(drawn) <= {c.__name__ for c in _error_classes()}


def test_each_branch_has_one_kind_fixed_by_its_class() -> None:
    """isinstance against a branch tells the kind: no subclass has a kind of its own."""
    roots = {
        kit.errors.PermanentAPIError: FailureKind.PERMANENT,
        kit.errors.RetryableError: FailureKind.RETRYABLE,
        kit.errors.InDoubtError: FailureKind.IN_DOUBT,
        kit.errors.UnauthorizedError: FailureKind.UNAUTHORIZED,
    }
    for cls in _error_classes():
        if not issubclass(cls, ETrustedError) or cls is ETrustedError:
            continue
        (root,) = [r for r in roots if issubclass(cls, r)]
        assert cls.kind is roots[root], cls.__name__
    error = kit.errors.GatewayError("bad gateway", status=502)
    with pytest.raises(AttributeError):
        error.kind = FailureKind.RETRYABLE  # type: ignore[misc]
    assert error.kind is FailureKind.IN_DOUBT
    with pytest.raises(TypeError):
        ETrustedError("which kind?")


def test_a_subclass_cannot_change_or_mix_kinds() -> None:
    """A subclass of a branch keeps its kind; one with two kinds is refused when defined."""
    with pytest.raises(TypeError):

        class _Mixed(InDoubtError, PermanentAPIError):
            pass

    with pytest.raises(TypeError):

        class _Changed(InDoubtError, kind=FailureKind.RETRYABLE):
            pass

    class _Mine(InDoubtError):
        pass

    assert _Mine("x").kind is FailureKind.IN_DOUBT
