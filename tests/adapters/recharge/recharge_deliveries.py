"""One synthetic Recharge renewal in both payload versions (platforms.md §6.4), and signed
deliveries of it. The charge created Shopify order 5560002000042 (``#1077``) in the shop."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from adapters.recharge import RechargeAdapter, RechargeConfig, samples
from kit.adapters import ParseResult, normalise_headers

SECRET = "rc_kit_test_client_secret_do_not_use"
SHOP = "kit-demo.myshopify.com"
SOURCE = "my-recharge"
ORDER_ID = "5560002000042"
CHARGE_ID = "88000001"
EMAIL = "erika.muster@example.org"
# When the intake received the delivery: five seconds after Recharge signed (and processed) it.
SIGNED_AT = int(datetime(2025, 3, 10, 8, 0, 10, tzinfo=UTC).timestamp())
NOW = SIGNED_AT + 5
RECEIVED = datetime.fromtimestamp(NOW, UTC)

VERSIONS = samples.VERSIONS
charge = samples.charge


def raw(body: dict[str, Any] | bytes) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


def delivery(
    body: dict[str, Any] | bytes,
    topic: str | None = "charge/paid",
    *,
    secret: str = SECRET,
    scheme: samples.Scheme = "timestamped",
    signed_at: int = SIGNED_AT,
) -> tuple[dict[str, str], bytes]:
    """Headers (lower-cased) and raw body of one delivery, signed by ``scheme`` ("timestamped",
    "legacy" or "both", as Recharge may send both headers)."""
    headers, data = samples.signed_delivery(
        body, topic, secret=secret, signed_at=signed_at, scheme=scheme
    )
    return normalise_headers(headers), data


def adapter(**config: Any) -> RechargeAdapter:
    return RechargeAdapter(source=SOURCE, config=RechargeConfig(shop_domain=SHOP, **config))


def accept(
    headers: dict[str, str],
    data: bytes,
    secrets: Sequence[str] = (SECRET,),
    *,
    received_at: datetime = RECEIVED,
    **config: Any,
) -> ParseResult:
    """Verify and parse one delivery the way the intake does: the signature, then (in parse)
    its age against the moment the intake received the delivery."""
    recharge = adapter(**config)
    recharge.verify(headers, data, secrets)
    return recharge.parse(headers, data, received_at=received_at)


def parse(
    body: dict[str, Any] | bytes,
    topic: str | None = "charge/paid",
    *,
    config: dict[str, Any] | None = None,
) -> ParseResult:
    """Verify and parse one delivery the way the intake will."""
    return accept(*delivery(body, topic), **(config or {}))
