"""``etrusted-kit bench``: it runs to the end and reports every figure; no speed is asserted.

The quick runs start real child processes (the sandbox, flushers, ``etrusted-kit flush``) and use
real SQLite files or PostgreSQL schemas, so they also show that the harness cleans up after
itself.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest

from kit import jsonenc
from kit.bench import (
    FIGURE_IDS,
    FULL,
    BenchReport,
    Figure,
    bench_body,
    bench_entry,
    format_table,
    percentile,
)
from kit.bench.config import QUICK, BenchConfig
from kit.bench.databases import Databases
from kit.bench.delivery import figure_delivery
from kit.bench.payloads import EVENT_TYPE
from kit.bench.processes import SandboxProcess
from kit.cli import cli
from kit.client import ETrustedClient
from kit.errors import ValidationError
from kit.flusher import Flusher, FlusherConfig
from kit.models import EventAccepted
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.outbox.types import Claimed, State
from kit.testing import FakeDeliveryClient, Raise, Reply, WaitFor

RATE_FIGURES = {"enqueue_one", "enqueue_bulk", "delivery", "backlog_rate", "scale_out"}


def _check_report(data: dict[str, Any], *, backend: str) -> None:
    assert data["version"] == 1
    assert data["backend"] == backend
    assert data["quick"] is True
    assert data["sizes"]["backlog_large"] == 100_000
    assert data["machine"]["cpus"] >= 1
    assert data["machine"]["json_encoder"] == jsonenc.ENCODER
    figures = {f["id"]: f for f in data["figures"]}
    assert [f["id"] for f in data["figures"]] == list(FIGURE_IDS)
    for fid, f in figures.items():
        assert f["title"]
        assert f["target"], f"{fid} has no target"
        if f["skipped"]:
            assert f["kit"] is None
            assert f["met"] is None
            continue
        assert isinstance(f["kit"], int | float)
        assert f["kit"] > 0, fid
        if fid == "latency_cross_process":
            assert f["met"] is None
        else:
            assert isinstance(f["met"], bool), fid
        if fid in RATE_FIGURES:
            assert f["unit"] == "events/s"
            assert f["baseline"] > 0, fid
            assert f["baseline_label"]
            assert math.isclose(f["ratio"], f["kit"] / f["baseline"], rel_tol=0.01, abs_tol=0.002)
    for fid in ("latency_same_process", "latency_cross_process"):
        details = figures[fid]["details"]
        assert details["samples"] > 0
        assert 0 <= details["p50_ms"] <= details["p99_ms"] <= details["max_ms"]
    backlog = figures["backlog_rate"]["details"]
    assert backlog["backlog_large"] == 100_000
    assert "100k instead of 1M" in backlog["note"]
    assert figures["backlog_rss"]["unit"] == "MB"
    assert 5 < figures["backlog_rss"]["kit"] < 10_000  # a real process's RSS, in megabytes
    delivery = figures["delivery"]["details"]
    assert delivery["kit_cpu_us_per_event"] > 0
    assert delivery["baseline_cpu_us_per_event"] > 0
    _check_intake(figures["intake"], backend=backend)
    _check_backfill(figures["backfill"])


def _check_backfill(f: dict[str, Any]) -> None:
    """The backfill figure: every order read, the rate beside what the bucket allows, and the
    throttled share reported."""
    assert f["unit"] == "orders/s"
    assert f["skipped"] is None
    assert f["baseline"] > 0
    assert "allows" in f["baseline_label"]
    assert "throttled" in f["target"]
    assert isinstance(f["met"], bool)
    details = f["details"]
    assert details["orders"] == details["enqueued"] == QUICK.backfill
    assert 0 <= details["throttled_share"] <= 1
    assert details["requests"] >= details["pages"] > 1


def _check_intake(f: dict[str, Any], *, backend: str) -> None:
    """The intake figure: both sides measured, every webhook answered, answer times ordered."""
    assert f["unit"] == "webhooks/s"
    assert f["kit"] > 0
    assert f["baseline"] > 0
    assert math.isclose(f["ratio"], f["kit"] / f["baseline"], rel_tol=0.01, abs_tol=0.002)
    assert ("asyncpg" if backend == "postgresql" else "aiosqlite") in f["baseline_label"]
    assert "p99 <= 50 ms" in f["target"]
    assert isinstance(f["met"], bool)
    details = f["details"]
    assert details["webhooks"] == QUICK.intake
    assert details["senders"] == 16
    for side in ("kit", "baseline"):
        assert len(details[f"{side}_rounds"]) == QUICK.rounds
        assert (
            0 < details[f"{side}_p50_ms"] <= details[f"{side}_p99_ms"] <= details[f"{side}_max_ms"]
        )
        assert details[f"{side}_cpu_us_per_webhook"] > 0
    assert "p99" in details["note"]


async def test_quick_bench_reports_every_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bench.json"
    code = await cli(["bench", "--quick", "--db", str(tmp_path / "outbox.db"), "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    _check_report(data, backend="sqlite")
    figures = {f["id"]: f for f in data["figures"]}
    assert "PostgreSQL" in figures["scale_out"]["skipped"]
    assert figures["latency_cross_process"]["details"]["wake_up"] == "polling"
    table = capsys.readouterr().out
    for figure in data["figures"]:
        assert figure["title"] in table
    # Scratch files went next to --db, and are gone again; --db itself was never created.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


@pytest.mark.postgres
async def test_quick_bench_on_postgres(tmp_path: Path, pg_dsn: str, pg_schema: str) -> None:
    import asyncpg

    out = tmp_path / "bench.json"
    code = await cli(
        ["bench", "--quick", "--db", f"{pg_dsn}?schema={pg_schema}", "--json", str(out)]
    )
    assert code == 0
    data = json.loads(out.read_text())
    _check_report(data, backend="postgresql")
    figures = {f["id"]: f for f in data["figures"]}
    assert figures["scale_out"]["skipped"] is None
    assert figures["scale_out"]["details"]["concurrency_per_process"] >= 1
    assert figures["latency_cross_process"]["details"]["wake_up"] == "LISTEN/NOTIFY wake-up"
    conn = await asyncpg.connect(pg_dsn)
    try:
        left = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", pg_schema + "%"
        )
    finally:
        await conn.close()
    assert [r["nspname"] for r in left] == []  # every scratch schema was dropped


async def test_bench_intake_measures_only_the_intake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bench intake`` runs the intake figure alone (no sandbox, no other figure) and cleans
    up its scratch databases; each round checked that every 2xx left its row behind."""
    out = tmp_path / "bench.json"
    args = ["bench", "intake", "--quick", "--db", str(tmp_path / "outbox.db"), "--json", str(out)]
    assert await cli(args) == 0
    data = json.loads(out.read_text())
    assert [f["id"] for f in data["figures"]] == ["intake"]
    _check_intake(data["figures"][0], backend="sqlite")
    captured = capsys.readouterr()
    assert "signed Shopify webhooks through the intake" in captured.out
    assert "1/1 signed Shopify webhooks" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json"]


