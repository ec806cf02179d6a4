"""kit.metrics for an embedder without HTTP, and the readiness checks on their own."""

from __future__ import annotations

from pathlib import Path
from random import Random

import prometheus_client
from builders import event
from prometheus_client import CollectorRegistry

from kit.admin import readiness
from kit.admin.health import database
from kit.flusher import FlusherConfig
from kit.flusher.decisions import classify_post
from kit.metrics import Metrics
from kit.outbox import Outbox
from kit.outbox.types import AttemptKind

T = 1_760_000_000.0


def test_metrics_go_to_the_registry_handed_in_never_the_global_one() -> None:
    """An application's registry gets the kit's metrics; the process-wide default registry
    gets none, and two Metrics objects live side by side without clashing."""
    mine = CollectorRegistry()
    Metrics(mine, sources=["shop"])
    Metrics(sources=["shop"])
    names = {family.name for family in mine.collect()}
    assert "etrusted_kit_webhooks" in names
    assert "etrusted_kit_entries" in names
    assert not any(
        family.name.startswith("etrusted_kit") for family in prometheus_client.REGISTRY.collect()
    )


async def test_snapshot_reads_the_outbox_figures_without_http(tmp_path: Path) -> None:
    """After refresh(), snapshot() has the outbox's entries by state and the outbox marked
    readable; before any refresh the outbox counts as not read."""
    metrics = Metrics(sources=["shop"])
    assert metrics.snapshot()["etrusted_kit_outbox_up"] == 0
    async with Outbox.from_url(f"sqlite:///{tmp_path / 'o.db'}") as outbox:
        await outbox.enqueue(event("order-1"))
        await outbox.enqueue(event("order-2"))
        metrics.watch(outbox=outbox)
        assert await metrics.refresh() is True
    snapshot = metrics.snapshot()
    assert snapshot['etrusted_kit_entries{state="pending"}'] == 2
    assert snapshot['etrusted_kit_entries{state="delivered"}'] == 0
    assert snapshot["etrusted_kit_outbox_up"] == 1
    assert snapshot["etrusted_kit_backing_off_entries"] == 0
    assert snapshot["etrusted_kit_flusher_running"] == 0


async def test_an_unreachable_database_fails_readiness(tmp_path: Path) -> None:
    """A database that cannot be queried fails the database check by name (and so
    readiness), and a scrape reports the outbox unreadable instead of failing."""
    outbox = Outbox.from_url(f"sqlite:///{tmp_path / 'o.db'}")
    await outbox.open()
    await outbox.aclose()  # gone: every query now fails
    check = await database(outbox)
    assert check.ok is False
    assert check.detail.startswith("unreachable")
    ready = await readiness(outbox, None, lambda: True)
    assert ready.ready is False
    assert ready.as_dict()["checks"]["flusher"] == {"ok": False, "detail": "not running"}
    metrics = Metrics()
    metrics.watch(outbox=outbox)
    assert await metrics.refresh() is False
    assert metrics.snapshot()["etrusted_kit_outbox_up"] == 0


async def test_delivery_latency_runs_from_enqueue_to_the_accepting_answer(tmp_path: Path) -> None:
    """An entry enqueued, claimed a minute later and accepted: the latency observed is the
    whole minute and more, not the moment between its claim and the answer."""
    metrics = Metrics(sources=["shop"])
    async with Outbox.from_url(f"sqlite:///{tmp_path / 'o.db'}") as outbox:
        await outbox.storage.enqueue([outbox.prepare(event("order-1"))], now=T)
        (item,) = await outbox.storage.claim(now=T + 60, owner="f", lease_seconds=30, limit=1)
    assert item.created_at == T
    decision = classify_post(item, "evt-1", now=T + 61, config=FlusherConfig(), rng=Random(1))
    metrics.decided(item, decision, AttemptKind.SEND, T + 61)
    snapshot = metrics.snapshot()
    assert snapshot["etrusted_kit_delivery_latency_seconds_count"] == 1
    assert snapshot["etrusted_kit_delivery_latency_seconds_sum"] == 61.0
