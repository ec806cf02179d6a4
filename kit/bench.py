"""``etrusted-kit bench``: each performance figure measured beside a raw baseline.

Numbers from one machine say little on their own, so every figure runs the kit and a raw
baseline doing the same job with nothing of the kit in it (aiosqlite / sqlite3 / asyncpg / a bare
aiohttp loop) in the same invocation, in alternating rounds, and reports the ratio. The median of
the rounds counts. The eTrusted stand-in (the sandbox) runs in a separate process so its CPU is
not the kit's; flusher processes for the backlog, RSS and scale-out figures are children started
with ``python -m kit.bench`` (the same :class:`~kit.flusher.Flusher` as ``etrusted-kit flush``).
docs/performance.md describes the method and the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import aiosqlite
import attrs

from kit.client import ETrustedClient
from kit.config import ClientConfig
from kit.errors import ConfigError, KitError, NetworkError, StorageError
from kit.flusher import Flusher, FlusherConfig
from kit.models import EventAccepted, EventDetails, EventType, Invite
from kit.outbox import Outbox, default_key, email_hash
from kit.outbox.types import KEY_MARKER, Completion, NewEntry, Release, State
from kit.sandbox import SEEDED_CHANNEL_IDS

logger = logging.getLogger(__name__)

EVENT_TYPE = "order_shipped"
SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 (the sandbox's published test credentials)
LATE_ANSWER_FAULT = {"kind": "late_answer", "delay": 0.02, "method": "POST", "path": "/events"}
BULK_BATCH = 1000

# -- what is measured, and how much ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Sizes:
    """How many events each figure moves; ``--quick`` shrinks everything but the 10k backlog."""

    rounds: int  # alternating kit / baseline rounds per ratio figure; the median counts
    enqueue_one: int
    enqueue_bulk: int
    delivery: int
    backlog_small: int
    backlog_large: int
    backlog_drain: int  # the first N entries drained from each backlog, per round
    claim_samples: int
    latency_events: int
    latency_interval: float  # seconds between two enqueues: a modest, steady rate
    cross_events: int
    cross_interval: float
    scale_out: int  # entries drained by 1 and by 4 flusher processes (PostgreSQL)
    scale_rounds: int


FULL = Sizes(
    rounds=5,
    enqueue_one=3000,
    enqueue_bulk=100_000,
    delivery=4000,
    backlog_small=10_000,
    backlog_large=1_000_000,
    backlog_drain=3000,
    claim_samples=50,
    latency_events=300,
    latency_interval=0.02,
    cross_events=60,
    cross_interval=0.05,
    scale_out=1500,
    scale_rounds=3,
)
QUICK = Sizes(
    rounds=2,
    enqueue_one=300,
    enqueue_bulk=5000,
    delivery=300,
    backlog_small=10_000,
    backlog_large=100_000,
    backlog_drain=300,
    claim_samples=10,
    latency_events=40,
    latency_interval=0.01,
    cross_events=12,
    cross_interval=0.05,
    scale_out=200,
    scale_rounds=1,
)


@attrs.frozen(kw_only=True)
class BenchConfig:
    """One bench run. ``environ`` is what child processes inherit (the CLI passes its own)."""

    db: str | None = None  # None or a SQLite path: SQLite; postgresql://...: PostgreSQL
    quick: bool = False
    concurrency: int = 8  # flusher concurrency and the baseline's parallel POSTs
    # Per flusher process in the scale-out figure: 2 POSTs of 20 ms in flight keep the remote the
    # bottleneck (4 x 2 / 0.02 s = 400/s); at 8 a 2-core machine runs out of CPU first.
    scale_concurrency: int = 2
    poll_interval: float = 1.0  # flusher poll interval (the cross-process latency bound)
    python: str = sys.executable
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    sizes: Sizes | None = None  # None: QUICK or FULL by ``quick``

    @property
    def postgres(self) -> bool:
        return self.db is not None and self.db.startswith(("postgresql://", "postgres://"))

    @property
    def effective_sizes(self) -> Sizes:
        if self.sizes is not None:
            return self.sizes
        return QUICK if self.quick else FULL


@attrs.frozen(kw_only=True)
class Figure:
    """One line of the results table (and one object of the JSON)."""

    id: str
    title: str
    unit: str
    kit: float | None = None
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None
    skipped: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.kit is None or not self.baseline:
            return None
        return self.kit / self.baseline

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "kit": _rounded(self.kit),
            "baseline": _rounded(self.baseline),
            "baseline_label": self.baseline_label,
            "ratio": _rounded(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            "skipped": self.skipped,
            "details": self.details,
        }


FIGURE_IDS = (
    "enqueue_one",
    "enqueue_bulk",
    "delivery",
    "backlog_rate",
    "backlog_rss",
    "latency_same_process",
    "latency_cross_process",
    "scale_out",
)


@attrs.frozen(kw_only=True)
class BenchReport:
    backend: str
    quick: bool
    sizes: Sizes
    machine: dict[str, Any]
    elapsed: float
    figures: tuple[Figure, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "backend": self.backend,
            "quick": self.quick,
            "sizes": attrs.asdict(self.sizes),
            "machine": self.machine,
            "elapsed_s": round(self.elapsed, 1),
            "figures": [f.to_json() for f in self.figures],
        }

    def table(self) -> str:
        return format_table(self)


# -- the event bodies -----------------------------------------------------------------------


def _body(n: str, channel_id: str, *, marked: bool = False) -> dict[str, Any]:
    metadata = {"source": "bench", "campaign": "spring"}
    if marked:  # what Outbox.prepare adds: the entry's key, for reconciliation
        metadata[KEY_MARKER] = f"{channel_id}:{EVENT_TYPE}:order-{n}"
    return {
        "type": EVENT_TYPE,
        "defaultLocale": "de_DE",
        "customer": {
            "firstName": "Anna",
            "lastName": "Schmidt",
            "email": f"anna.schmidt.{n}@example.com",
            "address": "Hauptstrasse 12, 10115 Berlin",
            "reference": f"cust-{n}",
        },
        "channel": {"id": channel_id},
        "transaction": {"reference": f"order-{n}", "date": "2026-05-01T10:00:00.000Z"},
        "estimatedDeliveryDate": "2026-05-04",
        "products": [
            {
                "name": "Merino Sweater Navy M",
                "sku": "MS-NV-M",
                "gtin": "4006381333931",
                "mpn": "MS-2026-NV-M",
                "url": "https://shop.example.com/p/ms-nv-m",
                "imageUrl": "https://shop.example.com/img/ms-nv-m.jpg",
                "brand": "Example Knitwear",
            },
            {
                "name": "Trail Runner 42",
                "sku": "TR-42-BK",
                "gtin": "4006381333948",
                "mpn": "TR-2026-42-BK",
                "url": "https://shop.example.com/p/tr-42-bk",
                "imageUrl": "https://shop.example.com/img/tr-42-bk.jpg",
                "brand": "Example Outdoor",
            },
        ],
        "system": "etrusted-kit-bench",
        "systemVersion": "0.1.0",
        "metadata": metadata,
    }


def bench_body(i: int) -> dict[str, Any]:
    """A realistic event body of about 1 KB (two products, full customer); unique per ``i``."""
    return _body(f"{i:09d}", SEEDED_CHANNEL_IDS[i % len(SEEDED_CHANNEL_IDS)])


_MARK = "#N#"
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_TEMPLATES = tuple(_ENCODER.encode(_body(_MARK, c, marked=True)) for c in SEEDED_CHANNEL_IDS)


def bench_entry(i: int) -> NewEntry:
    """``bench_body(i)`` as the outbox stores it, built fast for million-entry backlogs.

    Bodies differ only in the number, so the JSON comes from a template instead of a fresh
    validate-and-encode; the result is identical to ``Outbox.prepare(bench_body(i))``.
    """
    n = f"{i:09d}"
    channel = SEEDED_CHANNEL_IDS[i % len(SEEDED_CHANNEL_IDS)]
    return NewEntry(
        key=f"{channel}:{EVENT_TYPE}:order-{n}",
        payload=_TEMPLATES[i % len(_TEMPLATES)].replace(_MARK, n),
        event_type=EVENT_TYPE,
        channel_id=channel,
        transaction_reference=f"order-{n}",
        email_hash=email_hash(f"anna.schmidt.{n}@example.com"),
    )


def _raw_rows(count: int) -> list[tuple[str, str]]:
    """The (key, payload) rows the kit stores for ``bench_body(0..count-1)``, for the baselines."""
    return [(e.key, e.payload) for e in map(bench_entry, range(count))]


# -- small helpers --------------------------------------------------------------------------


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "aiohttp": aiohttp.__version__,
        "loadavg_start": _loadavg(),
    }


def peak_rss_kb() -> int:
    """This process's peak resident set size (VmHWM; ru_maxrss where /proc is missing)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@contextlib.contextmanager
