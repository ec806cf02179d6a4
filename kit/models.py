"""attrs models of every object the eTrusted API takes or returns.

Field names are snake_case; :mod:`kit.codec` maps them to the camelCase wire. Request models
mirror the documented rules (required fields have no default); response models require only
what a caller cannot do without (ids, names, refs), so an API that drops or adds an optional
field does not break delivery. Date-times are aware :class:`datetime` objects in UTC.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Self

import attrs

from kit import codec
from kit.codec import wire


class ChannelType(enum.StrEnum):
    """Whether ``channel.id`` is an eTrusted ``chl-...`` id or one of the caller's own."""

    ETRUSTED = "etrusted"
    USER_DEFINED = "user_defined"


# -- events ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Customer:
    email: str = attrs.field(repr=False)
    first_name: str | None = attrs.field(default=None, repr=False)
    last_name: str | None = attrs.field(default=None, repr=False)
    address: str | None = attrs.field(default=None, repr=False)
    mobile: str | None = attrs.field(default=None, repr=False)
    reference: str | None = None


@attrs.frozen(kw_only=True)
class EventChannel:
    id: str
    type: ChannelType | None = None  # the API defaults to ``etrusted``


@attrs.frozen(kw_only=True)
class Transaction:
    reference: str
    date: datetime | None = None


@attrs.frozen(kw_only=True)
class Product:
    name: str
    sku: str
    url: str
    gtin: str | None = None
    image_url: str | None = None
    mpn: str | None = None
    brand: str | None = None


@attrs.frozen(kw_only=True)
class Event:
    """The body of ``POST /events`` (``EventRequest``)."""

    type: str
    customer: Customer
    channel: EventChannel
    transaction: Transaction
    system: str
    system_version: str
    default_locale: str | None = None
    estimated_delivery_date: date | None = None
    products: list[Product] | None = None
    metadata: dict[str, str] | None = None

    def to_body(self) -> dict[str, Any]:
        """The camelCase wire body (not validated; see :mod:`kit.validation`)."""
        return codec.to_wire(self)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        return codec.from_wire(cls, body)


@attrs.frozen(kw_only=True)
class EventAccepted:
    """The 202 answer to ``POST /events``."""

    event_ref: str = attrs.field(metadata=wire("EventRef"))
    message: str | None = attrs.field(default=None, metadata=wire("Message"))


@attrs.frozen(kw_only=True)
class Tracking:
    client: str | None = None
    medium: str | None = None


@attrs.frozen(kw_only=True)
class StoredChannel:
    id: str | None = None
    type: str | None = None


@attrs.frozen(kw_only=True)
class StoredTransaction:
    reference: str | None = None
    date: str | None = None  # as stored: other sources write dates other ways


@attrs.frozen(kw_only=True)
class EventDetails:
    """``GET /events/{ref}``: a stored event plus server-set fields, read leniently.

    Only ``id`` is required; customer, products and metadata stay plain JSON, dates stay text.
    eTrusted stores events from other sources too (the Trustbadge's own checkout events, other
    integrations: a customer without e-mail, a product without URL, numbers in metadata), and
    reconciliation reads every event listed for a transaction: one that the request model would
    refuse must not make an in-doubt event of ours unfindable. Customer data stays out of repr.
    """

    id: str
    type: str | None = None
    customer: dict[str, Any] | None = attrs.field(default=None, repr=False)
    channel: StoredChannel | None = None
    transaction: StoredTransaction | None = None
    system: str | None = None
    system_version: str | None = None
    default_locale: str | None = None
    estimated_delivery_date: str | None = None
    products: list[dict[str, Any]] | None = attrs.field(default=None, repr=False)
    metadata: dict[str, Any] | None = attrs.field(default=None, repr=False)
    account_ref: str | None = None
    tracking: Tracking | None = None
    created_at: datetime | None = None


# -- event types ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EventType:
    id: str
    name: str
    active: bool
    created_at: datetime | None = None
    updated_at: datetime | None = None


@attrs.frozen(kw_only=True)
class EventTypeCreate:
    """Body of ``POST /event-types``."""

    name: str
    active: bool = True


@attrs.frozen(kw_only=True)
class EventTypeActivation:
    """Body of ``PUT /event-types/{id}``: activation is the only thing that can change."""

    active: bool


# -- invite settings ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class InviteConfiguration:
    sending_delay_in_days: int | None = None
    sending_time_of_day: str | None = None  # ``HH:mm:ssZ``, 24h UTC
    invite_template_id: str | None = None
    questionnaire_template_id: str | None = None
    enabled: bool | None = None


@attrs.frozen(kw_only=True)
class InviteSettings:
    """One per (channel, event type) pair; created by eTrusted, never by the client."""

    id: str
    channel_id: str | None = None
    event_type_id: str | None = None
    enabled: bool | None = None
    product_invite_configuration: InviteConfiguration | None = None
    service_invite_configuration: InviteConfiguration | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@attrs.frozen(kw_only=True)
class InviteConfigurationUpdate:
    """Partial update: only the fields that are set are sent."""

    sending_delay_in_days: int | None = None
    sending_time_of_day: str | None = None
    invite_template_id: str | None = None
    questionnaire_template_id: str | None = None
    enabled: bool | None = None


