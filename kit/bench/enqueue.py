"""Figures 1 and 2: enqueue one per transaction and in bulk, beside raw SQLite and asyncpg."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import statistics
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite

from kit.bench.config import BenchConfig
from kit.bench.databases import Databases, db_errors
from kit.bench.measure import interleaved, per_second, settle
from kit.bench.payloads import bench_body, raw_rows
from kit.bench.report import Figure
from kit.outbox import Outbox

BULK_BATCH = 1000


async def _kit_enqueue_one(url: str, bodies: Sequence[dict[str, Any]]) -> float:
    async with Outbox.from_url(url) as outbox:
        started = time.perf_counter()
        for body in bodies:
            await outbox.enqueue(body)
        return per_second(len(bodies), time.perf_counter() - started)


async def _kit_enqueue_bulk(url: str, bodies: Sequence[dict[str, Any]]) -> float:
    async with Outbox.from_url(url) as outbox:
        started = time.perf_counter()
        await outbox.enqueue_many(bodies, batch_size=BULK_BATCH)
        return per_second(len(bodies), time.perf_counter() - started)


_RAW_SQLITE_TABLE = (
    "CREATE TABLE raw_events (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
    " payload TEXT NOT NULL)"
)
_RAW_SQLITE_INSERT = "INSERT INTO raw_events (key, payload) VALUES (?, ?)"


async def _raw_sqlite_one(
    path: str, rows: Sequence[tuple[str, str]], *, explicit: bool = False
) -> float:
    """aiosqlite with the kit's pragmas, one transaction per row.

    By default a lone INSERT in autocommit mode (a transaction of its own): the cheapest correct
    way, one round trip to aiosqlite's thread. ``explicit``: ``BEGIN IMMEDIATE`` / ``INSERT`` /
    ``COMMIT``, three round trips, as code that spells its transactions out does.
    """
    with db_errors("aiosqlite insert"):
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = NORMAL")
            await conn.execute(_RAW_SQLITE_TABLE)
            started = time.perf_counter()
            for row in rows:
                if explicit:
                    await conn.execute("BEGIN IMMEDIATE")
                await conn.execute(_RAW_SQLITE_INSERT, row)
                if explicit:
                    await conn.commit()
            return per_second(len(rows), time.perf_counter() - started)
        finally:
            await conn.close()


def sqlite_bulk_rate(
    path: str,
    rows: Sequence[Sequence[Any]],
    *,
    setup: Sequence[str] = (_RAW_SQLITE_TABLE,),
    insert: str = _RAW_SQLITE_INSERT,
) -> float:
    """sqlite3 ``executemany``, one transaction per batch of 1,000 (runs in a thread): rows/s
    by wall time, checkpoints included. By default the raw baseline's table and rows."""
    with (
        db_errors("sqlite3 executemany"),
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn,
    ):
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        for statement in setup:
            conn.execute(statement)
        started = time.perf_counter()
        for start in range(0, len(rows), BULK_BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows[start : start + BULK_BATCH])
            conn.execute("COMMIT")
        return per_second(len(rows), time.perf_counter() - started)


async def _raw_pg(dsn: str, schema: str, rows: Sequence[tuple[str, str]], *, bulk: bool) -> float:
    """asyncpg: one autocommit INSERT per row, or ``executemany`` per batch in a transaction."""
    import asyncpg

    with db_errors("asyncpg insert"):
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
            await conn.execute(
                f'CREATE TABLE "{schema}".raw_events (id bigserial PRIMARY KEY,'
                " key text NOT NULL UNIQUE, payload text NOT NULL)"
            )
            insert = f'INSERT INTO "{schema}".raw_events (key, payload) VALUES ($1, $2)'
            started = time.perf_counter()
            if bulk:
                for start in range(0, len(rows), BULK_BATCH):
                    async with conn.transaction():
                        await conn.executemany(insert, rows[start : start + BULK_BATCH])
            else:
                for key, payload in rows:
                    await conn.execute(insert, key, payload)
            return per_second(len(rows), time.perf_counter() - started)
        finally:
            await conn.close()


async def figure_enqueue_one(config: BenchConfig, dbs: Databases) -> Figure:
    sizes = config.effective_sizes
    bodies = [bench_body(i) for i in range(sizes.enqueue_one)]
    rows = raw_rows(len(bodies))
    explicit: list[float] = []

    async def kit(r: int) -> float:
        url = dbs.new("enqueue_one")
        try:
            return await _kit_enqueue_one(url, bodies)
        finally:
            await dbs.drop(url)

    async def baseline(r: int) -> float:
        target = dbs.raw_target("enqueue_one_raw")
        try:
            if config.postgres:
                return await _raw_pg(dbs.dsn, target, rows, bulk=False)
            return await _raw_sqlite_one(target, rows)
        finally:
            await dbs.drop(target)

    kits, bases = await interleaved(sizes.rounds, kit, baseline)
    details: dict[str, Any] = {"events": len(bodies), "kit_rounds": kits, "baseline_rounds": bases}
    if not config.postgres:
        for _ in range(sizes.rounds):
            target = dbs.raw_target("enqueue_one_explicit")
            await settle()
            try:
                explicit.append(await _raw_sqlite_one(target, rows, explicit=True))
            finally:
                await dbs.drop(target)
        details["explicit_transaction_baseline"] = statistics.median(explicit)
        details["explicit_transaction_rounds"] = explicit
        details["ratio_vs_explicit_transaction"] = round(
            statistics.median(kits) / statistics.median(explicit), 3
        )
    kit_rate, base_rate = statistics.median(kits), statistics.median(bases)
    label = "raw asyncpg INSERT" if config.postgres else "raw aiosqlite INSERT (autocommit)"
    return Figure(
        id="enqueue_one",
        title="enqueue, one event per transaction",
        unit="events/s",
        kit=kit_rate,
        baseline=base_rate,
        baseline_label=label,
        target=">= 0.8x baseline",
        met=kit_rate >= 0.8 * base_rate,
        details=details,
    )


async def figure_enqueue_bulk(config: BenchConfig, dbs: Databases) -> Figure:
    sizes = config.effective_sizes
    bodies = [bench_body(i) for i in range(sizes.enqueue_bulk)]
    rows = raw_rows(len(bodies))
    payload_bytes = statistics.mean(len(p.encode()) for _, p in rows[:100])

    async def kit(r: int) -> float:
        url = dbs.new("enqueue_bulk")
        try:
            return await _kit_enqueue_bulk(url, bodies)
        finally:
            await dbs.drop(url)

    async def baseline(r: int) -> float:
        target = dbs.raw_target("enqueue_bulk_raw")
        try:
            if config.postgres:
                return await _raw_pg(dbs.dsn, target, rows, bulk=True)
            return await asyncio.to_thread(sqlite_bulk_rate, target, rows)
        finally:
            await dbs.drop(target)

    kits, bases = await interleaved(sizes.rounds, kit, baseline)
    kit_rate, base_rate = statistics.median(kits), statistics.median(bases)
    label = "raw asyncpg executemany" if config.postgres else "raw sqlite3 executemany"
    return Figure(
        id="enqueue_bulk",
        title="enqueue_many, batches of 1,000, validation included",
        unit="events/s",
        kit=kit_rate,
        baseline=base_rate,
        baseline_label=label,
        target=">= 50,000/s and >= 0.3x baseline",
        met=kit_rate >= 50_000 and kit_rate >= 0.3 * base_rate,
        details={
            "events": len(bodies),
            "payload_bytes": round(payload_bytes),
            "kit_rounds": kits,
            "baseline_rounds": bases,
        },
    )
