"""The intake served over real HTTP on loopback: an aiohttp server around :class:`Webhooks`,
in front of an outbox in a SQLite file or a PostgreSQL schema, and a client that posts signed
Shopify deliveries to it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from journal.conftest import Clock, Kit
from journal.conftest import source as shop_source
from journal.deliveries import SECRET, signed

from kit.journal.ingest import Intake, IntakeSource
from kit.journal.records import StreamHistory
from kit.outbox import Outbox, State
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.webhooks import Webhooks, WebhookSettings

ROUTE = "/webhooks/my-shop"


def delivery(
    body: dict[str, Any] | bytes,
    topic: str,
    webhook_id: str,
    *,
    event_id: str | None = None,
    secret: str = SECRET,
) -> tuple[dict[str, str], bytes]:
    """Headers and raw body of one Shopify delivery, signed with ``secret``."""
    headers, raw = signed(
        {} if isinstance(body, bytes) else body, topic, webhook_id=webhook_id, event_id=event_id
    )
    raw = body if isinstance(body, bytes) else raw
    headers["X-Shopify-Hmac-Sha256"] = sign(raw, secret)
    return headers, raw


def sign(raw: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


@attrs.frozen
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@attrs.define
class Served:
    """One backend's outbox and intake, its webhook routes on a real server, and a client."""

    kit: Kit
    webhooks: Webhooks
    server: TestServer
    session: aiohttp.ClientSession

    @property
    def outbox(self) -> Outbox:
        return self.kit.outbox

    async def post(
        self,
        headers: dict[str, str],
        body: bytes | AsyncIterable[bytes],
        *,
        path: str = ROUTE,
    ) -> Reply:
        # A large bytes body goes as a file (aiohttp warns about bytes); both declare a length.
        data = io.BytesIO(body) if isinstance(body, bytes) and len(body) > 2**20 else body
        async with self.session.post(self.server.make_url(path), headers=headers, data=data) as r:
            text = await r.text()
            payload = json.loads(text) if r.content_type == "application/json" else {"text": text}
            return Reply(r.status, payload, dict(r.headers))

    async def deliver(
        self, body: dict[str, Any] | bytes, topic: str, webhook_id: str, **options: Any
    ) -> Reply:
        return await self.post(*delivery(body, topic, webhook_id, **options))

    async def history(self, stream: str, source: str = "my-shop") -> StreamHistory:
        return await self.kit.intake.journal.history(source, stream)

    async def counts(self) -> dict[State, int]:
        """How many outbox entries are in each state (zeros left out)."""
        stats = await self.outbox.stats()
        return {state: n for state, n in stats.counts.items() if n}


Serve = Callable[..., Awaitable[Served]]


async def open_kit(name: str, storage: Storage, another: Callable[[], Storage] | None) -> Kit:
    clock = Clock()
    outbox = Outbox(storage, clock=clock)
    await outbox.open()
    return Kit(name, outbox, Intake(outbox, clock=clock), clock, another)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start the webhook routes of ``sources`` for an opened kit; everything closes after."""
    opened: list[tuple[Kit, TestServer, aiohttp.ClientSession]] = []

    async def start(
        kit: Kit,
        sources: Iterable[IntakeSource] | None = None,
        settings: WebhookSettings | None = None,
        intake: Intake | None = None,
    ) -> Served:
        webhooks = Webhooks(
            intake or kit.intake,
            [shop_source()] if sources is None else sources,
            settings or WebhookSettings(),
        )
        app = web.Application()
        webhooks.install(app)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        session = aiohttp.ClientSession()
        opened.append((kit, server, session))
        return Served(kit, webhooks, server, session)

    yield start
    for kit, server, session in reversed(opened):
        await session.close()
        await server.close()
        await kit.aclose()


@pytest.fixture
async def sqlite_served(serve: Serve, tmp_path: Path) -> Served:
    path = tmp_path / "outbox.db"
    return await serve(await open_kit("sqlite", SQLiteStorage(path), lambda: SQLiteStorage(path)))


@pytest.fixture
async def postgres_served(serve: Serve, pg_dsn: str, pg_schema: str) -> Served:
    from kit.outbox.postgres import PostgresStorage

    kit = await open_kit(
        "postgres",
        PostgresStorage(pg_dsn, schema=pg_schema),
        lambda: PostgresStorage(pg_dsn, schema=pg_schema),
    )
    return await serve(kit)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def served(request: pytest.FixtureRequest) -> Served:
    value: Served = request.getfixturevalue(f"{request.param}_served")
    return value
