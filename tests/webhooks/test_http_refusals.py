"""What the intake refuses over real HTTP, and what it leaves behind: nothing.

Oversized bodies (declared and streamed), a database that cannot take the delivery (503, then
the platform's retry succeeds), a redact request while one of its invites is being sent (503
likewise), a bug inside the transaction (500), and the log line each
refusal writes, which never carries a secret, a signature or an e-mail.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from journal.conftest import Kit
from journal.conftest import source as shop_source
from journal.deliveries import (
    EMAIL,
    KEY,
    ORDER_ID,
    SECRET,
    SHOP,
    cancelled_order,
    fulfilled_order,
    payload,
)

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.journal.ingest import Intake, IntakeSource
from kit.outbox import State
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import Completion, Delivered, NewEntry
from kit.webhooks import WebhookSettings

from .conftest import Serve, Served, delivery, open_kit, sign
from .test_http_intake import assert_nothing_stored, outcomes


def padded(extra: int) -> dict[str, Any]:
    """A fulfilled order whose JSON is ``extra`` bytes longer than the plain one."""
    order = fulfilled_order()
    order["note"] = "x" * max(extra - len(', "note": ""'), 0)
    return order


async def chunks(raw: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "action", None) == "webhook.refused"]


async def test_a_body_at_the_cap_is_taken_and_one_byte_more_is_refused(
    served: Served, serve: Serve
) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    capped = await serve(served.kit, settings=WebhookSettings(max_body_bytes=len(raw)))
    longer = raw + b" "  # still valid JSON, correctly signed
    over_headers = dict(headers, **{"X-Shopify-Hmac-Sha256": sign(longer)})

    refused = await capped.post(over_headers, longer)
    taken = await capped.post(headers, raw)

    assert (refused.status, refused.body) == (413, {"error": "body_too_large"})
    assert taken.status == 200
    assert await capped.counts() == {State.PENDING: 1}
    assert outcomes(await capped.history(ORDER_ID)) == [("enqueue", "enqueued")]


async def test_a_body_declared_over_the_cap_is_refused_before_it_is_read(
    served: Served, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    capped = await serve(served.kit, settings=WebhookSettings(max_body_bytes=4096))
    headers, raw = delivery(padded(64 * 1024), "orders/fulfilled", "w-1")

    reply = await capped.post(headers, raw)

    assert (reply.status, reply.body) == (413, {"error": "body_too_large"})
    await assert_nothing_stored(capped)
    (record,) = refusals(caplog)
    assert "declared more than 4096 bytes" in record.getMessage()


async def test_a_chunked_body_is_cut_off_at_the_cap(
    served: Served, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A chunked body declares no length: the cap holds while the chunks arrive."""
    caplog.set_level(logging.INFO)
    capped = await serve(served.kit, settings=WebhookSettings(max_body_bytes=4096))
    headers, raw = delivery(padded(64 * 1024), "orders/fulfilled", "w-1")

    reply = await capped.post(headers, chunks(raw, 1024))

    assert (reply.status, reply.body) == (413, {"error": "body_too_large"})
    await assert_nothing_stored(capped)
    (record,) = refusals(caplog)
    assert "sent more than 4096 bytes" in record.getMessage()
    # The same connection pool still works: the next delivery is taken.
    ok_headers, ok_raw = delivery(fulfilled_order(), "orders/fulfilled", "w-2")
    assert (await capped.post(ok_headers, chunks(ok_raw, 512))).status == 200


async def test_the_default_cap_is_two_mebibytes(served: Served) -> None:
    """Beyond aiohttp's own 1 MiB request limit, up to the intake's 2 MiB."""
    headers, raw = delivery(padded(1536 * 1024), "orders/fulfilled", "w-1")
    big = await served.post(headers, raw)
    too_big = await served.deliver(padded(2 * 1024 * 1024), "orders/fulfilled", "w-2")

    assert big.status == 200
    assert (too_big.status, too_big.body) == (413, {"error": "body_too_large"})
    assert await served.counts() == {State.PENDING: 1}


@asynccontextmanager
async def locked_sqlite(path: Path) -> AsyncIterator[None]:
    """Another process holds SQLite's one write lock."""
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        yield
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


@asynccontextmanager
async def locked_postgres(dsn: str, schema: str) -> AsyncIterator[None]:
    """Another session holds the deliveries table (a long migration, a stuck job)."""
    import asyncpg

    blocker = await asyncpg.connect(dsn)
    try:
        async with blocker.transaction():
            await blocker.execute(f'LOCK TABLE "{schema}".deliveries IN ACCESS EXCLUSIVE MODE')
            yield
    finally:
        await blocker.close()


