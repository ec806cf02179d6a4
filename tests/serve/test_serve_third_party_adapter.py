"""A third-party adapter, installed the way pip installs a package, works through ``serve``.

The adapter lives in a module of this test's own, outside the kit, with a ``*.dist-info``
directory whose ``entry_points.txt`` registers it in the ``etrusted_kit.adapters`` group. Both
are put on serve's ``PYTHONPATH``: ``importlib.metadata`` finds the entry point for real, with
no monkeypatching in the serve process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import textwrap
from pathlib import Path

import aiohttp
from journal.deliveries import CHANNEL

from kit.adapters import ENTRY_POINT_GROUP
from kit.outbox import Outbox, State
from kit.sandbox import SandboxServer

from .serve_helpers import histories, serve_env, serving, stop, wait_until, write_config

ACME_SECRET = "acme-test-secret"
ACCOUNT = "store-7"

ACME_MODULE = '''
"""The Acme shop platform's adapter, as a package outside the kit would ship it."""

from __future__ import annotations

import json
from datetime import datetime

import attrs

from kit.adapters import DeliveryIdentity, hmac_sha256_base64_matches
from kit.domain import LineItem, OrderFacts, OrderFulfilled, Skip, SkipReason
from kit.errors import PayloadError, VerificationError


@attrs.frozen(kw_only=True)
class AcmeConfig:
    account: str


@attrs.frozen
class AcmeAdapter:
    source: str
    config: AcmeConfig

    @property
    def platform(self):
        return "acme"

    @property
    def account(self):
        return self.config.account

    def verify(self, headers, raw_body, secrets):
        signature = headers.get("x-acme-signature")
        if not signature:
            raise VerificationError("missing_signature", "no X-Acme-Signature header")
        if not hmac_sha256_base64_matches(raw_body, signature, secrets):
            raise VerificationError("bad_signature", "X-Acme-Signature does not match")

    def identify(self, headers, raw_body):
        return DeliveryIdentity(headers["x-acme-delivery"])

    def parse(self, headers, raw_body, *, received_at):
        try:
            data = json.loads(raw_body)
        except ValueError as exc:
            raise PayloadError("the body is not JSON") from exc
        if data.get("event") != "shipped":
            return Skip(SkipReason.UNSUPPORTED_TOPIC)
        order = OrderFacts(
            reference=data["number"],
            placed_at=datetime.fromisoformat(data["placed_at"]),
            email=data["email"],
            first_name=data["first_name"],
            lines=tuple(LineItem(line_id=str(n), name=i) for n, i in enumerate(data["items"])),
        )
        return [
            OrderFulfilled(
                source=self.source,
                platform="acme",
                account=self.config.account,
                stream=str(data["order_id"]),
                occurred_at=datetime.fromisoformat(data["shipped_at"]),
                delivery_id=headers["x-acme-delivery"],
                topic="shipped",
                order=order,
            )
        ]


class AcmePlugin:
    name = "acme"
    config_type = AcmeConfig

    def create(self, *, source, config):
        return AcmeAdapter(source, config)


plugin = AcmePlugin()
'''

ACME_SOURCE = f"""
[[sources]]
name = "acme-store"
adapter = "acme"
account = "{ACCOUNT}"
webhook_secrets = ["{ACME_SECRET}"]
channel_id = "{CHANNEL}"

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
"""


def install_acme(site: Path) -> None:
    """Lay the adapter out as an installed distribution: its module and its dist-info."""
    (site / "acme_shop_adapter.py").write_text(textwrap.dedent(ACME_MODULE))
    info = site / "acme_shop_adapter-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-shop-adapter\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacme = acme_shop_adapter:plugin\n"
    )


def acme_delivery(order_id: int, delivery_id: str) -> tuple[dict[str, str], bytes]:
    raw = json.dumps(
        {
            "event": "shipped",
            "order_id": order_id,
            "number": f"A-{order_id}",
            "placed_at": "2025-03-01T09:00:00+01:00",
            "shipped_at": "2025-03-03T15:30:00+01:00",
            "email": "kim@example.org",
            "first_name": "Kim",
            "items": ["Teapot"],
        }
    ).encode()
    digest = hmac.new(ACME_SECRET.encode(), raw, hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-Acme-Delivery": delivery_id,
        "X-Acme-Signature": base64.b64encode(digest).decode(),
    }
    return headers, raw


async def test_an_entry_point_adapter_works_end_to_end_through_serve(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """POST -> journal -> outbox -> sandbox through an adapter the kit knows only by its entry
    point: serve lists its route, verifies with it (a forged delivery is refused 401 and
    stores nothing), and delivers the one invite it decided."""
    site = tmp_path / "site"
    site.mkdir()
    install_acme(site)
    env = serve_env(PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox, sources=ACME_SOURCE)
    key = f"acme:{ACCOUNT}:501:order_shipped"
    async with (
        serving(config, env=env, stderr_path=tmp_path / "serve.err") as served,
        aiohttp.ClientSession() as session,
    ):
        assert served.routes == "POST /webhooks/acme-store (acme-store, acme)"
        url = served.url + "/webhooks/acme-store"
        headers, raw = acme_delivery(501, "acme-d-1")
        forged = {**headers, "X-Acme-Signature": base64.b64encode(b"x" * 32).decode()}
        async with session.post(url, data=raw, headers=forged) as resp:
            assert resp.status == 401
        async with session.post(url, data=raw, headers=headers) as resp:
            assert resp.status == 200
            assert await resp.json() == {"status": "accepted", "delivery_id": "acme-d-1"}

        async def delivered() -> bool:
            async with Outbox.from_url(db) as outbox:
                return (await outbox.stats()).counts[State.DELIVERED] == 1

        await wait_until(delivered)
        assert await stop(served) == 0

    (accepted,) = sandbox.sandbox.accepted_events()
    assert accepted.transaction_reference == "A-501"
    assert accepted.type == "order_shipped"
    assert accepted.body["customer"]["firstName"] == "Kim"
    async with Outbox.from_url(db) as outbox:
        (entry,) = await outbox.entries()
    assert entry.key == key
    assert entry.event_ref == accepted.event_ref
    history = (await histories(db, ["501"], source="acme-store"))["501"]
    assert [row.kind for row in history.events] == ["order_fulfilled"]
    assert [(d.key, d.outcome) for d in history.decisions] == [(key, "enqueued")]
