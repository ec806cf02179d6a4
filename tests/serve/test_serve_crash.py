"""Crash test of ``serve``: SIGKILLed while webhooks arrive from concurrent senders, restarted.

Senders post signed Shopify fulfilments the way Shopify does: a delivery that got no answer
(the connection refused or dropped by the kill) is sent again, with the same webhook id, once
serve is back. Serve is killed with SIGKILL at random points of the traffic, round after round,
and restarted on the same outbox. Afterwards every delivery has been answered 200, and each
order is in the outbox exactly once and in the journal exactly once, whether its first answer
was lost or not; and the flusher, killed along with it, delivered each to eTrusted once.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path

import aiohttp
import attrs
import pytest

from kit.outbox import Outbox, State
from kit.sandbox import SandboxServer

from .serve_helpers import (
    ServeProcess,
    fulfilment,
    histories,
    key_of,
    post,
    serve_env,
    wait_until,
    write_config,
)

pytestmark = pytest.mark.crash

ANSWER_TIMEOUT = 10.0  # a live serve answers in milliseconds; only a killed one stays silent


@attrs.define
class Harness:
    """The serve process of the moment, and what the senders saw."""

    config: Path
    stderr: Path
    served: ServeProcess | None = None
    generation: int = 0  # how many times serve was started
    restarted: asyncio.Condition = attrs.Factory(asyncio.Condition)
    answers: dict[str, str] = attrs.Factory(dict)  # webhook id -> "accepted" / "duplicate"
    unanswered: int = 0  # attempts that got no answer, each sent again

    async def start(self) -> None:
        served = await ServeProcess.start(self.config, env=serve_env(), stderr_path=self.stderr)
        async with self.restarted:
            self.served = served
            self.generation += 1
            self.restarted.notify_all()

    async def kill(self) -> None:
        assert self.served is not None
        self.served.send_signal(signal.SIGKILL)
        assert await self.served.wait() == -signal.SIGKILL

    async def send(self, session: aiohttp.ClientSession, order_id: str) -> None:
        """Post one delivery until it is answered, as the platform retries it."""
        delivery = fulfilment(order_id)
        while True:
            assert self.served is not None
            generation, url = self.generation, self.served.url
            try:
                async with asyncio.timeout(ANSWER_TIMEOUT):
                    status, body = await post(session, url, delivery)
            except (aiohttp.ClientError, TimeoutError):
                self.unanswered += 1
                async with self.restarted:  # this serve is gone: wait for the next one
                    await self.restarted.wait_for(lambda g=generation: self.generation > g)
                continue
            assert status == 200, (status, body)
            self.answers[body["delivery_id"]] = body["status"]
            return


async def run_serve_crash(
    tmp_path: Path,
    sandbox: SandboxServer,
    db: str,
    *,
    senders: int,
    per_sender: int,
    kills: int,
    seed: int,
) -> None:
    rng = random.Random(seed)
    harness = Harness(
        write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox), tmp_path / "err"
    )
    orders = [[f"{7000000 + s * 100000 + i}" for i in range(per_sender)] for s in range(senders)]
    every = [oid for batch in orders for oid in batch]
    await harness.start()
    try:
        connector = aiohttp.TCPConnector(limit=senders)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def sender(batch: list[str]) -> None:
                for oid in batch:
                    await harness.send(session, oid)

            tasks = [asyncio.create_task(sender(batch)) for batch in orders]
            killed = 0
            for _ in range(kills):
                # Kill at a random point of the traffic: while requests are being read,
                # journaled, committed or answered.
                target = len(harness.answers) + rng.randint(1, max(2, len(every) // kills))

                async def progressed(target: int = target) -> bool:
                    return len(harness.answers) >= target or all(t.done() for t in tasks)

                await wait_until(progressed, timeout=60)
                if all(t.done() for t in tasks):
                    break
                await harness.kill()
                killed += 1
                await harness.start()
            async with asyncio.timeout(120):
                await asyncio.gather(*tasks)

        assert killed > 0
        assert harness.unanswered > 0, "no kill landed while deliveries were being sent"
        assert sorted(harness.answers) == sorted(f"w-{oid}" for oid in every)
        assert set(harness.answers.values()) <= {"accepted", "duplicate"}

        async def all_delivered() -> bool:
            async with Outbox.from_url(db) as outbox:
                return (await outbox.stats()).counts[State.DELIVERED] == len(every)

        await wait_until(all_delivered, timeout=120, every=0.1)
    finally:
        if harness.served is not None and harness.served.running:
            harness.served.send_signal(signal.SIGTERM)
            assert await harness.served.wait() == 0, harness.served.stderr

    async with Outbox.from_url(db) as outbox:
        entries = await outbox.entries(limit=len(every) + 10)
    assert sorted(e.key for e in entries) == sorted(key_of(oid) for oid in every)
    for oid, history in (await histories(db, every)).items():
        assert [(row.kind, row.event and row.event.delivery_id) for row in history.events] == [
            ("order_fulfilled", f"w-{oid}")
        ], oid
        assert [(d.kind, d.outcome) for d in history.decisions] == [("enqueue", "enqueued")], oid
    per_reference = Counter(e.transaction_reference for e in sandbox.sandbox.accepted_events())
    assert per_reference == Counter({f"#{oid}": 1 for oid in every})


async def test_sigkilled_serve_loses_and_doubles_no_delivery(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """Two kills among four senders: every 2xx stays stored once, every lost answer is
    retried into exactly one entry."""
    await run_serve_crash(tmp_path, sandbox, db, senders=4, per_sender=20, kills=2, seed=1)


@pytest.mark.soak
async def test_soak_sigkilled_serve_many_times(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """The same promise under sixteen senders and twenty-five kills."""
    await run_serve_crash(tmp_path, sandbox, db, senders=16, per_sender=150, kills=25, seed=2)


@pytest.mark.postgres
async def test_sigkilled_serve_on_postgres(
    tmp_path: Path, sandbox: SandboxServer, pg_dsn: str, pg_schema: str
) -> None:
    """The same promise with the outbox and journal on PostgreSQL."""
    db = f"{pg_dsn}?schema={pg_schema}"
    await run_serve_crash(tmp_path, sandbox, db, senders=4, per_sender=20, kills=2, seed=3)