@attrs.frozen
class Lockable:
    """A storage that gives up waiting for a lock quickly, and a way to hold that lock."""

    name: str
    storage: Callable[[], Storage]
    lock: Callable[[], AbstractAsyncContextManager[None]]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def lockable(request: pytest.FixtureRequest, tmp_path: Path) -> Lockable:
    if request.param == "sqlite":
        path = tmp_path / "outbox.db"
        return Lockable(
            "sqlite", lambda: SQLiteStorage(path, busy_timeout=0), lambda: locked_sqlite(path)
        )
    from kit.outbox.postgres import PostgresStorage

    dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
    return Lockable(
        "postgres",
        lambda: PostgresStorage(dsn, schema=schema, command_timeout=0.5),
        lambda: locked_postgres(dsn, schema),
    )


async def test_a_locked_database_answers_503_stores_nothing_and_the_retry_succeeds(
    lockable: Lockable, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """The platform got no 2xx, so it retries; the failed attempt left no delivery row that
    would turn the retry away as a duplicate. The storage gives up waiting for the lock at
    once (SQLite) or after half a second (PostgreSQL)."""
    kit = await open_kit(lockable.name, lockable.storage(), None)
    lock = lockable.lock()
    served = await serve(kit)
    async with lock:
        reply = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")

    assert (reply.status, reply.body) == (503, {"error": "storage_unavailable"})
    assert reply.headers["Retry-After"] == "10"
    await assert_nothing_stored(served)
    (record,) = refusals(caplog)
    assert (record.levelno, getattr(record, "reason", None)) == (
        logging.ERROR,
        "storage_unavailable",
    )

    retry = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")

    assert (retry.status, retry.body["status"]) == (200, "accepted")
    assert (await served.outbox.get(KEY)).state is State.PENDING
    assert outcomes(await served.history(ORDER_ID)) == [("enqueue", "enqueued")]


async def test_a_moved_outbox_answers_503_and_stores_nothing(served: Served) -> None:
    await served.outbox.storage.set_moved("postgresql://elsewhere/shop")

    reply = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")

    assert (reply.status, reply.body) == (503, {"error": "storage_unavailable"})
    await served.outbox.storage.set_moved(None)
    await assert_nothing_stored(served)


async def test_a_moved_outbox_answers_503_to_a_cancellation_and_to_a_payment(
    served: Served,
) -> None:
    """Deliveries that would change a waiting entry or only be journaled are refused as well,
    so the platform retries them against the new outbox; the old one keeps its entry pending
    and its journal as the move left them."""
    taken = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")
    assert taken.status == 200
    await served.outbox.storage.set_moved("postgresql://elsewhere/shop")
    before = await served.history(ORDER_ID)

    cancelled = await served.deliver(cancelled_order(), "orders/cancelled", "w-2")
    paid = await served.deliver(fulfilled_order(), "orders/paid", "w-3")

    assert [(r.status, r.body) for r in (cancelled, paid)] == [
        (503, {"error": "storage_unavailable"})
    ] * 2
    assert (await served.outbox.get(KEY)).state is State.PENDING
    assert await served.history(ORDER_ID) == before


class _BrokenIntake(Intake):
    """An intake with a bug that strikes inside the transaction, after the delivery and its
    event were written."""

    def _prepare(self, *args: Any, **kwargs: Any) -> NewEntry:
        raise RuntimeError("a bug while building the invite")


async def test_a_bug_inside_the_transaction_answers_500_and_stores_nothing(
    served: Served, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    kit: Kit = served.kit
    broken = await serve(kit, intake=_BrokenIntake(kit.outbox, clock=kit.clock))

    reply = await broken.deliver(fulfilled_order(), "orders/fulfilled", "w-1")

    assert (reply.status, reply.body) == (500, {"error": "internal_error"})
    await assert_nothing_stored(broken)
    (record,) = [r for r in caplog.records if getattr(r, "action", None) == "webhook.failed"]
    assert record.exc_info is not None
    assert "a bug while building the invite" not in str(reply.body)
    # Once the bug is gone (the working intake), the platform's retry is taken in.
    assert (await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")).status == 200


async def test_two_sources_with_their_own_secrets_on_one_app(served: Served, serve: Serve) -> None:
    """Each route verifies with its own source's secrets and journals under its own name."""
    other_shop, other_secret = "other-demo.myshopify.com", "shpss_other_shop_secret"
    mine = shop_source()
    other = IntakeSource(
        name="other-shop",
        adapter=ShopifyAdapter(source="other-shop", config=ShopifyConfig(shop_domain=other_shop)),
        policy=mine.policy,
        secrets=(other_secret,),
    )
    both = await serve(served.kit, sources=[mine, other])
    theirs, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-2", secret=other_secret)
    theirs["X-Shopify-Shop-Domain"] = other_shop

    to_them = await both.post(theirs, raw, path="/webhooks/other-shop")
    to_me_with_their_secret = await both.post(theirs, raw, path="/webhooks/my-shop")
    to_me = await both.deliver(fulfilled_order(), "orders/fulfilled", "w-1")

    assert to_them.status == 200
    assert to_me_with_their_secret.status == 401
    assert to_me.status == 200
    assert outcomes(await both.history(ORDER_ID, source="other-shop")) == [("enqueue", "enqueued")]
    assert outcomes(await both.history(ORDER_ID)) == [("enqueue", "enqueued")]
    keys = {e.key for e in await both.outbox.entries()}
    assert keys == {KEY, KEY.replace("kit-demo.myshopify.com", other_shop)}


async def test_refusals_are_logged_once_each_without_secrets_signatures_or_emails(
    served: Served, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    capped = await serve(served.kit, settings=WebhookSettings(max_body_bytes=8192))
    signed_headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    forged = dict(signed_headers, **{"X-Shopify-Hmac-Sha256": sign(raw, "not-the-secret")})
    no_email = fulfilled_order()
    no_email["email"] = no_email["contact_email"] = no_email["customer"] = None

    answers = [
        (await capped.post(forged, raw)).status,
        (await capped.post(signed_headers, raw.replace(b"{", b"[", 1))).status,
        (await capped.deliver(b'{"email": "' + EMAIL.encode() + b'"', "orders/paid", "w-3")).status,
        (await capped.deliver(padded(16 * 1024), "orders/fulfilled", "w-4")).status,
        (await capped.post(signed_headers, raw)).status,
        (await capped.deliver(no_email, "orders/fulfilled", "w-5")).status,
    ]

    assert answers == [401, 401, 400, 413, 200, 200]
    assert [
        (r.__dict__["source"], r.__dict__["status"], r.__dict__["reason"]) for r in refusals(caplog)
    ] == [
        ("my-shop", 401, "bad_signature"),
        ("my-shop", 401, "bad_signature"),
        ("my-shop", 400, "invalid_payload"),
        ("my-shop", 413, "body_too_large"),
    ]
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for secret in (
        SECRET,
        forged["X-Shopify-Hmac-Sha256"],
        signed_headers["X-Shopify-Hmac-Sha256"],
    ):
        assert secret not in logged
    assert EMAIL not in logged


@pytest.mark.parametrize("name", ["2nd-shop", "class", "shop_1"])
async def test_every_valid_source_name_gets_its_route(
    served: Served, serve: Serve, name: str
) -> None:
    """Source names may start with a digit or be a Python keyword; the route works all the
    same (aiohttp's route *names* could not be either)."""
    mine = shop_source()
    renamed = IntakeSource(
        name=name,
        adapter=ShopifyAdapter(source=name, config=ShopifyConfig(shop_domain=SHOP)),
        policy=mine.policy,
        secrets=mine.secrets,
    )
    app = await serve(served.kit, sources=[renamed])
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")

    reply = await app.post(headers, raw, path=f"/webhooks/{name}")

    assert (reply.status, reply.body["status"]) == (200, "accepted")
    assert outcomes(await app.history(ORDER_ID, source=name)) == [("enqueue", "enqueued")]


@pytest.mark.parametrize(
    ("sample", "topic"), [("customers_redact", "customers/redact"), ("shop_redact", "shop/redact")]
)
async def test_a_redact_request_while_an_invite_is_being_sent_is_answered_503_until_it_ended(
    served: Served, caplog: pytest.LogCaptureFixture, sample: str, topic: str
) -> None:
    """A redact request must leave no customer data, but an invite being sent keeps its
    payload until its POST has ended. So the request is refused with 503 and ``Retry-After``
    and nothing of it is stored (no half erasure, no delivery row that would make the retry a
    duplicate); the platform retries, and once the send has ended the retry erases it all."""
    await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")
    due = (await served.outbox.get(KEY)).due_at
    storage = served.outbox.storage
    (claimed,) = await storage.claim(owner="f", limit=10, lease_seconds=60, now=due)
    entry, journaled = await served.outbox.get(KEY), await served.history(ORDER_ID)

    reply = await served.deliver(payload(sample), topic, "w-2")

    assert (reply.status, reply.body) == (503, {"error": "erasure_in_flight"})
    assert reply.headers["Retry-After"] == "10"
    assert await served.outbox.get(KEY) == entry
    assert await served.history(ORDER_ID) == journaled
    (record,) = refusals(caplog)
    assert (record.levelno, record.__dict__["reason"]) == (logging.WARNING, "erasure_in_flight")
    assert (record.__dict__["delivery_id"], record.__dict__["in_flight"]) == ("w-2", 1)
    assert "w-2" in record.getMessage()
    assert EMAIL not in record.getMessage() + repr(record.__dict__)

    done = Completion(claimed.key, claimed.attempt, Delivered("evt-1"), entry_id=claimed.entry_id)
    assert await storage.finish([done], now=served.kit.clock.now) == [True]
    retry = await served.deliver(payload(sample), topic, "w-2")

    assert (retry.status, retry.body["status"]) == (200, "accepted")
    after = await served.outbox.get(KEY)
    assert (after.state, after.payload, after.email_hash) == (State.DELIVERED, None, None)
    found = await served.history(ORDER_ID)
    assert found.events
    assert all(e.event is None for e in found.events)
    assert all(d.decision is None for d in found.decisions if d.kind == "enqueue")
