"""The operator page in a real headless Chromium, driven over the W3C WebDriver protocol with
plain HTTP calls to chromedriver: the form the page renders is what a browser submits, with
the browser's own ``Origin`` header, and the retry goes through.

Needs Debian's ``chromium`` and ``chromium-driver``; without them the test skips (fails in CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from ci import unavailable
from journal.deliveries import KEY

from admin.page_helpers import TOKEN, Page
from kit.outbox.types import State

STARTUP = 15.0  # chromedriver and a first Chromium start on a loaded 2-core machine
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class WebDriver:
    """The few WebDriver commands this test needs, over one HTTP session."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.session = ""

    async def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base}/session{'/' + self.session if self.session else ''}{path}"
        async with self.http.request(method, url, json=body) as response:
            answer = await response.json()
        assert response.status == 200, answer
        return answer["value"]

    async def start(self, chromium: str) -> None:
        options = {"binary": chromium, "args": ["--headless=new", "--no-sandbox", "--disable-gpu"]}
        caps = {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}}
        self.session = (await self.call("POST", "", caps))["sessionId"]
        # Finding an element waits for it (up to 10 s) instead of failing at once: after a
        # form's submit the browser is still following the POST's redirect to the new page.
        await self.call("POST", "/timeouts", {"implicit": 10_000})

    async def find(self, css: str) -> str:
        found = await self.call("POST", "/element", {"using": "css selector", "value": css})
        return str(found[ELEMENT])

    async def text(self, css: str) -> str:
        return str(await self.call("GET", f"/element/{await self.find(css)}/text"))


@contextlib.asynccontextmanager
async def chromedriver() -> AsyncIterator[WebDriver]:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        unavailable("chromium and chromedriver are not installed", what="the browser test")
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        driver,
        f"--port={port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(STARTUP):
                while not await _ready(http, base):
                    await asyncio.sleep(0.05)  # polling a condition, bounded by the timeout
            web = WebDriver(http, base)
            await web.start(chromium)
            try:
                yield web
            finally:
                await web.call("DELETE", "")
    finally:
        proc.terminate()
        await proc.wait()


async def _ready(http: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with http.get(f"{base}/status") as response:
            return bool((await response.json())["value"]["ready"])
    except aiohttp.ClientConnectionError:
        return False


async def test_a_browser_retries_a_dead_entry_through_the_page(page: Page) -> None:
    """Chromium loads the page, ticks the dead entry, types the token and submits: the entry
    is pending again and the page says so; the browser never sees the customer's address."""
    async with chromedriver() as browser:
        await browser.call("POST", "/url", {"url": page.origin + "/"})
        assert await browser.text('td[data-state="dead"]') == "1"
        assert "e***@example.org" in await browser.text("td.error")
        checkbox = await browser.find(f'input[name="key"][value="{KEY}"]')
        await browser.call("POST", f"/element/{checkbox}/click", {})
        token = await browser.find('input[name="token"]')
        await browser.call("POST", f"/element/{token}/value", {"text": TOKEN})
        await browser.call("POST", f"/element/{await browser.find('#retry-selected')}/click", {})
        assert await browser.text("#retried") == "Retried 1 dead entries."
    assert (await page.kit.outbox.get(KEY)).state is State.PENDING
