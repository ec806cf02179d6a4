"""The feeds check against the Shopify orders stand-in on loopback: a polled source's token
is tried with one read of an empty window, and a refused or unset token is named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_helpers import Run

from kit.sandbox import SandboxServer
from kit.testing.shopify_orders import (
    ShopifyOrdersStandIn,
    ShopifyServer,
    running_shopify,
    synthetic_order,
)

from .conftest import SECRET_VARIABLE, WEBHOOK_SECRET, write_config
from .test_doctor_cli import check_lines, no_secrets

TOKEN = "shpat_doctor_test_token"
TOKEN_VARIABLE = "DOCTOR_SHOPIFY_ADMIN_TOKEN"


@pytest.fixture
async def shopify() -> AsyncIterator[ShopifyServer]:
    stand_in = ShopifyOrdersStandIn(token=TOKEN)
    stand_in.put(synthetic_order(1, updated_at=datetime.now(UTC)))
    async with running_shopify(stand_in) as server:
        yield server


def feed_config(tmp_path: Path, sandbox: SandboxServer, shopify: ShopifyServer, db: str) -> Path:
    return write_config(
        tmp_path / "shop.toml",
        sandbox,
        db=db,
        channels=f'admin_access_token = {{ env = "{TOKEN_VARIABLE}" }}\n'
        f'api_base_url = "{shopify.url}"',
    )


async def test_a_feed_that_accepts_its_token_passes_without_reading_orders(
    run: Run,
    tmp_path: Path,
    sandbox: SandboxServer,
    shopify: ShopifyServer,
    db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token works: the feeds check passes after one request that lists no order."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    monkeypatch.setenv(TOKEN_VARIABLE, TOKEN)
    config = feed_config(tmp_path, sandbox, shopify, db)
    result = await run("doctor", "--config", str(config))
    assert result.code == 0, result.out
    assert "✓ feeds: 1 feed(s) accept their credentials" in result.out
    assert shopify.stand_in.requests == 1
    assert not shopify.stand_in.served  # the empty window listed nothing
    no_secrets(result.out + result.err, TOKEN)


async def test_a_refused_feed_token_is_named(
    run: Run,
    tmp_path: Path,
    sandbox: SandboxServer,
    shopify: ShopifyServer,
    db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token Shopify refuses: the feeds check names the source and says the platform
    refused the credentials; the token is not printed."""
    wrong = "shpat_not_the_right_one"
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    monkeypatch.setenv(TOKEN_VARIABLE, wrong)
    config = feed_config(tmp_path, sandbox, shopify, db)
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert check_lines(result.out)["feeds"] == "✗"
    assert "source my-shop: the platform refused the feed's credentials" in result.out
    no_secrets(result.out + result.err, wrong)


async def test_an_unset_feed_token_is_named_and_never_sent(
    run: Run,
    tmp_path: Path,
    sandbox: SandboxServer,
    shopify: ShopifyServer,
    db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """admin_access_token from an unset variable: source secrets names it, and the feed is
    not asked with a stand-in value."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    config = feed_config(tmp_path, sandbox, shopify, db)
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert f"admin_access_token comes from ${TOKEN_VARIABLE}, which is not set" in result.out
    assert shopify.stand_in.requests == 0
