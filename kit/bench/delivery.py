"""Figure 3: the flusher delivering to the sandbox process, beside a bare aiohttp POST loop."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Sequence

import aiohttp

from kit.bench.config import BenchConfig
from kit.bench.databases import Databases
from kit.bench.measure import interleaved, per_second, settle
from kit.bench.payloads import bench_entry
from kit.bench.processes import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, SandboxProcess
from kit.bench.report import Figure
from kit.client import ETrustedClient
from kit.errors import KitError, NetworkError
from kit.flusher import Flusher, FlusherConfig
from kit.outbox import Outbox
from kit.outbox.types import NewEntry


async def _fetch_token(session: aiohttp.ClientSession, sandbox: SandboxProcess) -> str:
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
    sandbox: SandboxProcess, payloads: Sequence[bytes], concurrency: int
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
            return per_second(len(payloads), elapsed), cpu / len(payloads) * 1e6
    except aiohttp.ClientError as exc:
        raise NetworkError(f"baseline delivery failed: {exc}") from exc


async def _kit_delivery(
    url: str, sandbox: SandboxProcess, entries: Sequence[NewEntry], concurrency: int
) -> tuple[float, float]:
    """Rate and CPU microseconds per event of this process (the outbox's thread included)."""
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
        return per_second(stats.delivered, elapsed), cpu / len(entries) * 1e6


async def figure_delivery(
    config: BenchConfig,
    dbs: Databases,
    sandbox: SandboxProcess,
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

    kits, bases = await interleaved(sizes.rounds, kit, baseline)
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
