"""The records a sandbox account holds, each with its eTrusted JSON shape.

Plain data and its wire form only; the indexes and the rules that tie records together live in
:mod:`kit.sandbox.state`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs


def iso(epoch: float) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSSZ``, the format every eTrusted timestamp uses."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@attrs.frozen(kw_only=True)
class AcceptedEvent:
    """One POST /events that eTrusted accepted (202), as tests want to see it."""

    event_ref: str
    type: str
    channel_id: str
    transaction_reference: str
    created_at: str
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "eventRef": self.event_ref,
            "type": self.type,
            "channelId": self.channel_id,
            "transactionReference": self.transaction_reference,
            "createdAt": self.created_at,
        }


@attrs.define(kw_only=True)
class StoredEvent:
    ref: str
    body: dict[str, Any]
    created_at: float
    ready_at: float
    dropped: bool  # accepted but never processed (unknown channel): GET answers 404


@attrs.define(kw_only=True)
class EventType:
    id: str
    name: str
    active: bool
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "active": self.active,
            "name": self.name,
        }


@attrs.define(kw_only=True)
class InviteConfiguration:
    sending_delay_in_days: float
    sending_time_of_day: str
    invite_template_id: str
    questionnaire_template_id: str
    enabled: bool

    _FIELDS = {
        "sendingDelayInDays": "sending_delay_in_days",
        "sendingTimeOfDay": "sending_time_of_day",
        "inviteTemplateId": "invite_template_id",
        "questionnaireTemplateId": "questionnaire_template_id",
        "enabled": "enabled",
    }

    def to_json(self) -> dict[str, Any]:
        return {wire: getattr(self, attr) for wire, attr in self._FIELDS.items()}

    def apply(self, patch: dict[str, Any]) -> None:
        for wire, attr in self._FIELDS.items():
            if wire in patch:
                setattr(self, attr, patch[wire])


@attrs.define(kw_only=True)
class InviteSettings:
    id: str
    channel_id: str
    event_type_id: str
    enabled: bool
    product: InviteConfiguration
    service: InviteConfiguration
    created_at: float
    updated_at: float
    visible_at: float  # created asynchronously: invisible to the API until then

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channelId": self.channel_id,
            "eventTypeId": self.event_type_id,
            "enabled": self.enabled,
            "productInviteConfiguration": self.product.to_json(),
            "serviceInviteConfiguration": self.service.to_json(),
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
        }

    def apply(self, patch: dict[str, Any], now: float) -> None:
        if "enabled" in patch:
            self.enabled = patch["enabled"]
        if "productInviteConfiguration" in patch:
            self.product.apply(patch["productInviteConfiguration"])
        if "serviceInviteConfiguration" in patch:
            self.service.apply(patch["serviceInviteConfiguration"])
        self.updated_at = now


@attrs.define(kw_only=True)
class Channel:
    id: str
    name: str
    address: str
    url: str
    logo_url: str
    locale: str
    created_at: float
    updated_at: float

    def to_json(self, account_ref: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "name": self.name,
            "address": self.address,
            "url": self.url,
            "logoUrl": self.logo_url,
            "accountRef": account_ref,
            "locale": self.locale,
        }


@attrs.define(kw_only=True)
class Invite:
    id: str
    channel_id: str
    event_ref: str
    created_at: float
    ready_at: float
    customer_id: str
    email: str
    first_name: str | None
    last_name: str | None
    transaction_id: str
    reference: str
    transaction_date: str
    scheduled_at: str
    estimated_delivery_date: str | None
    locale: str
    review_type: str
    status_name: str
    status_reason: str | None

    def to_json(self, account_ref: str) -> dict[str, Any]:
        customer: dict[str, Any] = {"id": self.customer_id, "email": self.email}
        if self.first_name is not None:
            customer["firstName"] = self.first_name
        if self.last_name is not None:
            customer["lastName"] = self.last_name
        status: dict[str, Any] = {"name": self.status_name}
        if self.status_reason is not None:
            status["reason"] = self.status_reason
        created = iso(self.created_at)
        out: dict[str, Any] = {
            "id": self.id,
            "_object": "Invite",
            "mode": "AUTOMATIC",
            "reviewType": self.review_type,
            "accountRef": account_ref,
            "channelRef": self.channel_id,
            "locale": self.locale,
            "customer": customer,
            "inviteSource": "CUSTOM",
            "transaction": {
                "id": self.transaction_id,
                "reference": self.reference,
                "date": self.transaction_date,
            },
            "scheduledAt": self.scheduled_at,
            "event": self.event_ref,
            "createdAt": created,
            "updatedAt": created,
            "status": status,
        }
        if self.estimated_delivery_date is not None:
            out["estimatedDeliveryDate"] = self.estimated_delivery_date
        return out


@attrs.frozen(kw_only=True)
class InvitePage:
    items: list[Invite]
    has_older: bool
    has_newer: bool
