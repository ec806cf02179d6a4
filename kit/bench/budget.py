"""``etrusted-kit bench --budget``: where the time per event goes, part by part (SQLite).

The figures compare whole paths with raw baselines; this splits the kit's own cost per event
into its parts, so that anyone can check on their machine what a target leaves room for:
``enqueue_many`` at 50,000 events/s leaves 20 µs per event for all of ``prepare`` and the
write together. Every part runs alone in a tight loop (so its cost is a floor: inside the
real paths, between hand-offs to the worker thread, caches are colder), median of the rounds.
Delivery is measured with a client that answers at once without HTTP, so what is left is the
flusher's and the outbox's own work: the durable claim, result and attempt log. The intake is
measured the same way, without HTTP: the signed deliveries of ``bench intake`` taken in by
``Intake.ingest_raw`` 16 at a time, beside the bare handler's storage (one aiosqlite
autocommit INSERT of the raw body), which is what that figure's baseline does besides HTTP.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from kit import jsonenc
from kit.adapters import normalise_headers
from kit.bench.enqueue import BULK_BATCH, sqlite_bulk_rate
from kit.bench.intake import SECRET, SHOP_DOMAIN, bench_source, raw_sqlite_store
from kit.bench.measure import settle
from kit.bench.payloads import bench_body, bench_entry
from kit.bench.senders import Delivery, deliveries
from kit.errors import KitError
from kit.flusher import Flusher, FlusherConfig
from kit.journal import Intake, IntakeSource
from kit.outbox import Outbox, email_hash
from kit.outbox import _sqlite_sql as sql
from kit.outbox.migrations import load_migrations
from kit.outbox.types import State
from kit.testing import FakeDeliveryClient, Raise
from kit.validation import validate_event_body

INTAKE_CONCURRENCY = 16  # as many deliveries in flight as ``bench intake`` has senders


@attrs.frozen(kw_only=True)
class Part:
    """One line: a part of a path, its cost per event (µs) and what it covers."""

    path: str
    name: str
    us_per_event: float
    note: str = ""


@attrs.frozen(kw_only=True)
class Budget:
    events: int
    rounds: int
    parts: tuple[Part, ...]

    def table(self) -> str:
        rows = [("path", "part", "µs/event", "")]
        rows += [(p.path, p.name, f"{p.us_per_event:.1f}", p.note) for p in self.parts]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = [
            f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
            for r in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        head = f"etrusted-kit bench --budget: {self.events} events, median of {self.rounds} rounds"
        return head + "\n" + "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "rounds": self.rounds,
            "parts": [attrs.asdict(p) for p in self.parts],
        }


def _per_event(count: int, run: Callable[[], object], rounds: int) -> float:
    """Median CPU µs per event of this thread over ``rounds`` runs of ``run``."""
    samples = []
    for _ in range(rounds):
        started = time.thread_time()
        run()
        samples.append((time.thread_time() - started) / count * 1e6)
    return statistics.median(samples)


def _prepare_parts(bodies: Sequence[dict[str, Any]], rounds: int) -> list[Part]:
    outbox = Outbox(storage=None)  # type: ignore[arg-type]  # prepare() never touches storage
    payloads = [jsonenc.encode(b) for b in bodies]
    n = len(bodies)

    def each(fn: Callable[[Any], object], items: Sequence[Any]) -> Callable[[], None]:
        def run() -> None:
            for item in items:
                fn(item)

        return run

    def validate(body: dict[str, Any]) -> None:
        validate_event_body(body, allow_checkout=False)

    def hashes(i: int) -> None:
        email_hash(bodies[i]["customer"]["email"])
        hashlib.sha256(payloads[i].encode()).hexdigest()

    return [
        Part(
            path="enqueue",
            name="validate",
            us_per_event=_per_event(n, each(validate, bodies), rounds),
        ),
        Part(
            path="enqueue",
            name="encode",
            us_per_event=_per_event(n, each(jsonenc.encode, bodies), rounds),
            note=jsonenc.ENCODER,
        ),
        Part(
            path="enqueue",
            name="e-mail and payload hashes",
            us_per_event=_per_event(n, each(hashes, range(n)), rounds),
        ),
        Part(
            path="enqueue",
            name="Outbox.prepare (all of the above)",
            us_per_event=_per_event(n, each(outbox.prepare, bodies), rounds),
        ),
    ]


def _sqlite_rows(workdir: Path, n: int, rounds: int) -> list[Part]:
    """sqlite3 ``executemany`` in batches, parameters ready: the kit row against the raw row.

    Wall time, as the figures measure, so that checkpoints (and their fsyncs) count.
    """
    outbox_rows = [sql.new_entry_params(bench_entry(i), 1.0) for i in range(n)]
    raw_rows = [(r[0], r[4]) for r in outbox_rows]
    schema = [s for m in load_migrations("sqlite") for s in sql.statements(m.sql)]

    def timed(name: str, rows: Sequence[Any], **statements: Any) -> float:
        samples = []
        for r in range(rounds):
            path = workdir / f"budget-{name}-{r}.db"
            samples.append(1e6 / sqlite_bulk_rate(str(path), rows, **statements))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return statistics.median(samples)

    return [
        Part(
            path="enqueue",
            name="SQLite insert of the kit row",
            us_per_event=timed("kit", outbox_rows, setup=schema, insert=sql.INSERT_NEW_OR_SKIP),
            note="wall time; sqlite3 executemany, batches of 1,000",
        ),
        Part(
            path="enqueue",
            name="SQLite insert of a raw (key, payload) row",
            us_per_event=timed("raw", raw_rows),
            note="wall time; the bulk baseline's row",
        ),
    ]


async def _enqueue_entries(workdir: Path, n: int, rounds: int) -> Part:
    entries = [bench_entry(i) for i in range(n)]
    samples = []
    for r in range(rounds):
        async with Outbox.from_url(str(workdir / f"budget-entries-{r}.db")) as outbox:
            await settle()
            started = time.perf_counter()
            await outbox.enqueue_entries(entries, batch_size=BULK_BATCH)
            samples.append((time.perf_counter() - started) / n * 1e6)
    return Part(
        path="enqueue",
        name="Outbox.enqueue_entries (prepared)",
        us_per_event=statistics.median(samples),
        note="wall time: the write path through the worker thread",
    )


def _instant_client() -> FakeDeliveryClient:
    """Answers every POST with a fresh ref at once: delivery without HTTP. Reconciliation is
    never needed here (every POST is answered), so a lookup would be a bug in the budget."""
    return FakeDeliveryClient(lookup_answer=Raise(KitError("the budget's client has no invites")))


async def _delivery(workdir: Path, n: int, rounds: int) -> list[Part]:
    entries = [bench_entry(i) for i in range(n)]
    whole: list[float] = []
    loop_thread: list[float] = []
    for r in range(rounds):
        async with Outbox.from_url(str(workdir / f"budget-delivery-{r}.db")) as outbox:
            await outbox.enqueue_entries(entries, batch_size=5000)
            flusher = Flusher(
                outbox, _instant_client(), FlusherConfig(concurrency=8, check_event_types=False)
            )
            await settle()
            cpu, thread = time.process_time(), time.thread_time()
            stats = await flusher.run_once()
            cpu, thread = time.process_time() - cpu, time.thread_time() - thread
        if stats.delivered != n:
            raise KitError(f"the budget's flusher delivered {stats.delivered} of {n} entries")
        whole.append(cpu / n * 1e6)
        loop_thread.append(thread / n * 1e6)
    return _by_thread(
        "delivery",
        "flusher + outbox, no HTTP: whole process",
        "claim, result, attempt log, queues; concurrency 8",
        whole,
        loop_thread,
    )


def _by_thread(
    path: str, name: str, note: str, whole: Sequence[float], loop_thread: Sequence[float]
) -> list[Part]:
    """A whole process's cost per event, then what of it ran on the loop's thread and the rest
    (the outbox's worker thread: the process runs no other)."""
    total, on_loop = statistics.median(whole), statistics.median(loop_thread)
    return [
        Part(path=path, name=name, us_per_event=total, note=note),
        Part(path=path, name="  of it on the event loop's thread", us_per_event=on_loop),
        Part(
            path=path,
            name="  of it on the outbox's worker thread (SQLite)",
            us_per_event=max(total - on_loop, 0.0),
        ),
    ]


async def _sixteen_at_a_time(
    items: Sequence[Delivery], take: Callable[[Delivery], Any]
) -> tuple[float, float]:
    """CPU seconds of the whole process and of this thread while ``take`` runs on every item,
    ``INTAKE_CONCURRENCY`` at a time."""
    pending = iter(items)

    async def taker() -> None:
        for item in pending:
            await take(item)

    await settle()
    cpu, thread = time.process_time(), time.thread_time()
    await asyncio.gather(*(taker() for _ in range(INTAKE_CONCURRENCY)))
    return time.process_time() - cpu, time.thread_time() - thread


async def _intake(workdir: Path, n: int, rounds: int) -> list[Part]:
    items = deliveries(n, secret=SECRET, shop_domain=SHOP_DOMAIN, shipped_at=datetime.now(UTC))
    source = bench_source()
    adapter = source.adapter
    lowered = [(normalise_headers(headers), raw) for headers, raw in items]
    received_at = datetime.now(UTC)

    def verify() -> None:
        for headers, raw in lowered:
            adapter.verify(headers, raw, source.secrets)

    def parse() -> None:
        for headers, raw in lowered:
            adapter.parse(headers, raw, received_at=received_at)

    whole: list[float] = []
    loop_thread: list[float] = []
    raw_insert: list[float] = []
    for r in range(rounds):
        async with Outbox.from_url(str(workdir / f"budget-intake-{r}.db")) as outbox:
            cpu, thread = await _sixteen_at_a_time(
                items, functools.partial(_ingest, Intake(outbox), source)
            )
            if (await outbox.stats()).counts.get(State.PENDING, 0) != n:
                raise KitError(f"the budget's intake did not enqueue all {n} deliveries")
        whole.append(cpu / n * 1e6)
        loop_thread.append(thread / n * 1e6)
        raw_insert.append(await _raw_inserts(workdir / f"budget-raw-{r}.db", items) / n * 1e6)
    return [
        Part(
            path="intake", name="verify (HMAC-SHA256)", us_per_event=_per_event(n, verify, rounds)
        ),
        Part(
            path="intake",
            name="parse (order to domain events)",
            us_per_event=_per_event(n, parse, rounds),
        ),
        *_by_thread(
            "intake",
            "Intake.ingest_raw, no HTTP: whole process",
            "verify, parse, journal, policy, outbox: one transaction each; 16 at a time",
            whole,
            loop_thread,
        ),
        Part(
            path="intake",
            name="bare handler's storage: one autocommit INSERT",
            us_per_event=statistics.median(raw_insert),
            note="aiosqlite, the raw body; 16 at a time; whole process",
        ),
    ]


async def _ingest(intake: Intake, source: IntakeSource, item: Delivery) -> None:
    await intake.ingest_raw(source, *item)


async def _raw_inserts(path: Path, items: Sequence[Delivery]) -> float:
    """What ``bench intake``'s baseline stores per webhook, without its HTTP: CPU seconds."""
    async with raw_sqlite_store(str(path)) as raw:
        cpu, _thread = await _sixteen_at_a_time(
            items, lambda item: raw.store(item[0]["X-Shopify-Webhook-Id"], item[1])
        )
        if await raw.stored() != len(items):
            raise KitError("the budget's raw INSERTs did not store every delivery")
    return cpu


async def run_budget(workdir: Path, *, quick: bool) -> Budget:
    """Measure every part; ``workdir`` holds the scratch databases (the caller removes it)."""
    n, rounds = (2000, 2) if quick else (20_000, 3)
    bodies = [bench_body(i) for i in range(n)]
    parts = _prepare_parts(bodies, rounds)
    parts += await asyncio.to_thread(_sqlite_rows, workdir, n, rounds)
    write = await _enqueue_entries(workdir, n, rounds)
    prepare = next(p for p in parts if p.name.startswith("Outbox.prepare"))
    floor = prepare.us_per_event + write.us_per_event
    parts += [
        write,
        Part(
            path="enqueue",
            name="enqueue_many at best: prepare + write",
            us_per_event=floor,
            note=f"at most {1e6 / floor:,.0f} events/s (50,000/s leaves 20 µs)" if floor else "",
        ),
    ]
    parts += await _delivery(workdir, min(n, 8000), rounds)
    parts += await _intake(workdir, min(n, 3000), rounds)
    return Budget(events=n, rounds=rounds, parts=tuple(parts))