def _db_errors(what: str) -> Iterator[None]:
    """Driver errors of the raw baselines, translated like the backends translate theirs."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"bench baseline {what} failed: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):
            raise StorageError(f"bench baseline {what} failed: {exc}") from exc
        raise


async def settle() -> None:
    """Let the previous run's dirty pages reach the disk and its garbage go, before timing.

    Without this, SQLite's checkpoint fsyncs in one run wait for the write-back of the run
    before it, and whichever side runs second looks several times slower.
    """
    await asyncio.to_thread(os.sync)
    gc.collect()


async def _interleaved(
    rounds: int,
    kit: Callable[[int], Awaitable[float]],
    baseline: Callable[[int], Awaitable[float]],
) -> tuple[list[float], list[float]]:
    """Run kit and baseline rounds alternately (who goes first alternates too)."""
    kits: list[float] = []
    bases: list[float] = []
    for r in range(rounds):
        for which in ("kit", "baseline") if r % 2 == 0 else ("baseline", "kit"):
            await settle()
            if which == "kit":
                kits.append(await kit(r))
            else:
                bases.append(await baseline(r))
    return kits, bases


# -- places to put databases ----------------------------------------------------------------


class _Databases:
    """Fresh, empty outbox databases for each round: SQLite files or PostgreSQL schemas."""

    def __init__(self, config: BenchConfig, workdir: Path) -> None:
        self._config = config
        self._workdir = workdir
        self._counter = 0
        self._schemas: list[str] = []
        self.base_schema = "etk_bench"
        self.dsn = ""
        if config.postgres:
            assert config.db is not None
            parts = urlsplit(config.db)
            query = parse_qsl(parts.query, keep_blank_values=True)
            schema = [v for k, v in query if k == "schema"]
            if schema:
                self.base_schema = schema[-1]
            rest = urlencode([(k, v) for k, v in query if k != "schema"])
            self.dsn = urlunsplit(parts._replace(query=rest))

    def _name(self, label: str) -> str:
        self._counter += 1
        return f"{label}_{self._counter}"

    def new(self, label: str) -> str:
        """The URL of a new, empty outbox (created on first open)."""
        name = self._name(label)
        if not self._config.postgres:
            return str(self._workdir / f"{name}.db")
        schema = f"{self.base_schema}_{name}"[:58]
        self._schemas.append(schema)
        parts = urlsplit(self.dsn)
        query = [*parse_qsl(parts.query, keep_blank_values=True), ("schema", schema)]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def raw_target(self, label: str) -> str:
        """A SQLite file, or a PostgreSQL schema name, for a raw baseline."""
        name = self._name(label)
        if not self._config.postgres:
            return str(self._workdir / f"{name}.db")
        schema = f"{self.base_schema}_{name}"[:58]
        self._schemas.append(schema)
        return schema

    async def drop(self, url_or_schema: str) -> None:
        """Remove one database now (a 1M backlog takes gigabytes)."""
        if not self._config.postgres:
            for suffix in ("", "-wal", "-shm"):
                await asyncio.to_thread(Path(url_or_schema + suffix).unlink, missing_ok=True)
            return
        schema = url_or_schema
        if "://" in url_or_schema:
            query = dict(parse_qsl(urlsplit(url_or_schema).query))
            schema = query["schema"]
        await self._drop_schemas([schema])
        with contextlib.suppress(ValueError):
            self._schemas.remove(schema)

    async def aclose(self) -> None:
        if self._config.postgres and self._schemas:
            schemas, self._schemas = self._schemas, []
            await self._drop_schemas(schemas)

    async def _drop_schemas(self, schemas: Sequence[str]) -> None:
        import asyncpg

        with _db_errors("drop schema"):
            conn = await asyncpg.connect(self.dsn)
            try:
                for schema in schemas:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()


# -- the sandbox and child processes --------------------------------------------------------


class _Child:
    """A child process whose stderr goes to a file, shown when it fails."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(
        self, argv: Sequence[str], env: Mapping[str, str], *, pipes: bool = False
    ) -> None:
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stderr=log,
                env=dict(env),
            )

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            return " | ".join(lines[-5:])
        return ""

    def failed(self, what: str) -> KitError:
        code = None if self.proc is None else self.proc.returncode
        return KitError(f"{self.name} {what} (exit code {code}): {self.tail()}")

    async def send(self, line: str) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109 (a bound)
        assert self.proc is not None
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                raw = await self.proc.stdout.readline()
        except TimeoutError as exc:
            raise self.failed(f"did not answer within {timeout:g} s") from exc
        if not raw:
            await self.proc.wait()
            raise self.failed("exited early")
        data: dict[str, Any] = json.loads(raw)
        return data

    async def stop(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109 (a bound)
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
            with contextlib.suppress(ConnectionError):
                await proc.stdin.wait_closed()

    async def wait(self, timeout: float) -> int:  # noqa: ASYNC109 (a bound)
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError as exc:
            raise self.failed(f"did not finish within {timeout:g} s") from exc


class _SandboxProcess:
    """``python -m kit sandbox`` in its own process, so the kit and the API do not share a core."""

    def __init__(self, config: BenchConfig, workdir: Path, name: str, faults: Sequence[Any] = ()):
        self._config = config
        self._ready = workdir / f"{name}.ready.json"
        self._faults = faults
        self.child = _Child(name, workdir)
        self.api_url = ""
        self.token_url = ""

    async def start(self) -> None:
        argv = [self._config.python, "-m", "kit", "sandbox", "--port", "0", "--seed", "1"]
        argv += ["--token-expires-in", "86400", "--ready-file", str(self._ready)]
        for fault in self._faults:
            argv += ["--fault", json.dumps(fault)]
        await self.child.start(argv, self._config.environ)
        assert self.child.proc is not None
        async with asyncio.timeout(60):
            while not self._ready.exists():
                if self.child.proc.returncode is not None:
                    raise self.child.failed("exited before it was ready")
                await asyncio.sleep(0.02)
        info = json.loads(self._ready.read_text())
        self.api_url, self.token_url = info["api_url"], info["token_url"]

    def client_config(self) -> ClientConfig:
        return ClientConfig(
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            api_url=self.api_url,
            token_url=self.token_url,
        )

    def client_spec(self) -> dict[str, str]:
        return {"api_url": self.api_url, "token_url": self.token_url}

    async def reset(self, admin: ETrustedClient, session: aiohttp.ClientSession) -> None:
        """A fresh account (the sandbox keeps every accepted event in memory) with our type."""
        try:
            async with session.post(f"{self.api_url}/_sandbox/reset") as response:
                if response.status != 204:
                    raise NetworkError(f"sandbox reset answered HTTP {response.status}")
            for fault in self._faults:  # a reset clears the faults too
                async with session.post(f"{self.api_url}/_sandbox/faults", json=fault) as response:
                    if response.status != 201:
                        raise NetworkError(f"sandbox fault answered HTTP {response.status}")
        except aiohttp.ClientError as exc:
            raise NetworkError(f"sandbox reset failed: {exc}") from exc
        await admin.create_event_type(EVENT_TYPE, active=True)

    async def stop(self) -> None:
        await self.child.stop()


def _child_env(config: BenchConfig, sandbox: _SandboxProcess, db: str) -> dict[str, str]:
    env = dict(config.environ)
    env.update(
        ETRUSTED_API_URL=sandbox.api_url,
        ETRUSTED_TOKEN_URL=sandbox.token_url,
        ETRUSTED_CLIENT_ID=SANDBOX_CLIENT_ID,
        ETRUSTED_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
        ETRUSTED_KIT_DB=db,
    )
    return env


class _FlusherChild:
    """``python -m kit.bench``: one flusher process that starts on "go" and reports back."""

    def __init__(self, config: BenchConfig, workdir: Path, name: str) -> None:
        self._config = config
        self.child = _Child(name, workdir)

    async def start(self, spec: Mapping[str, Any]) -> None:
        await self.child.start(
            [self._config.python, "-m", "kit.bench"], self._config.environ, pipes=True
        )
        await self.child.send(json.dumps(spec))
        ready = await self.child.receive(60)
        if not ready.get("ready"):
            raise self.child.failed(f"sent {ready!r} instead of ready")

    async def go(self) -> None:
        await self.child.send("go")

    async def result(self, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109 (a bound)
        data = await self.child.receive(timeout)
        await self.child.wait(30)
        return data

    async def stop(self) -> None:
        await self.child.stop()


# -- a client wrapper that sees every POST --------------------------------------------------


class _WatchedClient:
    """Delegates to an :class:`ETrustedClient`, noting when each POST starts and how many ended.

    ``target``: set ``reached`` once that many POSTs have been answered with 202. ``record``:
    keep (time, body) of every POST (off in child processes, whose memory is measured).
    """

    def __init__(
        self, client: ETrustedClient, *, target: int | None = None, record: bool = True
    ) -> None:
        self._client = client
        self._target = target
        self._record = record
        self.started: list[tuple[float, bytes | str]] = []
        self.accepted = 0
        self.reached = asyncio.Event()
        self.reached_at: float | None = None

    async def post_event_json(self, body: bytes | str) -> EventAccepted:
        if self._record:
            self.started.append((time.time(), body))
        answer = await self._client.post_event_json(body)
        self.accepted += 1
        if self._target is not None and self.accepted >= self._target and not self.reached.is_set():
            self.reached_at = time.perf_counter()
            self.reached.set()
        return answer

    async def list_event_types(self, name: str | None = None) -> list[EventType]:
        return await self._client.list_event_types(name)

    def iter_invites(
        self, channel_id: str, *, query: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Invite]:
        return self._client.iter_invites(channel_id, query=query, page_size=page_size)

    async def get_event(self, ref: str) -> EventDetails:
        return await self._client.get_event(ref)


# -- figure 1 and 2: enqueue ----------------------------------------------------------------


async def _kit_enqueue_one(url: str, bodies: Sequence[dict[str, Any]]) -> float:
    async with Outbox.from_url(url) as outbox:
        started = time.perf_counter()
        for body in bodies:
            await outbox.enqueue(body)
        return _rate(len(bodies), time.perf_counter() - started)


async def _kit_enqueue_bulk(url: str, bodies: Sequence[dict[str, Any]]) -> float:
    async with Outbox.from_url(url) as outbox:
        started = time.perf_counter()
        await outbox.enqueue_many(bodies, batch_size=BULK_BATCH)
        return _rate(len(bodies), time.perf_counter() - started)


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
    with _db_errors("aiosqlite insert"):
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
            return _rate(len(rows), time.perf_counter() - started)
        finally:
            await conn.close()


def _raw_sqlite_bulk(path: str, rows: Sequence[tuple[str, str]]) -> float:
    """sqlite3 ``executemany``, one transaction per batch of 1,000 (runs in a thread)."""
    with (
        _db_errors("sqlite3 executemany"),
        contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn,
    ):
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(_RAW_SQLITE_TABLE)
        started = time.perf_counter()
        for start in range(0, len(rows), BULK_BATCH):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_RAW_SQLITE_INSERT, rows[start : start + BULK_BATCH])
            conn.execute("COMMIT")
        return _rate(len(rows), time.perf_counter() - started)


async def _raw_pg(dsn: str, schema: str, rows: Sequence[tuple[str, str]], *, bulk: bool) -> float:
    """asyncpg: one autocommit INSERT per row, or ``executemany`` per batch in a transaction."""
    import asyncpg

    with _db_errors("asyncpg insert"):
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
            return _rate(len(rows), time.perf_counter() - started)
        finally:
            await conn.close()


async def _figure_enqueue_one(config: BenchConfig, dbs: _Databases) -> Figure:
    sizes = config.effective_sizes
    bodies = [bench_body(i) for i in range(sizes.enqueue_one)]
    rows = _raw_rows(len(bodies))
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

    kits, bases = await _interleaved(sizes.rounds, kit, baseline)
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


async def _figure_enqueue_bulk(config: BenchConfig, dbs: _Databases) -> Figure:
    sizes = config.effective_sizes
    bodies = [bench_body(i) for i in range(sizes.enqueue_bulk)]
    rows = _raw_rows(len(bodies))
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
            return await asyncio.to_thread(_raw_sqlite_bulk, target, rows)
        finally:
            await dbs.drop(target)

    kits, bases = await _interleaved(sizes.rounds, kit, baseline)
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


# -- figure 3: delivery ---------------------------------------------------------------------


async def _fetch_token(session: aiohttp.ClientSession, sandbox: _SandboxProcess) -> str:
    form = {
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "grant_type": "client_credentials",
    }
    async with session.post(sandbox.token_url, data=form) as response:
        data = await response.json()
    token: str = data["access_token"]
    return token


async def _raw_delivery(
    sandbox: _SandboxProcess, payloads: Sequence[bytes], concurrency: int
) -> tuple[float, float]:
    """A bare aiohttp loop: one token up front, ``concurrency`` POSTs in flight, nothing else."""
    url = f"{sandbox.api_url}/events"
    try:
        async with aiohttp.ClientSession() as session:
            token = await _fetch_token(session, sandbox)
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            pending = iter(payloads)

            async def worker() -> None:
                for payload in pending:
                    async with session.post(url, data=payload, headers=headers) as response:
                        await response.read()
                        if response.status != 202:
                            raise NetworkError(f"baseline POST answered {response.status}")

            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            return _rate(len(payloads), elapsed), cpu / len(payloads) * 1e6
    except aiohttp.ClientError as exc:
        raise NetworkError(f"baseline delivery failed: {exc}") from exc


async def _kit_delivery(
    url: str, sandbox: _SandboxProcess, entries: Sequence[NewEntry], concurrency: int
) -> tuple[float, float]:
    """Rate and CPU microseconds per event of this process (the aiosqlite thread included)."""
    async with (
        Outbox.from_url(url) as outbox,
        ETrustedClient(sandbox.client_config()) as client,
    ):
        await outbox.enqueue_entries(entries, batch_size=5000)
        flusher = Flusher(outbox, client, FlusherConfig(concurrency=concurrency))
        await settle()
        started, cpu = time.perf_counter(), time.process_time()
        stats = await flusher.run_once()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        if stats.delivered != len(entries):
            raise KitError(f"the flusher delivered {stats.delivered} of {len(entries)} entries")
        return _rate(stats.delivered, elapsed), cpu / len(entries) * 1e6


async def _figure_delivery(
    config: BenchConfig,
    dbs: _Databases,
    sandbox: _SandboxProcess,
    admin: ETrustedClient,
    session: aiohttp.ClientSession,
) -> Figure:
    sizes = config.effective_sizes
    entries = [bench_entry(i) for i in range(sizes.delivery)]
    payloads = [e.payload.encode() for e in entries]

    kit_cpu: list[float] = []
    base_cpu: list[float] = []

    async def kit(r: int) -> float:
        await sandbox.reset(admin, session)
        url = dbs.new("delivery")
        try:
            rate, cpu = await _kit_delivery(url, sandbox, entries, config.concurrency)
        finally:
            await dbs.drop(url)
        kit_cpu.append(cpu)
        return rate

    async def baseline(r: int) -> float:
        await sandbox.reset(admin, session)
        rate, cpu = await _raw_delivery(sandbox, payloads, config.concurrency)
        base_cpu.append(cpu)
        return rate

    kits, bases = await _interleaved(sizes.rounds, kit, baseline)
    kit_rate, base_rate = statistics.median(kits), statistics.median(bases)
    return Figure(
        id="delivery",
        title=f"delivery to the sandbox process, {config.concurrency} in flight",
        unit="events/s",
        kit=kit_rate,
        baseline=base_rate,
        baseline_label="bare aiohttp POST loop",
        target=">= 0.9x baseline",
        met=kit_rate >= 0.9 * base_rate,
        details={
            "events": len(entries),
            "concurrency": config.concurrency,
            "kit_cpu_us_per_event": round(statistics.median(kit_cpu)),
            "baseline_cpu_us_per_event": round(statistics.median(base_cpu)),
            "kit_rounds": kits,
            "baseline_rounds": bases,
        },
    )


# -- figure 4: backlog scaling and memory ---------------------------------------------------


async def _fill(
    url: str, count: int, *, start: int = 0, progress: Callable[[str], None] | None = None
) -> None:
    """``count`` pending entries (numbered from ``start``), inserted in large batches."""
    step = 5000
    async with Outbox.from_url(url) as outbox:
        for first in range(start, start + count, step):
            batch = [bench_entry(i) for i in range(first, min(start + count, first + step))]
            await outbox.enqueue_entries(batch, batch_size=step)
            done = first - start
            if progress is not None and done and done % 200_000 == 0:
                progress(f"    ... {done:,} of {count:,}")


async def _claim_ms(url: str, samples: int) -> float:
    """Median time of one claim of 16 entries, each given back at once (nothing is sent)."""
    times: list[float] = []
    async with Outbox.from_url(url) as outbox:
        storage = outbox.storage
        for _ in range(samples):
            now = time.time()
            started = time.perf_counter()
            claimed = await storage.claim(owner="bench", limit=16, lease_seconds=60, now=now)
            times.append((time.perf_counter() - started) * 1000)
            await storage.finish(
                [Completion(c.key, c.attempt, Release()) for c in claimed], now=time.time()
            )
    return statistics.median(times)


async def _drain_child(
    config: BenchConfig, workdir: Path, sandbox: _SandboxProcess, url: str, count: int, name: str
) -> dict[str, Any]:
    child = _FlusherChild(config, workdir, name)
    spec = {
        "db": url,
        "client": sandbox.client_spec(),
        "concurrency": config.concurrency,
        "poll_interval": config.poll_interval,
        "count": count,
    }
    try:
        await child.start(spec)
        await child.go()
        return await child.result(timeout=600)
    finally:
        await child.stop()


async def _figure_backlog(
    config: BenchConfig,
    dbs: _Databases,
    workdir: Path,
    sandbox: _SandboxProcess,
    admin: ETrustedClient,
    session: aiohttp.ClientSession,
    progress: Callable[[str], None],
) -> tuple[Figure, Figure]:
    sizes = config.effective_sizes
    small_url, large_url = dbs.new("backlog_small"), dbs.new("backlog_large")
    try:
        progress(f"  filling a backlog of {sizes.backlog_small:,} entries")
        await _fill(small_url, sizes.backlog_small)
        progress(f"  filling a backlog of {sizes.backlog_large:,} entries")
        started = time.perf_counter()
        await _fill(large_url, sizes.backlog_large, progress=progress)
        fill_rate = _rate(sizes.backlog_large, time.perf_counter() - started)
        claim_small = await _claim_ms(small_url, sizes.claim_samples)
        claim_large = await _claim_ms(large_url, sizes.claim_samples)
        results: dict[str, list[dict[str, Any]]] = {"small": [], "large": []}
        urls = {"small": small_url, "large": large_url}
        sizes_of = {"small": sizes.backlog_small, "large": sizes.backlog_large}
        for r in range(sizes.rounds):
            order = ("small", "large") if r % 2 == 0 else ("large", "small")
            for which in order:
                await sandbox.reset(admin, session)
                await settle()
                result = await _drain_child(
                    config, workdir, sandbox, urls[which], sizes.backlog_drain, f"drain_{which}_{r}"
                )
                if result["counted"] < sizes.backlog_drain:
                    raise KitError(f"the {which} backlog ran dry: {result}")
                results[which].append(result)
                # Top the backlog up again, so that every round starts from the same size.
                start = sizes_of[which] + r * sizes.backlog_drain
                await _fill(urls[which], sizes.backlog_drain, start=start)
    finally:
        await dbs.drop(small_url)
        await dbs.drop(large_url)
    small_rate = statistics.median(x["rate"] for x in results["small"])
    large_rate = statistics.median(x["rate"] for x in results["large"])
    large = sizes.backlog_large
    large_label = f"{large // 1_000_000}M" if large % 1_000_000 == 0 else f"{large // 1000:,}k"
    rss_mb = max(x["peak_rss_kb"] for x in results["large"]) / 1024
    rss_small_mb = max(x["peak_rss_kb"] for x in results["small"]) / 1024
    note = "--quick: 100k instead of 1M pending entries" if config.quick else ""
    rate = Figure(
        id="backlog_rate",
        title=f"delivery rate, first {sizes.backlog_drain:,} of {large_label} vs 10k pending",
        unit="events/s",
        kit=large_rate,
        baseline=small_rate,
        baseline_label=f"same, {sizes.backlog_small // 1000}k pending",
        target=">= 0.9x the 10k rate",
        met=large_rate >= 0.9 * small_rate,
        details={
            "backlog_small": sizes.backlog_small,
            "backlog_large": sizes.backlog_large,
            "drained_per_round": sizes.backlog_drain,
            "claim_ms_p50_small": round(claim_small, 3),
            "claim_ms_p50_large": round(claim_large, 3),
            "fill_rate_large": round(fill_rate),
            "small_rounds": [round(x["rate"], 1) for x in results["small"]],
            "large_rounds": [round(x["rate"], 1) for x in results["large"]],
            "note": note,
        },
    )
    rss = Figure(
        id="backlog_rss",
        title=f"flusher process peak RSS, {large_label} pending",
        unit="MB",
        kit=rss_mb,
        baseline=None,
        baseline_label="",
        target="<= 150 MB",
        met=rss_mb <= 150,
        details={"peak_rss_mb_small_backlog": round(rss_small_mb, 1), "note": note},
    )
    return rate, rss


# -- figure 5: latency ----------------------------------------------------------------------


def _reference(body: bytes | str) -> str:
    reference: str = json.loads(body)["transaction"]["reference"]
    return reference


async def _attempt_latencies(outbox: Outbox, keys: Sequence[str]) -> list[float]:
    """Enqueue-to-POST from the outbox's own records: first send's ``started_at - created_at``."""
    latencies = []
    for key in keys:
        entry = await outbox.get(key)
        sends = [a for a in await outbox.attempts(key) if a.kind.value == "send"]
        if sends:
            latencies.append((sends[0].started_at - entry.created_at) * 1000)
    return latencies


def _latency_details(values: Sequence[float]) -> dict[str, Any]:
    return {
        "p50_ms": round(percentile(values, 50), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "max_ms": round(max(values), 3),
        "samples": len(values),
    }


async def _figure_latency_same_process(
    config: BenchConfig,
    dbs: _Databases,
    sandbox: _SandboxProcess,
    admin: ETrustedClient,
    session: aiohttp.ClientSession,
) -> Figure:
    sizes = config.effective_sizes
    await sandbox.reset(admin, session)
    url = dbs.new("latency")
    bodies = [bench_body(i) for i in range(sizes.latency_events)]
    enqueued_at: dict[str, float] = {}
    try:
        async with (
            Outbox.from_url(url) as outbox,
            ETrustedClient(sandbox.client_config()) as client,
        ):
            watched = _WatchedClient(client, target=len(bodies) + 1)
            flusher = Flusher(
                outbox,
                watched,
                FlusherConfig(concurrency=config.concurrency, poll_interval=config.poll_interval),
            )
            run = asyncio.create_task(flusher.run())
            try:
                # One event first, so the token and the event-type list are fetched already.
                await outbox.enqueue(bench_body(10**8))
                for body in bodies:
                    await asyncio.sleep(sizes.latency_interval)
                    enqueued_at[body["transaction"]["reference"]] = time.time()
                    await outbox.enqueue(body)
                async with asyncio.timeout(120):
                    await watched.reached.wait()
            finally:
                flusher.stop()
                await run
            posted = {_reference(body): at for at, body in watched.started}
            latencies = [(posted[ref] - at) * 1000 for ref, at in enqueued_at.items()]
            logged = await _attempt_latencies(outbox, [default_key(b) for b in bodies])
    finally:
        await dbs.drop(url)
    p50 = percentile(latencies, 50)
    return Figure(
        id="latency_same_process",
        title="enqueue-to-POST latency, flusher in the same process",
        unit="ms",
        kit=p50,
        target="p50 <= 5 ms",
        met=p50 <= 5.0,
        details={
            **_latency_details(latencies),
            "rate_per_s": round(1 / sizes.latency_interval),
            "measured": "enqueue() called -> post_event_json() called",
            "attempt_log": _latency_details(logged),
        },
    )


async def _figure_latency_cross_process(
    config: BenchConfig,
    dbs: _Databases,
    workdir: Path,
    sandbox: _SandboxProcess,
    admin: ETrustedClient,
    session: aiohttp.ClientSession,
) -> Figure:
    sizes = config.effective_sizes
    await sandbox.reset(admin, session)
    url = dbs.new("latency_cross")
    bodies = [bench_body(i) for i in range(sizes.cross_events)]
    child = _Child("flush_cross", workdir)
    argv = [config.python, "-m", "kit", "flush", "--db", url]
    argv += ["--concurrency", str(config.concurrency), "--poll-interval", str(config.poll_interval)]
    try:
        async with Outbox.from_url(url) as outbox:
            await child.start(argv, _child_env(config, sandbox, url))
            # Wait for the child to deliver a first event: it is running and warmed up then.
            warm = await outbox.enqueue(bench_body(10**8))
            await _wait_delivered(outbox, [warm.key], child, timeout=60)
            for body in bodies:
                await asyncio.sleep(sizes.cross_interval)
                await outbox.enqueue(body)
            keys = [default_key(b) for b in bodies]
            await _wait_delivered(outbox, keys, child, timeout=60 + 2 * len(keys))
            latencies = await _attempt_latencies(outbox, keys)
    finally:
        await child.stop()
        await dbs.drop(url)
    mechanism = "LISTEN/NOTIFY wake-up" if config.postgres else "polling"
    return Figure(
        id="latency_cross_process",
        title="enqueue-to-POST latency, flusher in another process",
        unit="ms",
        kit=percentile(latencies, 50),
        target=(
            "none (woken by NOTIFY)"
            if config.postgres
            else f"none (bound: the {config.poll_interval:g} s poll)"
        ),
        met=None,
        details={
            **_latency_details(latencies),
            "rate_per_s": round(1 / sizes.cross_interval),
            "poll_interval_s": config.poll_interval,
            "wake_up": mechanism,
            "measured": "attempt log: first send started_at - created_at",
        },
    )


async def _wait_delivered(
    outbox: Outbox,
    keys: Sequence[str],
    child: _Child,
    timeout: float,  # noqa: ASYNC109 (a bound)
) -> None:
    async with asyncio.timeout(timeout):
        for key in keys:
            while (await outbox.get(key)).state is not State.DELIVERED:
                if child.proc is not None and child.proc.returncode is not None:
                    raise child.failed("exited while events were pending")
                await asyncio.sleep(0.02)


# -- figure 6: scale-out on PostgreSQL ------------------------------------------------------


async def _scale_run(
    config: BenchConfig,
    workdir: Path,
    sandbox: _SandboxProcess,
    url: str,
    processes: int,
    tag: str,
) -> float:
    children = [_FlusherChild(config, workdir, f"scale_{tag}_{i}") for i in range(processes)]
    spec = {
        "db": url,
        "client": sandbox.client_spec(),
        "concurrency": config.scale_concurrency,
        "poll_interval": config.poll_interval,
        "count": None,
    }
    try:
        await asyncio.gather(*(c.start(spec) for c in children))
        await asyncio.gather(*(c.go() for c in children))
        results = await asyncio.gather(*(c.result(timeout=600) for c in children))
    finally:
        await asyncio.gather(*(c.stop() for c in children))
    delivered = sum(r["delivered"] for r in results)
    span = max(r["ended_at"] for r in results) - min(r["started_at"] for r in results)
    logger.debug(
        "scale-out run: %d processes, %d delivered in %.2f s, CPU %.2f s",
        processes,
        delivered,
        span,
        sum(r["cpu_s"] for r in results),
        extra={"action": "bench_scale_run"},
    )
    return _rate(delivered, span)


async def _figure_scale_out(
    config: BenchConfig,
    dbs: _Databases,
    workdir: Path,
    admin_session: aiohttp.ClientSession,
) -> Figure:
    sizes = config.effective_sizes
    if not config.postgres:
        return Figure(
            id="scale_out",
            title="1 vs 4 flusher processes, 20 ms per POST",
            unit="events/s",
            target=">= 3x one flusher",
            skipped="PostgreSQL only (--db postgresql://...)",
        )
    sandbox = _SandboxProcess(config, workdir, "sandbox_late", faults=[LATE_ANSWER_FAULT])
    await sandbox.start()
    try:
        async with ETrustedClient(sandbox.client_config()) as admin:
            entries = [bench_entry(i) for i in range(sizes.scale_out)]

            async def run(processes: int, r: int) -> float:
                await sandbox.reset(admin, admin_session)
                url = dbs.new(f"scale{processes}")
                try:
                    async with Outbox.from_url(url) as outbox:
                        await outbox.enqueue_entries(entries, batch_size=5000)
                    return await _scale_run(config, workdir, sandbox, url, processes, f"{r}")
                finally:
                    await dbs.drop(url)

            async def four_processes(r: int) -> float:
                return await run(4, r)

            async def one_process(r: int) -> float:
                return await run(1, r)

            fours, ones = await _interleaved(sizes.scale_rounds, four_processes, one_process)
    finally:
        await sandbox.stop()
    four, one = statistics.median(fours), statistics.median(ones)
    return Figure(
        id="scale_out",
        title="4 flusher processes vs 1, sandbox answering 20 ms late",
        unit="events/s",
        kit=four,
        baseline=one,
        baseline_label="1 flusher process",
        target=">= 3x one flusher",
        met=four >= 3 * one,
        details={
            "events": sizes.scale_out,
            "concurrency_per_process": config.scale_concurrency,
            "fault": LATE_ANSWER_FAULT,
            "four_rounds": fours,
            "one_rounds": ones,
        },
    )


# -- running everything ---------------------------------------------------------------------


async def run_bench(
    config: BenchConfig, *, progress: Callable[[str], None] | None = None
) -> BenchReport:
    """Measure every figure; the report holds each one beside its baseline."""
    say = progress or (lambda _message: None)
    sizes = config.effective_sizes
    db = config.db
    if db is not None and "://" in db and not config.postgres and not db.startswith("sqlite:"):
        raise ConfigError(f"bench --db must be a SQLite path or postgresql://..., got {db!r}")
    machine = machine_info()
    started = time.perf_counter()
    parent = _scratch_parent(config)
    workdir = Path(tempfile.mkdtemp(prefix="etrusted-kit-bench-", dir=parent))
    dbs = _Databases(config, workdir)
    figures: dict[str, Figure] = {}
    sandbox = _SandboxProcess(config, workdir, "sandbox")
    try:
        say("1/6 enqueue, one per transaction")
        figures["enqueue_one"] = await _figure_enqueue_one(config, dbs)
        say("2/6 enqueue_many in batches of 1,000")
        figures["enqueue_bulk"] = await _figure_enqueue_bulk(config, dbs)
        await sandbox.start()
        async with (
            aiohttp.ClientSession() as session,
            ETrustedClient(sandbox.client_config()) as admin,
        ):
            say("3/6 delivery to the sandbox process")
            figures["delivery"] = await _figure_delivery(config, dbs, sandbox, admin, session)
            say("4/6 backlog scaling and flusher memory")
            rate, rss = await _figure_backlog(config, dbs, workdir, sandbox, admin, session, say)
            figures[rate.id], figures[rss.id] = rate, rss
            say("5/6 enqueue-to-POST latency")
            figures["latency_same_process"] = await _figure_latency_same_process(
                config, dbs, sandbox, admin, session
            )
            figures["latency_cross_process"] = await _figure_latency_cross_process(
                config, dbs, workdir, sandbox, admin, session
            )
            say("6/6 scale-out" + ("" if config.postgres else " (skipped: PostgreSQL only)"))
            figures["scale_out"] = await _figure_scale_out(config, dbs, workdir, session)
    finally:
        await sandbox.stop()
        await dbs.aclose()
        shutil.rmtree(workdir, ignore_errors=True)
    machine["loadavg_end"] = _loadavg()
    return BenchReport(
        backend="postgresql" if config.postgres else "sqlite",
        quick=config.quick,
        sizes=sizes,
        machine=machine,
        elapsed=time.perf_counter() - started,
        figures=tuple(figures[i] for i in FIGURE_IDS),
    )


def _scratch_parent(config: BenchConfig) -> str | None:
    """SQLite scratch files go next to ``--db`` when one is given (the disk under test)."""
    if config.db is None or config.postgres:
        return None
    path = config.db
    if path.startswith("sqlite:"):
        from kit.outbox.sqlite import sqlite_path_from_url

        path = sqlite_path_from_url(path)
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        raise ConfigError(f"the directory of --db {config.db!r} does not exist")
    return str(parent)


# -- the table ------------------------------------------------------------------------------


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:,.0f}/s"


def format_table(report: BenchReport) -> str:
    header = ("figure", "kit", "baseline", "ratio", "target", "met?")
    rows = [header]
    for f in report.figures:
        kit = _number(f.kit, f.unit)
        if f.unit == "ms" and "p99_ms" in f.details:
            kit = f"p50 {f.kit:.2f} / p99 {f.details['p99_ms']:.2f} ms"
        met = "skipped" if f.skipped else {True: "yes", False: "NO", None: "-"}[f.met]
        ratio = "-" if f.ratio is None else f"{f.ratio:.2f}x"
        rows.append((f.title, kit, _number(f.baseline, f.unit), ratio, f.target or "-", met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        f"etrusted-kit bench: {report.backend}{' (--quick)' if report.quick else ''},"
        f" {report.machine.get('cpus')} CPUs, Python {report.machine.get('python')},"
        f" load average {report.machine.get('loadavg_start')}, {report.elapsed:.0f} s",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows[1:]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for f in report.figures:
        if f.skipped:
            lines.append(f"  {f.id}: skipped, {f.skipped}")
        if f.details.get("note"):
            lines.append(f"  {f.id}: {f.details['note']}")
    return "\n".join(lines)


# -- the child flusher process (python -m kit.bench) ----------------------------------------


async def _child(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Run one flusher as ``etrusted-kit flush`` would; report rate and peak memory."""
    client_config = ClientConfig(
        client_id=SANDBOX_CLIENT_ID,
        client_secret=SANDBOX_CLIENT_SECRET,
        api_url=spec["client"]["api_url"],
        token_url=spec["client"]["token_url"],
    )
    count = spec.get("count")
    async with (
        Outbox.from_url(spec["db"]) as outbox,
        ETrustedClient(client_config) as client,
    ):
        watched = _WatchedClient(client, target=count, record=False)
        flusher = Flusher(
            outbox,
            watched,
            FlusherConfig(concurrency=spec["concurrency"], poll_interval=spec["poll_interval"]),
        )
        print(json.dumps({"ready": True}), flush=True)
        go = await asyncio.to_thread(sys.stdin.readline)
        if go.strip() != "go":
            return {"error": f"expected go, got {go!r}"}
        started_at = time.time()
        started = time.perf_counter()
        cpu = time.process_time()
        # Until idle in both modes: a backlog that runs dry ends the run instead of hanging it.
        run = asyncio.create_task(flusher.run(until_idle=True))
        if count is not None:
            reached = asyncio.create_task(watched.reached.wait())
            await asyncio.wait({run, reached}, return_when=asyncio.FIRST_COMPLETED)
            reached.cancel()
            flusher.stop()
        stats = await run
        ended = watched.reached_at if watched.reached_at is not None else time.perf_counter()
        cpu = time.process_time() - cpu
    elapsed = ended - started
    done = count if count is not None and watched.reached_at is not None else stats.delivered
    return {
        "delivered": stats.delivered,
        "counted": done,
        "elapsed": elapsed,
        "rate": _rate(done, elapsed),
        "started_at": started_at,
        "ended_at": started_at + elapsed,
        "cpu_s": cpu,
        "peak_rss_kb": peak_rss_kb(),
    }


def _child_main() -> None:
    spec = json.loads(sys.stdin.readline())
    result = asyncio.run(_child(spec))
    print(json.dumps(result), flush=True)


__all__ = [
    "FIGURE_IDS",
    "FULL",
    "QUICK",
    "BenchConfig",
    "BenchReport",
    "Figure",
    "Sizes",
    "bench_body",
    "bench_entry",
    "format_table",
    "machine_info",
    "peak_rss_kb",
    "percentile",
    "run_bench",
    "settle",
]

if __name__ == "__main__":
    _child_main()
