"""The operator page at ``/`` of the admin listener: counts, dead and in-doubt entries with
their (masked) last error, an order's explain timeline, and the guarded retry action. Served
by a real aiohttp server on loopback over a SQLite file."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from builders import event
from journal.conftest import deliver
from journal.deliveries import EMAIL, KEY, fulfilled_order

from admin.page_helpers import ALLOWED, TEST_ORDER, TOKEN, Page, opened_page
from kit.admin.trend import CountsTrend
from kit.outbox.types import State


async def test_the_page_counts_entries_by_state(page: Page) -> None:
    html = await page.html()
    assert '<td data-state="dead">1</td>' in html
    assert '<td data-state="pending">0</td>' in html
    assert '<td data-state="delivered">0</td>' in html


async def test_the_latest_decisions_show_newest_first_with_skip_reasons(page: Page) -> None:
    html = await page.html()
    table = html[
        html.index('<table id="decisions">') : html.index("</table>", html.index("decisions"))
    ]
    rows = re.findall(
        r'<td class="kind">(\w+)</td>\s*<td>(\w+)</td><td class="reason">(\w*)</td>', table
    )
    assert rows == [("skipped", "recorded", "test_order"), ("enqueue", "enqueued", "")]
    assert TEST_ORDER in table


async def test_dead_entries_show_their_last_error_with_emails_masked(page: Page) -> None:
    """The key and the server's error are shown; the customer's address never in full."""
    html = await page.html()
    assert f'<td class="key">{KEY}</td>' in html
    assert "customer.email e***@example.org is not accepted" in html
    assert EMAIL not in html


async def test_a_search_shows_the_orders_explain_timeline(page: Page) -> None:
    html = await page.html("/?q=%231042")
    assert "orders/fulfilled" in html  # the delivery that carried the event
    assert "decision enqueue" in html
    assert KEY in html
    assert "Nothing matches" not in html
    assert "Nothing matches #9999" in await page.html("/?q=%239999")


async def test_a_search_is_escaped_and_masked(page: Page) -> None:
    """Whatever is typed comes back as text, never as markup, and never as a whole address."""
    html = await page.html(f"/?q=<script>x</script>{EMAIL}")
    assert "<script>x" not in html
    assert "&lt;script&gt;x&lt;/script&gt;e***@example.org" in html


async def test_a_search_shows_references_with_emails_masked(page: Page) -> None:
    """An order's references (an entry's, a stream's, an event's) are masked in the search's
    answer as they are in the list of troubled entries."""
    await page.kit.outbox.enqueue(event("buyer@example.org", email=EMAIL), key="k-email-ref")
    html = await page.html("/?q=k-email-ref")
    assert "entry k-email-ref" in html
    assert "b***@example.org" in html
    assert "buyer@example.org" not in html

    order = fulfilled_order("5560001000888")
    order["name"] = "buyer@example.org"  # a shop's order name is the reference
    await deliver(page.kit, order, "orders/fulfilled", "w-3")
    html = await page.html("/?q=buyer%40example.org")
    assert "event order_fulfilled" in html
    assert "buyer@example.org" not in html


async def test_retry_with_the_token_makes_the_entry_pending_and_is_logged(
    page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    form = {"csrf": await page.csrf(), "token": TOKEN, "key": KEY}
    with caplog.at_level(logging.INFO, logger="kit.admin.page"):
        assert await page.retry(form, Origin=page.origin) == 303
    assert (await page.kit.outbox.get(KEY)).state is State.PENDING
    assert "admin retried 1 dead entries" in caplog.text
    assert TOKEN not in caplog.text


async def test_retry_takes_the_token_as_a_bearer_header(page: Page) -> None:
    form = {"csrf": await page.csrf(), "key": KEY}
    status = await page.retry(form, Origin=page.origin, Authorization=f"Bearer {TOKEN}")
    assert status == 303
    assert (await page.kit.outbox.get(KEY)).state is State.PENDING


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_retry_without_the_right_token_is_forbidden(page: Page, token: str | None) -> None:
    form = {"csrf": await page.csrf(), "key": KEY}
    if token is not None:
        form["token"] = token
    assert await page.retry(form, Origin=page.origin) == 403
    assert (await page.kit.outbox.get(KEY)).state is State.DEAD


async def test_retry_is_forbidden_when_no_token_is_configured(tokenless: Page) -> None:
    form = {"csrf": await tokenless.csrf(), "token": "", "key": KEY}
    assert await tokenless.retry(form, Origin=tokenless.origin) == 403
    assert (await tokenless.kit.outbox.get(KEY)).state is State.DEAD


async def test_an_empty_configured_token_guards_nothing_so_retry_is_forbidden(
    tmp_path: Path,
) -> None:
    """A token of "" (an embedding application's ``AdminSettings``) is no token: an empty
    form field must not match it."""
    async for page in opened_page(tmp_path, ""):
        form = {"csrf": await page.csrf(), "token": "", "key": KEY}
        assert await page.retry(form, Origin=page.origin) == 403
        assert (await page.kit.outbox.get(KEY)).state is State.DEAD
        assert "Retrying needs" in await page.html()


async def test_retry_with_a_bad_csrf_token_is_forbidden_and_logged(
    page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    form = {"csrf": "forged", "token": TOKEN, "key": KEY}
    with caplog.at_level(logging.INFO, logger="kit.admin.page"):
        assert await page.retry(form, Origin=page.origin) == 403
    assert "admin retry refused for 127.0.0.1: CSRF check failed" in caplog.text
    assert TOKEN not in caplog.text
    assert (await page.kit.outbox.get(KEY)).state is State.DEAD


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"csrf=\xff\xfe&token=x", "application/x-www-form-urlencoded"),
        (
            b'--b\r\nContent-Disposition: form-data; name="token"\r\n\r\n\xff\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
        ),
    ],
    ids=["urlencoded", "multipart"],
)
async def test_retry_with_an_unreadable_form_is_a_bad_request_not_an_error(
    page: Page, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str
) -> None:
    """Bytes that are not UTF-8 (which no browser's form sends) answer 400 and are logged as
    a refusal: a stranger cannot fill the error log with tracebacks."""
    with caplog.at_level(logging.INFO):
        response = await page.client.post(
            "/retry", data=body, headers={"Content-Type": content_type, "Origin": page.origin}
        )
    assert response.status == 400
    assert "admin retry refused for 127.0.0.1: the form cannot be read" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert (await page.kit.outbox.get(KEY)).state is State.DEAD


@pytest.mark.parametrize(
    "headers",
    [{}, {"Origin": "http://evil.example"}, {"Referer": "http://evil.example/"}],
    ids=["no-origin", "foreign-origin", "foreign-referer"],
)
async def test_retry_from_another_origin_is_forbidden(page: Page, headers: dict[str, str]) -> None:
    """The CSRF secret alone is not enough: the request must come from the page itself."""
    form = {"csrf": await page.csrf(), "token": TOKEN, "key": KEY}
    assert await page.retry(form, **headers) == 403
    assert (await page.kit.outbox.get(KEY)).state is State.DEAD


async def test_retry_with_a_same_origin_referer_is_accepted(page: Page) -> None:
    form = {"csrf": await page.csrf(), "token": TOKEN, "key": KEY}
    assert await page.retry(form, Referer=page.origin + "/") == 303


FOREIGN_HOSTS = [
    "evil.example",
    "evil.example:8080",
    "ops.example.com.evil.example",
    "localhost.evil.example",
    "[::1",
    "::1",
    "127.0.0.1:80:80",
    "",
]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
async def test_a_request_for_another_host_name_gets_nothing_of_the_page(
    page: Page, host: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A site that rebinds its name to this address still sends its name as ``Host``: the
    page, the search and the retry refuse it with 403 before reading anything, so neither the
    page's data nor its CSRF secret reach that site; each refusal is logged once with the
    host."""
    csrf = await page.csrf()
    form = {"csrf": csrf, "token": TOKEN, "key": KEY}
    foreign = {"Host": host, "Origin": f"http://{host}"}
    caplog.set_level(logging.WARNING, "kit.admin")
    for method, path, data in (("GET", "/", None), ("GET", "/?q=%231042", None),
                               ("POST", "/retry", form)):  # fmt: skip
        response = await page.client.request(
            method, path, data=data, headers=foreign, allow_redirects=False
        )
        body = await response.text()
        assert response.status == 403, (path, body)
        assert "allowed_hosts" in body
        for shown in (csrf, KEY, "e***@example.org", TEST_ORDER, "1042"):
            assert shown not in body
    refused = [r for r in caplog.records if getattr(r, "action", "") == "admin.host_refused"]
    assert len(refused) == 3
    assert all(r.levelno == logging.WARNING and repr(host) in r.getMessage() for r in refused)
    assert (await page.kit.outbox.get(KEY)).state is State.DEAD


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1:{port}", "localhost:{port}", "LocalHost", "[::1]:{port}", "[::1]", "10.1.2.3",
     ALLOWED, "OPS.Example.com.:{port}"],
)  # fmt: skip
async def test_the_page_answers_ip_addresses_localhost_and_allowed_names_only(
    page: Page, host: str
) -> None:
    """An IP address cannot be rebound and ``localhost`` is this machine; other names only
    when ``[admin] allowed_hosts`` lists them (case, final dot and port aside)."""
    response = await page.client.get("/", headers={"Host": host.format(port=page.port)})
    assert response.status == 200
    assert '<td data-state="dead">1</td>' in await response.text()
    unlisted = {"Host": f"other.example.com:{page.port}"}
    assert (await page.client.get("/", headers=unlisted)).status == 403