@pytest.mark.postgres
async def test_bench_intake_on_postgres(tmp_path: Path, pg_dsn: str, pg_schema: str) -> None:
    out = tmp_path / "bench.json"
    args = ["bench", "intake", "--quick", "--db", f"{pg_dsn}?schema={pg_schema}", "--json"]
    assert await cli([*args, str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["backend"] == "postgresql"
    _check_intake(data["figures"][0], backend="postgresql")


async def test_bench_refuses_an_unknown_figure_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        await cli(["bench", "nosuch"])
    assert exited.value.code == 2
    assert "invalid choice: 'nosuch'" in capsys.readouterr().err


async def test_the_bench_account_is_set_up_as_the_readme_says(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The bench's sandbox has its event type with invites switched on, as the README has users
    set up their account, so a bench run measures delivery without warning about invites."""
    sizes = attrs.evolve(QUICK, delivery=20, rounds=1)
    config = BenchConfig(quick=True, sizes=sizes, environ=dict(os.environ))
    dbs = Databases(config, tmp_path)
    sandbox = SandboxProcess(config, tmp_path, "sandbox")
    caplog.set_level(logging.INFO)
    try:
        await sandbox.start()
        async with (
            aiohttp.ClientSession() as session,
            ETrustedClient(sandbox.client_config()) as admin,
        ):
            figure = await figure_delivery(config, dbs, sandbox, admin, session)
            event_type = await admin.find_event_type(EVENT_TYPE)
            assert event_type is not None
            settings = await admin.list_invite_settings(event_type_id=event_type.id)
    finally:
        await sandbox.stop()
        await dbs.aclose()
    invites_off = [
        r
        for r in caplog.records
        if getattr(r, "action", None) == "invites_off" or "invites are switched off" in r.message
    ]
    assert invites_off == []
    assert figure.details["events"] == 20
    assert event_type.active
    assert settings
    assert all(s.enabled for s in settings)


def test_backlog_entries_are_what_the_outbox_would_store() -> None:
    """The million-entry backlog is built from a template; it must equal the real thing."""
    outbox = Outbox.from_url(":memory:")  # prepare() does no I/O
    for i in (0, 1, 7, 123_456_789):
        assert bench_entry(i) == outbox.prepare(bench_body(i))
    sizes = [len(bench_entry(i).payload.encode()) for i in range(10)]
    assert all(850 <= n <= 1100 for n in sizes), sizes  # "about 1 KB"


def test_prepare_refuses_a_body_json_cannot_encode() -> None:
    outbox = Outbox.from_url(":memory:")
    body = bench_body(1)
    body["extra"] = datetime.datetime.now(datetime.UTC)  # not checked by the rules, not JSON
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        outbox.prepare(body)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([5.0, 1.0], 50) == 1.0


def test_table_shows_ratio_target_and_verdict() -> None:
    report = BenchReport(
        backend="sqlite",
        quick=False,
        sizes=FULL,
        machine={
            "cpus": 2,
            "python": "3.11",
            "json_encoder": "orjson 3.10.0",
            "loadavg_start": [0.5, 0.5, 0.5],
        },
        elapsed=12.0,
        figures=(
            Figure(
                id="enqueue_one",
                title="enqueue one",
                unit="events/s",
                kit=800.0,
                baseline=1000.0,
                baseline_label="raw",
                target=">= 0.8x baseline",
                met=True,
            ),
            Figure(id="scale_out", title="scale", unit="events/s", target="x", skipped="PG only"),
        ),
    )
    table = format_table(report)
    assert "800/s" in table
    assert "1,000/s" in table
    assert "0.80x" in table
    assert "yes" in table
    assert "scale_out: skipped, PG only" in table
    assert "JSON encoder orjson 3.10.0" in table
    assert report.to_json()["figures"][0]["ratio"] == 0.8


class _WriterRacesIdleStorage(InMemoryStorage):
    """Holds the first result write until the feeder has seen every POST done but one result
    still unwritten: the moment a feeder went to sleep for a whole poll interval."""

    def __init__(self) -> None:
        super().__init__()
        self.first_write_started = asyncio.Event()
        self.posts_done = asyncio.Event()
        self.feeder_saw_it = asyncio.Event()
        self.writes = 0

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, now: float
    ) -> list[Claimed]:
        claimed = await super().claim(
            owner=owner, limit=limit, lease_seconds=lease_seconds, now=now
        )
        if not claimed and self.posts_done.is_set():
            # Runs after the feeder has looked at its queues and gone back to waiting.
            asyncio.get_running_loop().call_soon(self.feeder_saw_it.set)
        return claimed

    async def finish(self, completions: Any, *, now: float) -> list[bool]:
        self.writes += 1
        if self.writes == 1:
            self.first_write_started.set()
            await self.feeder_saw_it.wait()
        return await super().finish(completions, now=now)


class _SecondPostWaitsForTheWriter(FakeDeliveryClient):
    """The second POST is answered once the first result write has started, and says so."""

    def __init__(self, storage: _WriterRacesIdleStorage) -> None:
        super().__init__(lookup_answer=Raise(AssertionError("nothing is in doubt here")))
        self.answer_posts(Reply(), WaitFor(storage.first_write_started))
        self._storage = storage

    async def post_event_json(self, body: bytes | str) -> EventAccepted:
        accepted = await super().post_event_json(body)
        if len(self.posts) == 2:
            self._storage.posts_done.set()
        return accepted


async def test_run_once_returns_when_the_last_result_is_written_not_a_poll_later() -> None:
    """``flush --once`` returns as soon as the last result is written, never a poll interval
    later, also when the writer finishes while the feeder checks whether it is idle."""
    storage = _WriterRacesIdleStorage()
    outbox = Outbox(storage)
    for i in range(2):
        await outbox.enqueue(bench_body(i))
    config = FlusherConfig(concurrency=2, poll_interval=60.0, check_event_types=False)
    flusher = Flusher(outbox, _SecondPostWaitsForTheWriter(storage), config)
    stats = await asyncio.wait_for(flusher.run_once(), timeout=10)  # a poll would take 60 s
    assert stats.delivered == 2
    assert storage.feeder_saw_it.is_set()  # the race really happened
    entries = await outbox.entries()
    assert [e.state for e in entries] == [State.DELIVERED, State.DELIVERED]


async def test_budget_splits_the_kit_cost_per_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "budget.json"
    code = await cli(["bench", "--budget", "--quick", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    parts = {p["name"]: p for p in data["parts"]}
    assert set(parts) == {
        "validate",
        "encode",
        "e-mail and payload hashes",
        "Outbox.prepare (all of the above)",
        "SQLite insert of the kit row",
        "SQLite insert of a raw (key, payload) row",
        "Outbox.enqueue_entries (prepared)",
        "enqueue_many at best: prepare + write",
        "flusher + outbox, no HTTP: whole process",
        "  of it on the event loop's thread",
        "  of it on the outbox's worker thread (SQLite)",
        "verify (HMAC-SHA256)",
        "parse (order to domain events)",
        "Intake.ingest_raw, no HTTP: whole process",
        "bare handler's storage: one autocommit INSERT",
    }
    assert all(p["us_per_event"] >= 0 for p in data["parts"])
    by_path: dict[str, dict[str, float]] = {}
    for p in data["parts"]:
        by_path.setdefault(p["path"], {})[p["name"]] = p["us_per_event"]
    assert set(by_path) == {"enqueue", "delivery", "intake"}
    intake = by_path["intake"]
    assert intake["verify (HMAC-SHA256)"] > 0
    assert intake["parse (order to domain events)"] > 0
    assert intake["bare handler's storage: one autocommit INSERT"] > 0
    # The ingest's split adds up: what ran on the loop's thread, and the rest.
    ingest = intake["Intake.ingest_raw, no HTTP: whole process"]
    assert 0 < intake["  of it on the event loop's thread"] <= ingest
    assert intake["  of it on the event loop's thread"] + intake[
        "  of it on the outbox's worker thread (SQLite)"
    ] == pytest.approx(ingest)
    assert parts["validate"]["us_per_event"] > 0
    prepare = parts["Outbox.prepare (all of the above)"]["us_per_event"]
    write = parts["Outbox.enqueue_entries (prepared)"]["us_per_event"]
    best = parts["enqueue_many at best: prepare + write"]
    assert best["us_per_event"] == pytest.approx(prepare + write)
    assert f"{1e6 / (prepare + write):,.0f} events/s" in best["note"]
    delivery = by_path["delivery"]
    whole = delivery["flusher + outbox, no HTTP: whole process"]
    assert 0 < delivery["  of it on the event loop's thread"] <= whole
    table = capsys.readouterr().out
    assert "enqueue_many at best" in table
    assert "µs/event" in table


async def test_budget_refuses_a_database_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli(["bench", "--budget", "--db", "postgresql://x@127.0.0.1/test"]) == 1
    assert "--budget measures SQLite in a temporary directory" in capsys.readouterr().err
