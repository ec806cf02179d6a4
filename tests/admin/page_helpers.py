"""The operator page served by a real aiohttp server on loopback over a SQLite file, with one
dead entry whose last error names the customer's address."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from journal.conftest import Kit, _kit, deliver
from journal.deliveries import EMAIL, fulfilled_order

from kit.admin import refuse_other_hosts
from kit.admin.page import PageSources, install_page
from kit.configfile import AdminSettings
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import Completion, Dead

TOKEN = "s3cret-admin-token"
ERROR = f"HTTP 400: customer.email {EMAIL} is not accepted"
TEST_ORDER = "5560001000777"
LATER = 1e7  # past any hold-back the shop's policy sets
ALLOWED = "ops.example.com"  # the name in [admin] allowed_hosts
PUBLIC_URL = f"https://{ALLOWED}/kit"  # where a proxy serves the page, when set


@attrs.frozen
class Page:
    kit: Kit
    client: TestClient[web.Request, web.Application]

    @property
    def origin(self) -> str:
        return str(self.client.make_url("/")).rstrip("/")

    @property
    def port(self) -> int:
        port = self.client.port
        assert port is not None
        return port

    async def html(self, path: str = "/") -> str:
        response = await self.client.get(path)
        assert response.status == 200
        return await response.text()

    async def csrf(self) -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', await self.html())
        assert found is not None
        return found[1]

    async def retry(self, form: dict[str, str], **headers: str) -> int:
        response = await self.client.post(
            "/retry", data=form, headers=headers, allow_redirects=False
        )
        return response.status


async def opened_page(
    tmp_path: Path, token: str | None, *, public_url: str | None = None
) -> AsyncIterator[Page]:
    """The page as serve installs it from ``[admin]`` with ``allowed_hosts = [ALLOWED]``."""
    kit = await _kit("sqlite", SQLiteStorage(tmp_path / "outbox.db"), None)
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    test_order = fulfilled_order(TEST_ORDER, email="max@example.org")
    test_order["test"] = True  # skipped: the page shows the reason
    await deliver(kit, test_order, "orders/fulfilled", "w-2")
    storage = kit.outbox.storage
    now = kit.clock.now + LATER
    (claimed,) = await storage.claim(owner="test", limit=1, lease_seconds=60, now=now)
    await storage.finish([Completion(claimed.key, claimed.attempt, Dead(ERROR))], now=now)
    settings = AdminSettings(allowed_hosts=(ALLOWED,), public_url=public_url)
    app = web.Application()
    refuse_other_hosts(app, settings.host_names)
    install_page(
        app,
        PageSources(lambda: kit.outbox, lambda: kit.intake.journal, token, settings.public_url),
    )
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Page(kit, client)
    finally:
        await client.close()
        await kit.aclose()