async def test_behind_an_https_proxy_the_retry_needs_public_url(page: Page, proxied: Page) -> None:
    """A browser behind an HTTPS proxy sends the proxy's origin, which the listener cannot see
    (``X-Forwarded-*`` headers are not trusted: anyone who reaches the port can send them).
    Without ``public_url`` its retry is refused; with it the retry goes through, and the
    page's forms and redirect keep the proxy's path."""
    behind_proxy = {
        "Host": ALLOWED,
        "Origin": f"https://{ALLOWED}",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": ALLOWED,
    }
    form = {"csrf": await page.csrf(), "token": TOKEN, "key": KEY}
    assert await page.retry(form, **behind_proxy) == 403
    assert (await page.kit.outbox.get(KEY)).state is State.DEAD

    html = await proxied.html()
    assert 'action="/kit/retry"' in html
    assert 'action="/kit/"' in html
    form = {"csrf": await proxied.csrf(), "token": TOKEN, "key": KEY}
    response = await proxied.client.post(
        "/retry", data=form, headers=behind_proxy, allow_redirects=False
    )
    assert response.status == 303
    assert response.headers["Location"] == "/kit/?retried=1"
    assert (await proxied.kit.outbox.get(KEY)).state is State.PENDING


async def test_behind_a_proxy_only_the_public_urls_origin_passes(proxied: Page) -> None:
    """``public_url`` replaces the origin built from the request: the listener's own one (as
    a ``Referer``), another scheme or port of the public name, and other sites are refused."""
    form = {"csrf": await proxied.csrf(), "token": TOKEN, "key": KEY}
    assert await proxied.retry(form, Referer=proxied.origin + "/") == 403
    for origin in (f"http://{ALLOWED}", f"https://{ALLOWED}:8443", "https://evil.example"):
        assert await proxied.retry(form, Origin=origin) == 403, origin
    assert (await proxied.kit.outbox.get(KEY)).state is State.DEAD
    assert await proxied.retry(form, Referer=f"https://{ALLOWED}:443/kit/?q=1") == 303


