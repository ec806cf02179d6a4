"""The Staybook adapter: one configured source, and the plugin the entry point names.

No base class from the kit: the intake checks the methods against the ``PushAdapter`` and
``AdapterPlugin`` protocols. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import attrs
from kit.adapters import DeliveryIdentity, Headers, ParseResult
from kit.errors import VerificationError

from stay_adapter.config import StayConfig
from stay_adapter.payload import PLATFORM, parse_stay
from stay_adapter.signature import verify_signature

DELIVERY_HEADER = "x-staybook-delivery"  # the same on every retry of one delivery
EVENT_ID_HEADER = "x-staybook-event-id"  # the same for one event sent to two endpoints
TOPIC_HEADER = "x-staybook-event"
PROPERTY_HEADER = "x-staybook-property"


@attrs.frozen(kw_only=True)
class StayAdapter:
    source: str
    config: StayConfig

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def account(self) -> str:
        return self.config.property_id

    def verify(self, headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
        verify_signature(headers, raw_body, secrets)
        sender = headers.get(PROPERTY_HEADER)
        if sender != self.config.property_id:
            raise VerificationError("wrong_property", f"sent for property {sender!r}")

    def identify(self, headers: Headers, raw_body: bytes) -> DeliveryIdentity:
        delivery_id = headers.get(DELIVERY_HEADER)
        if delivery_id is None:  # a byte-identical replay is still recognised
            delivery_id = "sha256:" + hashlib.sha256(raw_body).hexdigest()
        return DeliveryIdentity(delivery_id, headers.get(EVENT_ID_HEADER))

    def parse(self, headers: Headers, raw_body: bytes, *, received_at: datetime) -> ParseResult:
        return parse_stay(
            raw_body,
            topic=headers.get(TOPIC_HEADER),
            identity=self.identify(headers, raw_body),
            source=self.source,
            account=self.account,
            reference=self.config.reference,
        )


@attrs.frozen
class StayPlugin:
    name: str = PLATFORM
    config_type: type[StayConfig] = StayConfig

    def create(self, *, source: str, config: StayConfig) -> StayAdapter:
        return StayAdapter(source=source, config=config)
