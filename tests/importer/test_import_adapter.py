"""The ``import`` adapter keeps the push contract: it refuses every webhook, a transaction's
identity is its content, and parsing is deterministic."""

from __future__ import annotations

from datetime import UTC, date, datetime

import attrs
import pytest

from adapters.importer import ImportAdapter, Transaction, decode, encode
from adapters.importer.columns import Product
from kit.adapters import load_adapter, takes_webhooks
from kit.domain import Consent, OrderFulfilled
from kit.errors import PayloadError, VerificationError

TX = Transaction(
    reference="1042",
    placed_at=datetime(2025, 3, 1, 8, 12, 44, tzinfo=UTC),
    email="erika@example.org",
    consent=Consent.OPTED_IN,
    first_name="Erika",
    locale="de_DE",
    estimated_delivery=date(2025, 3, 6),
    products=(Product(sku="A-1", name="Socks", url="https://shop.example/a1"),),
    lines=(2, 3),
    rows=2,
)
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_plugin_is_installed_and_takes_no_webhooks() -> None:
    plugin = load_adapter("import")
    assert not takes_webhooks(plugin)
    assert takes_webhooks(load_adapter("shopify"))


def test_every_webhook_is_refused() -> None:
    with pytest.raises(VerificationError, match="not_a_webhook_source"):
        ImportAdapter(source="legacy").verify({}, encode(TX), ["any-secret"])


def test_identity_is_the_content_not_the_file_lines() -> None:
    """Line numbers and row counts are not content: the same transaction elsewhere in another
    file is the same delivery; another product makes another one."""
    adapter = ImportAdapter(source="legacy")
    moved = attrs.evolve(TX, lines=(40, 40), rows=1)
    changed = attrs.evolve(TX, products=(*TX.products, Product(sku="B", name="B", url="https://b")))
    same = adapter.identify({}, encode(moved))
    assert same == adapter.identify({}, encode(TX))
    assert adapter.identify({}, encode(changed)) != same


def test_parsing_is_deterministic_and_reads_back_what_was_encoded() -> None:
    adapter = ImportAdapter(source="legacy")
    body = encode(TX)
    assert decode(body) == attrs.evolve(TX, lines=(0, 0), rows=1)
    first = adapter.parse({}, body, received_at=WHEN)
    assert first == adapter.parse({}, body, received_at=WHEN)
    (event,) = first  # type: ignore[misc]
    assert isinstance(event, OrderFulfilled)
    assert (event.platform, event.account, event.stream) == ("import", "legacy", "1042")
    assert event.shipment is not None
    assert event.shipment.estimated_delivery == date(2025, 3, 6)
    assert event.order is not None
    assert event.order.updated_at == WHEN
    assert [line.sku for line in event.order.lines] == ["A-1"]


def test_bytes_that_are_not_a_transaction_are_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        ImportAdapter(source="legacy").parse({}, b'{"reference": 1}', received_at=WHEN)