async def test_the_trend_shows_the_counts_sampled_since_start(page: Page) -> None:
    """The admin app samples at start: the page's trend has that sample's counts."""

    async def sampled() -> str:
        while '<tr class="sample">' not in (html := await page.html()):
            await asyncio.sleep(0.02)  # polling a condition, bounded by the timeout
        return html

    async with asyncio.timeout(5):
        html = await sampled()
    row = re.search(r'<tr class="sample"><td>[^<]+</td>((?:<td>\d+</td>)+)</tr>', html)
    assert row is not None
    counts = re.findall(r"<td>(\d+)</td>", row[1])
    assert dict(zip([s.value for s in State], counts, strict=True))["dead"] == "1"


def test_the_trend_keeps_only_the_newest_samples() -> None:
    trend = CountsTrend(capacity=3)
    for at in range(5):
        trend.record(float(at), {State.DEAD: at})
    assert [s.at for s in trend.samples] == [2.0, 3.0, 4.0]
    assert dict(trend.samples[-1].counts) == {s.value: 4 if s is State.DEAD else 0 for s in State}


async def test_the_page_cannot_be_framed_cached_or_run_scripts(page: Page) -> None:
    """Another site cannot frame the page to steer a click onto the retry button, no cache keeps
    its customer data, and a browser runs no script even if one got past the escaping."""
    response = await page.client.get("/")
    assert response.status == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy
    assert "form-action 'self'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("shown", ["<b>all</b>", "9999 (check the logs at evil.example)", ""])
async def test_the_retried_notice_shows_only_a_count(page: Page, shown: str) -> None:
    """The notice after a retry is a number from the redirect; a link with other text in its
    place shows nothing, so nobody can make the page say what the kit did not do."""
    html = await page.html(f"/?retried={quote(shown)}")
    assert 'id="retried"' not in html
    assert '<p id="retried">Retried 3 dead entries.</p>' in await page.html("/?retried=3")
