"""The quick-start demo: realistic events -> SQLite outbox -> flusher -> the bundled sandbox.

Signed sample Shopify webhooks go through the real intake over HTTP first
(:mod:`kit.demo_webhooks`), so the outbox holds what an adapter made beside what was enqueued
directly, and the summary says what each webhook became.

The sandbox runs in-process with faults switched on (5xx, 503, 429, connections dropped after
and before the event was accepted, answers later than the client waits, and every token expiring
soon after the start), so the run walks every path of the delivery state machine. It ends by
checking against the sandbox's own records that each delivered event was accepted exactly once.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from kit.client import ETrustedClient
from kit.demo_webhooks import WebhookOutcome, send_demo_webhooks, webhook_keys
from kit.errors import ConfigError, ValidationError
from kit.flusher import Flusher, FlusherConfig, FlusherStats
from kit.outbox import Outbox
from kit.outbox.types import State
from kit.retry import Backoff
from kit.sandbox import SEEDED_CHANNEL_IDS, Fault, FaultKind, Sandbox, SandboxConfig, SandboxServer

FIRST = ["anna", "ben", "carla", "deniz", "emil", "fatma", "greta", "hugo", "ines", "jonas"]
LAST = ["schmidt", "meyer", "weber", "wagner", "becker", "hoffmann", "koch", "richter"]
PRODUCTS = [
    ("Merino Sweater Navy M", "MS-NV-M", "4006381333931"),
    ("Trail Runner 42", "TR-42-BK", "4006381333948"),
    ("Ceramic Mug Sand", "CM-SD-01", "4006381333955"),
    ("Linen Shirt White L", "LS-WH-L", "4006381333962"),
]


@attrs.frozen(kw_only=True)
class DemoReport:
    db: str
    enqueued: int
    duplicates: int
    invalid: list[str]
    counts: dict[str, int]
    stats: FlusherStats
    dead_reasons: list[tuple[str, str]]
    elapsed: float
    sandbox_accepted: int
    exactly_once: bool
    mismatches: list[str]
    faults: list[str]
    webhooks: list[WebhookOutcome]
    webhook_states: dict[str, str]  # each webhook entry's state after the flush, by key


def make_events(count: int, rng: random.Random, types: list[str]) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    events = []
    for i in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        name, sku, gtin = rng.choice(PRODUCTS)
        events.append(
            {
                "type": types[i % len(types)],
                "defaultLocale": rng.choice(["de_DE", "en_GB"]),
                "customer": {
                    "firstName": first.title(),
                    "lastName": last.title(),
                    "email": f"{first}.{last}.{i}@example.com",
                },
                "channel": {"id": SEEDED_CHANNEL_IDS[i % len(SEEDED_CHANNEL_IDS)]},
                "transaction": {
                    "reference": f"order-{100000 + i}",
                    "date": (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                },
                "estimatedDeliveryDate": (now + timedelta(days=2)).strftime("%Y-%m-%d"),
                "products": [
                    {
                        "name": name,
                        "sku": sku,
                        "gtin": gtin,
                        "url": f"https://shop.example.com/p/{sku.lower()}",
                    }
                ],
                "system": "etrusted-kit-demo",
                "systemVersion": "0.1.0",
                "metadata": {"source": "demo", "batch": "quickstart"},
            }
        )
    return events


DEMO_FAULTS = [
    Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=503, probability=0.06),
    Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=500, probability=0.03),
    Fault(kind=FaultKind.RATE_LIMIT, method="POST", path="/events", retry_after=0.3, times=3),
    Fault(kind=FaultKind.RATE_LIMIT, method="POST", path="/events", times=2),
    Fault(kind=FaultKind.DROP_AFTER_ACCEPT, method="POST", path="/events", probability=0.03),
    Fault(kind=FaultKind.DROP_BEFORE_ACCEPT, method="POST", path="/events", times=3),
    Fault(kind=FaultKind.LATE_ANSWER, method="POST", path="/events", delay=1.5, times=2),
]

DEMO_FLUSHER = FlusherConfig(
    concurrency=8,
    lease_seconds=30.0,
    poll_interval=0.2,
    max_sends=8,
    backoff=Backoff(base=0.05, cap=1.0),
    reconcile_delay=0.1,
    reconcile_interval=0.3,
    reconcile_window=1.5,
    auth_pause=0.5,
    pace_default=0.2,
    grace_period=5.0,
)


async def run_demo(
    *, events: int = 300, db: str | None = None, seed: int = 7, limit: float = 120.0
) -> DemoReport:
    rng = random.Random(seed)
    sandbox = Sandbox(SandboxConfig(seed=seed))
    with tempfile.TemporaryDirectory(prefix="etrusted-kit-demo-") as tmp:
        db_url = db or str(Path(tmp) / "outbox.db")
        async with SandboxServer(sandbox) as server:
            config = server.client_config(request_timeout=1.0)
            async with ETrustedClient(config) as client, Outbox.from_url(db_url) as outbox:
                held = sum((await outbox.stats()).counts.values())
                if held:
                    # Its entries were delivered to another (gone) sandbox: the exactly-once
                    # check could only report them as never accepted.
                    raise ConfigError(
                        f"the demo needs an empty outbox, and {db_url} already holds {held}"
                        " entries (an earlier demo?): remove it or pass another --db"
                    )
                for name in ("order_shipped", "subscription_renewed", "legacy_survey"):
                    await client.create_event_type(name, active=True)
                legacy = await client.find_event_type("legacy_survey")
                assert legacy is not None
                body = make_events(events, rng, ["order_shipped", "subscription_renewed"])
                # A few realistic problems: a webhook delivered twice, two broken events, and
                # events for a touchpoint someone switched off in eTrusted after they were made.
                poison = make_events(3, rng, ["legacy_survey"])
                for i, event in enumerate(poison):
                    event["transaction"]["reference"] = f"legacy-{i}"
                broken = make_events(2, rng, ["order_shipped"])
                broken[0]["customer"]["email"] = "not-an-email"
                del broken[1]["products"][0]["url"]
                batch = body + body[:5] + poison
                invalid = []
                for i, event in enumerate(broken):
                    try:
                        outbox.prepare(event)
                    except ValidationError as exc:
                        invalid.append(f"broken event {i}: {exc}")
                results = await outbox.enqueue_many(batch)
                webhooks = await send_demo_webhooks(outbox, SEEDED_CHANNEL_IDS[0])
                await client.set_event_type_active(legacy.id, False)

                for fault in DEMO_FAULTS:
                    sandbox.add_fault(fault)
                flusher = Flusher(outbox, client, DEMO_FLUSHER, rng=rng)
                started = time.perf_counter()
                run = asyncio.create_task(flusher.run(until_drained=True))
                # Soon after the start, every token the kit holds stops working.
                expiry = asyncio.get_running_loop().call_later(0.3, sandbox.expire_tokens)
                try:
                    stats = await asyncio.wait_for(run, limit)
                except TimeoutError:
                    flusher.stop()
                    stats = flusher.stats
                expiry.cancel()
                elapsed = time.perf_counter() - started
                report = await _verify(outbox, sandbox)
                out = await outbox.stats()
                dead = [
                    (e.key, e.last_error or "")
                    for e in await outbox.entries(state=State.DEAD, limit=50)
                ]
                found = [await outbox.storage.get(key) for key in webhook_keys(webhooks)]
                webhook_states = {e.key: e.state.value for e in found if e is not None}
            return DemoReport(
                db=db_url if db else "(temporary) " + db_url,
                enqueued=sum(1 for r in results if not r.duplicate),
                duplicates=sum(1 for r in results if r.duplicate),
                invalid=invalid,
                counts={s.value: out.counts.get(s, 0) for s in State},
                stats=stats,
                dead_reasons=dead,
                elapsed=elapsed,
                sandbox_accepted=len(sandbox.accepted_events()),
                exactly_once=not report,
                mismatches=report,
                faults=[
                    f"{f.kind.value} {f.status if f.kind == 'status' else ''}".strip()
                    for f in DEMO_FAULTS
                ],
                webhooks=webhooks,
                webhook_states=webhook_states,
            )


async def _verify(outbox: Outbox, sandbox: Sandbox) -> list[str]:
    """Compare the outbox's refs with what the sandbox really accepted."""
    accepted = Counter(
        (e.channel_id, e.type, e.transaction_reference) for e in sandbox.accepted_events()
    )
    refs = {e.event_ref for e in sandbox.accepted_events()}
    problems = []
    after = 0
    while page := await outbox.entries(limit=1000, after_id=after):
        after = page[-1].id
        for entry in page:
            n = accepted.get((entry.channel_id, entry.event_type, entry.transaction_reference), 0)
            if entry.state is State.DELIVERED:
                if n != 1:
                    problems.append(f"{entry.key}: accepted {n} times by eTrusted")
                if entry.event_ref not in refs:
                    problems.append(f"{entry.key}: recorded ref {entry.event_ref} unknown")
            elif n:
                problems.append(f"{entry.key}: {entry.state.value} but accepted {n} times")
    return problems
