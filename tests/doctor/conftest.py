"""A sandbox account, an outbox and a configuration file for the doctor to examine; each test
breaks one part of them through the sandbox's state API or the file system."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kit.outbox import Outbox
from kit.sandbox import SandboxConfig, SandboxServer
from kit.sandbox.config import SEEDED_CHANNEL_IDS
from kit.testing import running_sandbox

CHANNEL, OTHER_CHANNEL = SEEDED_CHANNEL_IDS
SECRET_VARIABLE = "DOCTOR_SHOP_SECRET"
WEBHOOK_SECRET = "whsec-doctor-test-value"
TYPES = ("order_shipped", "order_delivered")


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    """A sandbox whose account has every type the configuration names, active, invites on."""
    async with running_sandbox(SandboxConfig(event_types=("checkout", *TYPES))) as server:
        yield server


@pytest.fixture
async def db(tmp_path: Path) -> str:
    """A migrated SQLite outbox."""
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    async with Outbox.from_url(url):
        pass
    return url


def write_config(
    path: Path,
    server: SandboxServer,
    *,
    db: str,
    client_secret: str | None = None,
    channels: str = "",
) -> Path:
    """One Shopify source sending both TYPES to CHANNEL (and any ``channels`` line)."""
    sandbox = server.sandbox.config
    secret = sandbox.client_secret if client_secret is None else client_secret
    path.write_text(
        f"""
[outbox]
url = {json.dumps(db)}

[etrusted]
client_id = {json.dumps(sandbox.client_id)}
client_secret = {json.dumps(secret)}
api_url = {json.dumps(server.url)}
token_url = {json.dumps(server.token_url)}

[[sources]]
name = "my-shop"
adapter = "shopify"
shop_domain = "my-shop.myshopify.com"
webhook_secrets = [{{ env = "{SECRET_VARIABLE}" }}]
channel_id = "{CHANNEL}"
{channels}

[[sources.triggers]]
on = "order_fulfilled"
event_type = "{TYPES[0]}"

[[sources.triggers]]
on = "order_delivered"
event_type = "{TYPES[1]}"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def config(
    tmp_path: Path, sandbox: SandboxServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A configuration file for a setup that works, its webhook secret set."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    return write_config(tmp_path / "shop.toml", sandbox, db=db)
