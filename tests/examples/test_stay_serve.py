"""The Staybook example end to end: ``etrusted-kit serve`` with the example's own source table,
the package installed by entry point only, a signed ``stay.completed`` in, one invite out."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from serve.serve_helpers import histories, serve_env, serving, stop, wait_until, write_config

from kit.domain import SkipReason
from kit.outbox import Outbox, State
from kit.policy import Skipped
from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import SignedDelivery, running_sandbox

from .conftest import STAY

SOURCE = "harbour-hotel"


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(event_types=("stay_completed",))) as server:
        yield server


async def post(session: aiohttp.ClientSession, url: str, delivery: SignedDelivery) -> int:
    async with session.post(url, data=delivery.raw_body, headers=delivery.headers) as resp:
        return resp.status


@pytest.mark.usefixtures("stay_installed")
async def test_a_completed_stay_reaches_etrusted_through_serve(
    tmp_path: Path, sandbox: SandboxServer, stay_paths: tuple[str, ...]
) -> None:
    """A forged delivery is refused 401 and stores nothing; the signed one is journaled and
    sent once (its retry is a duplicate); a portal booking is skipped by the source's
    exclusion; eTrusted gets one ``stay_completed`` for the booking."""
    from stay_adapter.samples import SAMPLE_SECRET, stay_completed

    db = f"sqlite:///{tmp_path / 'outbox.db'}"
    sources = (STAY / "stay.toml").read_text(encoding="utf-8")
    config = write_config(tmp_path / "hotel.toml", db=db, sandbox=sandbox, sources=sources)
    env = serve_env(
        PYTHONPATH=os.pathsep.join([*stay_paths, os.environ.get("PYTHONPATH", "")]),
        STAYBOOK_WEBHOOK_SECRET=SAMPLE_SECRET,
    )
    stay = stay_completed("d-1")
    portal = stay_completed("d-2", id="bk_0043", channel="booking_com")
    async with (
        serving(config, env=env, stderr_path=tmp_path / "serve.err") as served,
        aiohttp.ClientSession() as session,
    ):
        assert served.routes == f"POST /webhooks/{SOURCE} ({SOURCE}, staybook)"
        url = f"{served.url}/webhooks/{SOURCE}"
        assert await post(session, url, stay.tampered()) == 401
        assert await post(session, url, stay) == 200
        assert await post(session, url, stay) == 200  # Staybook's retry
        assert await post(session, url, portal) == 200

        async def delivered() -> bool:
            async with Outbox.from_url(db) as outbox:
                return (await outbox.stats()).counts[State.DELIVERED] == 1

        await wait_until(delivered)
        assert await stop(served) == 0

    (accepted,) = sandbox.sandbox.accepted_events()
    assert accepted.type == "stay_completed"
    assert accepted.transaction_reference == "HB-4711-0042"
    assert accepted.body["customer"]["firstName"] == "Erika"
    assert accepted.body["estimatedDeliveryDate"] == "2025-05-12"
    found = await histories(db, ["bk_0042", "bk_0043"], source=SOURCE)
    stayed, booked_on_a_portal = found["bk_0042"], found["bk_0043"]
    assert [row.kind for row in stayed.events] == ["order_delivered"]
    assert [(d.key, d.outcome) for d in stayed.decisions] == [
        ("staybook:prop-4711:bk_0042:stay_completed", "enqueued")
    ]
    (skipped,) = booked_on_a_portal.decisions
    assert (skipped.kind, skipped.outcome) == ("skipped", "recorded")
    assert isinstance(skipped.decision, Skipped)
    assert skipped.decision.reason is SkipReason.EXCLUDED_SALES_CHANNEL
