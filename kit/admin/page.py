"""The operator page at ``/`` of the admin listener: read-only views, one guarded action.

Server-rendered HTML through jinja2 with autoescape on: customer data and server error texts
reach the page, so escaping is the template engine's job, never a hand-written rule. The one
action, retrying dead entries, changes the outbox: it asks for the admin token, a per-process
CSRF secret from the form, and a same-origin ``Origin``/``Referer``, and it is logged.

Behind a reverse proxy the browser's origin is the proxy's (``https://ops.example.com``), not
the one the listener sees: ``public_url`` names it, and its path is where the page's forms
point. ``X-Forwarded-*`` headers are never read: anyone who reaches the listener can send them.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import jinja2
from aiohttp import web

from kit.admin.trend import INTERVAL, CountsTrend, sampling
from kit.journal.explain import decision_facts, explain, explanation_json, utc_text
from kit.journal.protocol import Journal
from kit.journal.records import LatestDecision
from kit.outbox import Outbox
from kit.outbox.types import Entry, State
from kit.redact import mask_emails

log = logging.getLogger("kit.admin.page")

LIST_LIMIT = 50  # dead and in-doubt entries shown; the CLI lists them all
DECISIONS_LIMIT = 30  # the newest decisions shown; ``explain`` has a stream's whole story
MAX_QUERY = 200  # a search is one order reference or key
# The page holds customer data and one action: no other site may frame it (to steer a click
# onto the action), no cache may keep it, and no script runs in it (it has none of its own).
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def _no_empty_token(token: str | None) -> str | None:
    return token or None  # an empty token would match an empty form field


@attrs.frozen
class PageSources:
    """Where the page reads from; callables because ``serve`` opens the outbox after the
    admin listener's routes are installed. ``token`` None or empty: the retry action is
    refused. ``public_url``: where browsers reach the page through a proxy (see the module)."""

    outbox: Callable[[], Outbox | None]
    journal: Callable[[], Journal | None]
    token: str | None = attrs.field(converter=_no_empty_token)
    public_url: str | None = None

    @property
    def base(self) -> str:
        """The path the page's forms and redirect use: ``public_url``'s, else ``/``."""
        path = "" if self.public_url is None else urlsplit(self.public_url).path
        return path if path.endswith("/") else f"{path}/"


def install_page(
    app: web.Application, sources: PageSources, *, trend_interval: float = INTERVAL
) -> None:
    csrf = secrets.token_urlsafe(32)  # per process: a restart invalidates open forms
    trend = CountsTrend()
    app.cleanup_ctx.append(sampling(trend, sources.outbox, interval=trend_interval))

    async def page(request: web.Request) -> web.Response:
        outbox = sources.outbox()
        if outbox is None:
            return web.Response(status=503, text="the outbox is not open yet")
        query = request.query.get("q", "").strip()[:MAX_QUERY]
        stats = await outbox.stats()
        troubled = [
            _entry_view(e)
            for state in (State.DEAD, State.IN_DOUBT)
            for e in await outbox.entries(state=state, limit=LIST_LIMIT)
        ]
        found = None
        decisions = []
        journal = sources.journal()
        if journal is not None:
            latest = await journal.latest_decisions(DECISIONS_LIMIT)
            decisions = [_decision_view(d) for d in latest]
            if query:
                found = _found_view(
                    explanation_json(query, None, await explain(outbox, journal, query))
                )
        html = _TEMPLATES.get_template("page.html").render(
            counts=[(state.value, stats.counts.get(state, 0)) for state in State],
            troubled=troubled,
            decisions=decisions,
            states=[state.value for state in State],
            trend=[(utc_text(t.at), [n for _, n in t.counts]) for t in reversed(trend.samples)],
            query=mask_emails(query),
            found=found,
            csrf=csrf,
            base=sources.base,
            retried=_count(request.query.get("retried", "")),
            can_retry=sources.token is not None,
        )
        return web.Response(text=html, content_type="text/html", headers=HEADERS)

    async def retry(request: web.Request) -> web.Response:
        try:
            form = await request.post()
        except ValueError:  # bytes that are not UTF-8, which no browser's form sends
            _refused(request, "the form cannot be read")
            raise web.HTTPBadRequest(text="the form cannot be read") from None
        same_origin = _same_origin(request, sources.public_url)
        if not same_origin or not _equal(_text(form.get("csrf")), csrf):
            _refused(request, "CSRF check failed")
            raise web.HTTPForbidden(text="CSRF check failed: reload the page and try again")
        offered = _text(form.get("token")) or _bearer(request)
        if sources.token is None or not _equal(offered, sources.token):
            _refused(request, "the admin token is missing or wrong")
            raise web.HTTPForbidden(text="the admin token is missing or wrong")
        outbox = sources.outbox()
        if outbox is None:
            raise web.HTTPServiceUnavailable(text="the outbox is not open yet")
        keys = [k for k in form.getall("key", []) if isinstance(k, str)]
        count = await outbox.retry_dead(keys or None) if keys or form.get("all") else 0
        log.warning(
            "admin retried %d dead entries (%s) for %s",
            count,
            f"{len(keys)} keys" if keys else "all",
            request.remote,
            extra={"action": "admin.retry", "count": count},
        )
        raise web.HTTPSeeOther(f"{sources.base}?retried={count}")

    app.router.add_get("/", page)
    app.router.add_post("/retry", retry)


def _refused(request: web.Request, why: str) -> None:
    log.warning(
        "admin retry refused for %s: %s", request.remote, why,
        extra={"action": "admin.retry_refused"},
    )  # fmt: skip


def _entry_view(entry: Entry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "state": entry.state.value,
        "reference": mask_emails(entry.transaction_reference),
        "event_type": entry.event_type,
        "updated_at": utc_text(entry.updated_at),
        "last_error": mask_emails(entry.last_error or ""),
    }


def _decision_view(latest: LatestDecision) -> dict[str, Any]:
    facts = decision_facts(latest.row)  # masks e-mails in free text
    return {
        "at": utc_text(latest.row.decided_at),
        "source": latest.source,
        "stream": latest.stream,
        "kind": latest.row.kind,
        "outcome": latest.row.outcome.value,
        "reason": facts.reason or "",
        "detail": facts.detail or "",
        "key": latest.row.key or "",
    }


def _found_view(found: dict[str, Any]) -> dict[str, Any]:
    """The explain document with its references masked, as the list of entries shows them:
    the free text of a shop's own numbering may quote an e-mail."""
    orders = [
        {
            **order,
            "references": [mask_emails(r) for r in order["references"]],
            "timeline": [
                {**item, "reference": mask_emails(item["reference"])}
                if item.get("reference")
                else item
                for item in order["timeline"]
            ],
        }
        for order in found["orders"]
    ]
    return {**found, "orders": orders}


def _same_origin(request: web.Request, public_url: str | None) -> bool:
    """The browser's ``Origin`` (or, without it, the ``Referer``) names this listener: the
    origin of ``public_url`` when set, else the scheme and ``Host`` the request came with."""
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if not claimed:
        return False
    expected = public_url or f"{request.scheme}://{request.host}"
    origin = _origin(claimed)
    return origin is not None and origin == _origin(expected)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port of ``url``, the default port filled in; None for no URL."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _equal(offered: str, expected: str) -> bool:
    return hmac.compare_digest(offered.encode(), expected.encode())


def _count(text: str) -> int | None:
    """The count the retry's redirect carries; None for anything else a link could put there."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _bearer(request: web.Request) -> str:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value if scheme.lower() == "bearer" else ""


__all__ = ["PageSources", "install_page"]
