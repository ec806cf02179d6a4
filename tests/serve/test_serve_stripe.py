"""``etrusted-kit serve`` with a Stripe source: a signed renewal in over HTTP, one
``subscription_renewed`` event out to eTrusted (the sandbox), accepted."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from journal.deliveries import CHANNEL

from adapters.stripe import samples
from kit.journal import journal_for
from kit.outbox import Outbox, State
from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import running_sandbox

from .serve_helpers import serve_env, serving, stop, wait_until, write_config

SECRET = "whsec_kit_test_secret_do_not_use"
VARIABLE = "STRIPE_WEBHOOK_SECRET"
ROUTE = "/webhooks/billing"
STRIPE_SOURCE = f"""
[[sources]]
name = "billing"
adapter = "stripe"
webhook_secrets = [{{ env = "{VARIABLE}" }}]
channel_id = "{CHANNEL}"
tolerance = "5m"

[[sources.triggers]]
on = "subscription_renewed"
event_type = "subscription_renewed"
renewals = "first"
per_customer = "90d"
delay = "0s"
"""


@pytest.fixture
async def renewals_sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(event_types=("subscription_renewed",))) as server:
        yield server


async def test_a_signed_stripe_renewal_reaches_the_sandbox_once(
    tmp_path: Path, renewals_sandbox: SandboxServer, db: str
) -> None:
    """The first renewal of a subscription, signed as Stripe signs it now, is stored, answered
    200 and sent by serve's flusher; the sandbox accepts exactly one event for its invoice.
    The second renewal is journaled and skipped (first renewal only)."""
    config = write_config(
        tmp_path / "billing.toml", db=db, sandbox=renewals_sandbox, sources=STRIPE_SOURCE
    )
    now = int(time.time())
    first = samples.invoice_paid(
        event_id="evt_e2e_1", invoice_id="in_e2e_1", number="E2E-0001", paid_at=now - 60
    )
    second = samples.invoice_paid(
        event_id="evt_e2e_2", invoice_id="in_e2e_2", number="E2E-0002", paid_at=now - 30
    )
    env = serve_env(**{VARIABLE: SECRET})
    async with (
        serving(config, env=env, stderr_path=tmp_path / "serve.err") as served,
        aiohttp.ClientSession() as session,
    ):
        assert served.routes == f"POST {ROUTE} (billing, stripe)"
        replies = []
        for event in (first, second, first):
            headers, raw = samples.signed_delivery(event, secret=SECRET, timestamp=int(time.time()))
            async with session.post(served.url + ROUTE, data=raw, headers=headers) as resp:
                replies.append((resp.status, json.loads(await resp.text())))
        assert replies == [
            (200, {"status": "accepted", "delivery_id": "evt_e2e_1"}),
            (200, {"status": "accepted", "delivery_id": "evt_e2e_2"}),
            (200, {"status": "duplicate", "delivery_id": "evt_e2e_1"}),
        ]

        async def delivered() -> bool:
            async with Outbox.from_url(db) as outbox:
                return (await outbox.stats()).counts[State.DELIVERED] == 1

        await wait_until(delivered)
        assert await stop(served) == 0

    accepted = [
        e for e in renewals_sandbox.sandbox.accepted_events() if e.type == "subscription_renewed"
    ]
    assert [e.transaction_reference for e in accepted] == ["E2E-0001"]
    async with Outbox.from_url(db) as outbox:
        (entry,) = await outbox.entries()
        assert entry.key == "stripe:billing:in_e2e_1:subscription_renewed"
        assert entry.event_ref == accepted[0].event_ref
        journal = journal_for(outbox)
        skipped = await journal.history("billing", "in_e2e_2")
        assert [(d.kind, d.outcome.value) for d in skipped.decisions] == [("skipped", "recorded")]
