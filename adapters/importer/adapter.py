"""The ``import`` adapter: one file transaction -> one domain event, under a content identity.

The importer hands each merged transaction to this adapter as its *body*: the transaction's
canonical JSON (:func:`encode`), the same bytes whatever the file's format, column order or
spelling of a date. So the adapter keeps the push contract (:class:`kit.adapters.PushAdapter`)
and its promises hold for imports too: :meth:`ImportAdapter.identify` derives the delivery id
from those bytes, so importing the same transaction again is a duplicate the journal folds,
and :meth:`ImportAdapter.parse` is deterministic.

A transaction whose content changed (a product added, consent withdrawn) has a new identity:
it is a new snapshot of the same order (the stream is the transaction reference), and the
policy treats it as any later webhook about an order: a waiting invite is amended or
withdrawn, a sent one is left alone. The snapshot's version is the import's start, so the last
import of a transaction is the one that counts.

An import source takes no webhooks: :meth:`ImportAdapter.verify` refuses every delivery, and
the plugin says ``takes_webhooks = False`` so the source needs no secrets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from adapters.importer.columns import Product
from adapters.importer.config import ImportConfig, ImportedAs
from adapters.importer.transactions import Transaction
from kit import jsonenc
from kit.adapters import AdapterPlugin, DeliveryIdentity, Headers, ParseResult
from kit.codec import format_date, parse_date, parse_datetime
from kit.domain import (
    Consent,
    DomainEvent,
    LineItem,
    OrderDelivered,
    OrderFacts,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    Shipment,
)
from kit.errors import PayloadError, VerificationError

PLATFORM = "import"
TOPIC = "import"

_PRODUCT_FIELDS = ("sku", "name", "url", "image_url", "gtin", "mpn", "brand")


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def encode(tx: Transaction) -> bytes:
    """The transaction's canonical JSON: sorted keys, UTC times, no line numbers."""
    body: dict[str, Any] = {
        "reference": tx.reference,
        "placed_at": _instant(tx.placed_at),
        "event_at": _instant(tx.event_at),
        "email": tx.email,
        "first_name": tx.first_name,
        "last_name": tx.last_name,
        "locale": tx.locale,
        "estimated_delivery": format_date(tx.estimated_delivery) if tx.estimated_delivery else None,
        "consent": tx.consent.value,
        "products": [[getattr(p, f) for f in _PRODUCT_FIELDS] for p in tx.products],
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def decode(raw_body: bytes) -> Transaction:
    """:func:`encode` read back; raises :class:`~kit.errors.PayloadError` for other bytes."""
    try:
        body = jsonenc.decode(raw_body)
        estimated = body["estimated_delivery"]
        event_at = body["event_at"]
        return Transaction(
            reference=body["reference"],
            placed_at=parse_datetime(body["placed_at"]),
            event_at=parse_datetime(event_at) if event_at else None,
            email=body["email"],
            first_name=body["first_name"],
            last_name=body["last_name"],
            locale=body["locale"],
            estimated_delivery=parse_date(estimated) if estimated else None,
            consent=Consent(body["consent"]),
            products=tuple(
                Product(**dict(zip(_PRODUCT_FIELDS, p, strict=True))) for p in body["products"]
            ),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise PayloadError(f"not an imported transaction: {exc}") from None


def _lines(products: Sequence[Product]) -> tuple[LineItem, ...]:
    return tuple(
        LineItem(
            line_id=str(index),
            name=p.name,
            product_id=p.sku,  # one product per SKU: a SKU listed twice is reviewed once
            sku=p.sku,
            gtin=p.gtin,
            mpn=p.mpn,
            brand=p.brand,
            url=p.url,
            image_url=p.image_url,
        )
        for index, p in enumerate(products, start=1)
    )


@attrs.frozen(kw_only=True)
class ImportAdapter:
    """One configured import source (see :class:`kit.adapters.PushAdapter`)."""

    source: str
    config: ImportConfig = attrs.field(factory=ImportConfig)

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def account(self) -> str:
        """An import has no platform tenant: the source is its own account, so two import
        sources never share an outbox key."""
        return self.source

    def verify(self, headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
        raise VerificationError(
            "not_a_webhook_source",
            f"source {self.source!r} is an import source: it takes files through"
            " 'etrusted-kit import', not webhooks",
        )

    def identify(self, headers: Headers, raw_body: bytes) -> DeliveryIdentity:
        return DeliveryIdentity(delivery_id=f"import:{hashlib.sha256(raw_body).hexdigest()[:32]}")

    def parse(self, headers: Headers, raw_body: bytes, *, received_at: datetime) -> ParseResult:
        tx = decode(raw_body)
        order = OrderFacts(
            reference=tx.reference,
            placed_at=tx.placed_at,
            updated_at=received_at,
            email=tx.email,
            first_name=tx.first_name,
            last_name=tx.last_name,
            locale=tx.locale,
            lines=_lines(tx.products),
            consent=tx.consent,
        )
        return [self._event(tx, order, self.identify(headers, raw_body).delivery_id)]

    def _event(self, tx: Transaction, order: OrderFacts, delivery_id: str) -> DomainEvent:
        envelope: dict[str, Any] = {
            "source": self.source,
            "platform": PLATFORM,
            "account": self.account,
            "stream": tx.reference,
            "occurred_at": tx.event_at or tx.placed_at,
            "delivery_id": delivery_id,
            "topic": TOPIC,
            "order": order,
        }
        kind = self.config.event
        if kind is ImportedAs.ORDER_PLACED:
            return OrderPlaced(**envelope)
        if kind is ImportedAs.ORDER_PAID:
            return OrderPaid(**envelope)
        shipment = Shipment(shipment_id=tx.reference, estimated_delivery=tx.estimated_delivery)
        if kind is ImportedAs.ORDER_DELIVERED:
            return OrderDelivered(**envelope, shipment=shipment)
        return OrderFulfilled(**envelope, shipment=shipment)


@attrs.frozen
class ImportPlugin:
    """The ``import`` entry point (see :class:`kit.adapters.AdapterPlugin`)."""

    name: str = PLATFORM
    config_type: type[ImportConfig] = ImportConfig
    takes_webhooks: bool = False

    def create(self, *, source: str, config: ImportConfig) -> ImportAdapter:
        return ImportAdapter(source=source, config=config)


plugin: AdapterPlugin[ImportConfig] = ImportPlugin()


__all__ = ["PLATFORM", "TOPIC", "ImportAdapter", "ImportPlugin", "decode", "encode", "plugin"]
