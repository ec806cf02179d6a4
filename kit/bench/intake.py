"""Figure 7: signed Shopify webhooks through the real intake over HTTP, beside a bare handler.

The kit side is what ``etrusted-kit serve`` runs for a source: an aiohttp app with
:meth:`Webhooks.install`, each delivery verified, journaled, decided by the policy and put in
the outbox in one transaction before its 2xx. The baseline is the least a correct receiver
does: a bare aiohttp handler that checks the same HMAC in constant time and stores the raw body
with one autocommit INSERT (aiosqlite; on PostgreSQL an asyncpg pool of the kit's default
size). Both are hit by the same senders from another process (:mod:`kit.bench.senders`).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import attrs
from aiohttp import web

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.adapters import hmac_sha256_base64_matches
from kit.bench.config import BenchConfig
from kit.bench.databases import Databases, db_errors
from kit.bench.measure import interleaved
from kit.bench.payloads import EVENT_TYPE
from kit.bench.processes import Child
from kit.bench.report import Figure
from kit.errors import KitError
from kit.journal import Intake, IntakeSource
from kit.loopback import serving
from kit.outbox import Outbox
from kit.outbox.types import State
from kit.policy import PolicyConfig, Trigger
from kit.sandbox import SEEDED_CHANNEL_IDS
from kit.webhooks import Webhooks, WebhookSettings

SOURCE = "bench-shop"
SHOP_DOMAIN = "bench-shop.myshopify.com"
SECRET = "shpss_bench_secret_not_a_real_one"  # noqa: S105 (signs the bench's own deliveries)
PG_POOL_SIZE = 10  # the kit's PostgreSQL pool default, so both sides have as many connections

TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


def bench_source() -> IntakeSource:
    """A Shopify source with the default policy: one ``order_shipped`` per fulfilled order."""
    return IntakeSource(
        name=SOURCE,
        adapter=ShopifyAdapter(
            source=SOURCE,
            config=ShopifyConfig(
                shop_domain=SHOP_DOMAIN, product_url="https://shop.example/products/{product_id}"
            ),
        ),
        policy=PolicyConfig(
            channel_id=SEEDED_CHANNEL_IDS[0],
            triggers=(Trigger(on="order_fulfilled", event_type=EVENT_TYPE, delay="3d"),),
        ),
        secrets=(SECRET,),
    )


class SendersChild:
    """One :mod:`kit.bench.senders` process per round: deliveries built, then "go"."""

    def __init__(self, config: BenchConfig, workdir: Path, name: str) -> None:
        self._config = config
        self.child = Child(name, workdir)

    async def run(self, url: str, count: int) -> dict[str, Any]:
        argv = [self._config.python, "-m", "kit.bench.senders"]
        spec = {
            "url": url,
            "count": count,
            "senders": self._config.intake_senders,
            "secret": SECRET,
            "shop_domain": SHOP_DOMAIN,
        }
        try:
            await self.child.start(argv, self._config.environ, pipes=True)
            await self.child.send(json.dumps(spec))
            ready = await self.child.receive(120)
            if not ready.get("ready"):
                raise self.child.failed(f"sent {ready!r} instead of ready")
            await self.child.send("go")
            result = await self.child.receive(600)
            await self.child.wait(30)
        finally:
            await self.child.stop()
        if "error" in result:
            raise self.child.failed(result["error"])
        if set(result["statuses"]) - {"200", "201", "202", "204"}:
            raise KitError(f"{self.child.name}: not every webhook got a 2xx: {result['statuses']}")
        return result


async def _timed(
    send: Callable[[str], Awaitable[dict[str, Any]]], url: str
) -> tuple[dict[str, Any], float]:
    cpu = time.process_time()
    result = await send(url)
    return result, time.process_time() - cpu


async def _kit_round(
    config: BenchConfig, url: str, send: Callable[[str], Awaitable[dict[str, Any]]], count: int
) -> dict[str, Any]:
    settings = WebhookSettings()
    async with Outbox.from_url(url) as outbox:
        app = web.Application()
        Webhooks(Intake(outbox), [bench_source()], settings).install(app)
        async with serving(app) as base:
            result, cpu = await _timed(send, base + settings.route(SOURCE))
        pending = (await outbox.stats()).counts.get(State.PENDING, 0)
    if pending != count:
        raise KitError(f"intake bench: {count} webhooks answered 2xx, {pending} outbox entries")
    return {**result, "cpu_s": cpu}


@attrs.frozen
class RawStore:
    store: Callable[[str, bytes], Awaitable[None]]
    stored: Callable[[], Awaitable[int]]


_RAW_TABLE = (
    "raw_webhooks (id {id} PRIMARY KEY, webhook_id TEXT NOT NULL UNIQUE, body {blob} NOT NULL)"
)


def _baseline_app(store: Callable[[str, bytes], Awaitable[None]]) -> web.Application:
    secrets = (SECRET,)

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        signature = request.headers.get("X-Shopify-Hmac-Sha256")
        if signature is None or not hmac_sha256_base64_matches(raw, signature, secrets):
            return web.json_response({"error": "bad_signature"}, status=401)
        await store(request.headers.get("X-Shopify-Webhook-Id", ""), raw)
        return web.json_response({"status": "stored"})

    app = web.Application()
    app.router.add_post("/webhooks/{source}", handle)
    return app


@contextlib.asynccontextmanager
async def raw_sqlite_store(path: str) -> AsyncIterator[RawStore]:
    """The baseline's storage: a table for raw bodies and one autocommit INSERT per webhook
    (aiosqlite, WAL, ``synchronous = NORMAL`` like the kit's default)."""
    with db_errors("aiosqlite webhook insert"):
        async with aiosqlite.connect(path, isolation_level=None) as conn:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute("CREATE TABLE " + _RAW_TABLE.format(id="INTEGER", blob="BLOB"))
            insert = "INSERT INTO raw_webhooks (webhook_id, body) VALUES (?, ?)"

            async def store(webhook_id: str, raw: bytes) -> None:
                await conn.execute(insert, (webhook_id, raw))

            async def stored() -> int:
                async with conn.execute("SELECT count(*) FROM raw_webhooks") as cursor:
                    row = await cursor.fetchone()
                return row[0] if row else 0

            yield RawStore(store=store, stored=stored)


async def _baseline_round_sqlite(
    path: str, send: Callable[[str], Awaitable[dict[str, Any]]], count: int
) -> dict[str, Any]:
    async with raw_sqlite_store(path) as raw:
        async with serving(_baseline_app(raw.store)) as base:
            result, cpu = await _timed(send, f"{base}/webhooks/{SOURCE}")
        stored = await raw.stored()
    if stored != count:
        raise KitError(f"intake baseline: {count} webhooks answered 2xx, {stored} rows")
    return {**result, "cpu_s": cpu}


async def _baseline_round_pg(
    dsn: str, schema: str, send: Callable[[str], Awaitable[dict[str, Any]]], count: int
) -> dict[str, Any]:
    import asyncpg

    with db_errors("asyncpg webhook insert"):
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=PG_POOL_SIZE)
        try:
            await pool.execute(f'CREATE SCHEMA "{schema}"')
            table = _RAW_TABLE.format(id="bigserial", blob="bytea")
            await pool.execute(f'CREATE TABLE "{schema}".{table}')
            insert = f'INSERT INTO "{schema}".raw_webhooks (webhook_id, body) VALUES ($1, $2)'

            async def store(webhook_id: str, raw: bytes) -> None:
                await pool.execute(insert, webhook_id, raw)

            async with serving(_baseline_app(store)) as base:
                result, cpu = await _timed(send, f"{base}/webhooks/{SOURCE}")
            stored = await pool.fetchval(f'SELECT count(*) FROM "{schema}".raw_webhooks')
        finally:
            await pool.close()
    if stored != count:
        raise KitError(f"intake baseline: {count} webhooks answered 2xx, {stored} rows")
    return {**result, "cpu_s": cpu}


