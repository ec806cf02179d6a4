"""A configured ``[[sources]]`` table becomes an intake source that takes deliveries in."""

from __future__ import annotations

from kit.configfile import parse_config
from kit.journal import IngestStatus, IntakeSource

from .conftest import Kit
from .deliveries import CHANNEL, KEY, SECRET, SHOP, fulfilled_order, signed

CONFIG = f"""
[[sources]]
name = "my-shop"
adapter = "shopify"
shop_domain = "{SHOP}"
webhook_secrets = [{{ env = "SHOPIFY_WEBHOOK_SECRET" }}]
channel_id = "{CHANNEL}"

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
delay = "3d"
"""


async def test_a_configured_source_takes_its_deliveries_in(memory_kit: Kit) -> None:
    config = parse_config(CONFIG, environ={"SHOPIFY_WEBHOOK_SECRET": SECRET})
    source = IntakeSource.from_config(config.sources[0])

    assert SECRET not in repr(source)
    headers, raw = signed(fulfilled_order(), "orders/fulfilled", webhook_id="w-1")
    result = await memory_kit.intake.ingest_raw(source, headers, raw)

    assert result.status is IngestStatus.ACCEPTED
    assert result.enqueued == (KEY,)