@attrs.frozen(kw_only=True)
class InviteSettingsUpdate:
    """Body of both ``PATCH /invite-settings`` variants; only set fields are sent."""

    enabled: bool | None = None
    product_invite_configuration: InviteConfigurationUpdate | None = None
    service_invite_configuration: InviteConfigurationUpdate | None = None


# -- channels -------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Channel:
    id: str
    name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    address: str | None = None
    url: str | None = None
    logo_url: str | None = None
    account_ref: str | None = None
    locale: str | None = None
    state: str | None = None


@attrs.frozen(kw_only=True)
class ChannelUpdate:
    """Body of ``PUT /channels/{id}`` (``UpdateChannel``); ``name`` is required."""

    name: str
    address: str | None = None
    url: str | None = None
    logo_url: str | None = None
    locale: str | None = None


@attrs.frozen(kw_only=True)
class ChannelRef:
    """The 200 answer to ``PUT /channels/{id}``."""

    id: str


# -- invites --------------------------------------------------------------------------------


class InviteStatusName(enum.StrEnum):
    """Documented ``status.name`` values; the model keeps a plain ``str`` for unknown ones."""

    SCHEDULED = "SCHEDULED"
    CANCELED = "CANCELED"
    SENT = "SENT"
    DELIVERED = "DELIVERED"
    NOT_DELIVERED = "NOT_DELIVERED"
    REJECTED = "REJECTED"
    OPENED = "OPENED"
    CLICKED = "CLICKED"
    RENDERED = "RENDERED"
    REVIEW_WRITTEN = "REVIEW_WRITTEN"
    READY_FOR_RENDER = "READY_FOR_RENDER"


@attrs.frozen(kw_only=True)
class InviteStatus:
    name: str
    reason: str | None = None  # e.g. ``DUPLICATE``


@attrs.frozen(kw_only=True)
class InviteTransaction:
    id: str | None = None
    reference: str | None = None
    date: datetime | None = None


@attrs.frozen(kw_only=True)
class InviteCustomer:
    id: str | None = None
    email: str | None = attrs.field(default=None, repr=False)
    first_name: str | None = attrs.field(default=None, repr=False)
    last_name: str | None = attrs.field(default=None, repr=False)
    phone_number: str | None = attrs.field(default=None, repr=False)
    preferred_locale: str | None = None


@attrs.frozen(kw_only=True)
class Invite:
    """One entry of ``GET /channels/{id}/invites``; ``event_ref`` is the wire's ``event``."""

    id: str
    event_ref: str | None = attrs.field(default=None, metadata=wire("event"))
    transaction: InviteTransaction | None = None
    status: InviteStatus | None = None
    customer: InviteCustomer | None = None
    channel_ref: str | None = None
    account_ref: str | None = None
    mode: str | None = None
    review_type: str | None = None
    locale: str | None = None
    platform: str | None = None
    invite_source: str | None = None
    scheduled_at: datetime | None = None
    sent_at: datetime | None = None
    estimated_delivery_date: date | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@attrs.frozen(kw_only=True)
class PagingCursor:
    after: str | None = None  # the next (older) page
    before: str | None = None  # the previous (newer) page


@attrs.frozen(kw_only=True)
class PagingLinks:
    previous: str | None = None
    next: str | None = None


@attrs.frozen(kw_only=True)
class Paging:
    count: int | None = None
    cursor: PagingCursor | None = None
    links: PagingLinks | None = None


@attrs.frozen(kw_only=True)
class InvitePage:
    """One page of invites; follow :attr:`after` for the next one."""

    items: list[Invite] = attrs.Factory(list)
    paging: Paging | None = None
    total_elements: int | None = None  # deprecated by eTrusted, always 0

    @property
    def after(self) -> str | None:
        return self.paging.cursor.after if self.paging and self.paging.cursor else None

    @property
    def before(self) -> str | None:
        return self.paging.cursor.before if self.paging and self.paging.cursor else None


# -- tokens ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Token:
    """An OAuth2 token response; the token itself never appears in ``repr``."""

    access_token: str = attrs.field(repr=False, metadata=wire("access_token"))
    expires_in: float | None = attrs.field(default=None, metadata=wire("expires_in"))
    token_type: str | None = attrs.field(default=None, metadata=wire("token_type"))
    scope: str | None = attrs.field(default=None, metadata=wire("scope"))


__all__ = [
    "Channel",
    "ChannelRef",
    "ChannelType",
    "ChannelUpdate",
    "Customer",
    "Event",
    "EventAccepted",
    "EventChannel",
    "EventDetails",
    "EventType",
    "EventTypeActivation",
    "EventTypeCreate",
    "Invite",
    "InviteConfiguration",
    "InviteConfigurationUpdate",
    "InviteCustomer",
    "InvitePage",
    "InviteSettings",
    "InviteSettingsUpdate",
    "InviteStatus",
    "InviteStatusName",
    "InviteTransaction",
    "Paging",
    "PagingCursor",
    "PagingLinks",
    "Product",
    "StoredChannel",
    "StoredTransaction",
    "Token",
    "Tracking",
    "Transaction",
]