async def figure_intake(config: BenchConfig, dbs: Databases, workdir: Path) -> Figure:
    sizes = config.effective_sizes
    count = sizes.intake
    runs: dict[str, list[dict[str, Any]]] = {"kit": [], "baseline": []}

    def sender(label: str, r: int) -> Callable[[str], Awaitable[dict[str, Any]]]:
        return lambda url: SendersChild(config, workdir, f"senders_{label}_{r}").run(url, count)

    async def kit(r: int) -> float:
        url = dbs.new("intake")
        try:
            result = await _kit_round(config, url, sender("kit", r), count)
        finally:
            await dbs.drop(url)
        runs["kit"].append(result)
        return float(result["rate"])

    async def baseline(r: int) -> float:
        target = dbs.raw_target("intake_raw")
        try:
            if config.postgres:
                result = await _baseline_round_pg(dbs.dsn, target, sender("raw", r), count)
            else:
                result = await _baseline_round_sqlite(target, sender("raw", r), count)
        finally:
            await dbs.drop(target)
        runs["baseline"].append(result)
        return float(result["rate"])

    kits, bases = await interleaved(sizes.rounds, kit, baseline)
    kit_rate, base_rate = statistics.median(kits), statistics.median(bases)
    details: dict[str, Any] = {"webhooks": count, "senders": config.intake_senders}
    for side, results in runs.items():
        details[f"{side}_rounds"] = [round(r["rate"], 1) for r in results]
        for q in ("p50_ms", "p99_ms", "max_ms"):
            details[f"{side}_{q}"] = round(statistics.median(r[q] for r in results), 2)
        details[f"{side}_cpu_us_per_webhook"] = round(
            statistics.median(1e6 * r["cpu_s"] / count for r in results), 1
        )
    p99 = details["kit_p99_ms"]
    details["note"] = (
        f"answer times p50 {details['kit_p50_ms']:.1f} / p99 {p99:.1f} ms"
        f" (baseline p50 {details['baseline_p50_ms']:.1f} / p99 {details['baseline_p99_ms']:.1f}"
        f" ms), {config.intake_senders} senders in another process"
    )
    label = (
        "bare aiohttp + HMAC + asyncpg INSERT"
        if config.postgres
        else "bare aiohttp + HMAC + aiosqlite INSERT"
    )
    return Figure(
        id="intake",
        title=f"signed Shopify webhooks through the intake, {config.intake_senders} senders",
        unit="webhooks/s",
        kit=kit_rate,
        baseline=base_rate,
        baseline_label=label,
        target=f">= {TARGET_RATIO}x baseline, p99 <= {TARGET_P99_MS:.0f} ms",
        met=kit_rate >= TARGET_RATIO * base_rate and p99 <= TARGET_P99_MS,
        details=details,
    )
