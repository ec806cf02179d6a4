"""The sandbox account: event types, invite settings, channels, events and invites in memory.

No I/O and no aiohttp here, only the records (:mod:`kit.sandbox.records`) and the indexes that
keep the hot paths cheap: POST /events is a handful of dict inserts, GET /events/{ref} one
lookup, and an invites search by transaction reference or e-mail walks only its matches (the
benchmark posts tens of thousands of events, so nothing may scan).
"""

from __future__ import annotations

import bisect
import random
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, time, timedelta
from typing import Any

from kit.sandbox.config import SandboxConfig
from kit.sandbox.records import (
    AcceptedEvent,
    Channel,
    EventType,
    Invite,
    InviteConfiguration,
    InvitePage,
    InviteSettings,
    StoredEvent,
    iso,
)

__all__ = [  # the records are re-exported: callers import them from here
    "AcceptedEvent",
    "Channel",
    "EventType",
    "Invite",
    "InviteConfiguration",
    "InvitePage",
    "InviteSettings",
    "SandboxState",
    "StoredEvent",
    "UnknownCursorError",
    "iso",
]

_TRACKING = {"client": "PUBLIC_EVENTS_API", "medium": "API"}
_DEFAULT_TIME_OF_DAY = "07:15:00Z"
_CHANNEL_LOCALES = ("de_DE", "en_GB", "fr_FR", "nl_NL", "es_ES", "it_IT", "pl_PL")


class UnknownCursorError(Exception):
    """``after``/``before`` names no invite of this channel (internal; the handler answers 400)."""


class SandboxState:
    """Everything the account holds; rebuilt from scratch by ``reset``."""

    def __init__(
        self, config: SandboxConfig, *, clock: Callable[[], float], rng: random.Random
    ) -> None:
        self.config = config
        self._clock = clock
        self._rng = rng
        self.events: dict[str, StoredEvent] = {}
        self.accepted: list[AcceptedEvent] = []
        self.event_types: dict[str, EventType] = {}
        self.event_type_by_name: dict[str, str] = {}
        self.settings: dict[str, InviteSettings] = {}
        self.settings_by_pair: dict[tuple[str, str], str] = {}  # (channel, event type id)
        self.channels: dict[str, Channel] = {}
        self.invites: list[Invite] = []
        self.invite_index: dict[str, int] = {}
        self.channel_invites: dict[str, list[int]] = {}
        self.invite_search: dict[tuple[str, str], list[int]] = {}  # (channel, lower term)
        self.transactions: dict[tuple[str, str, str], str] = {}  # (chl, type, ref) -> txn id
        self.customers: dict[str, str] = {}  # lower e-mail -> customer id

    # -- ids and seeding ------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.UUID(int=self._rng.getrandbits(128), version=4)}"

    def rng_state(self) -> Any:
        return self._rng.getstate()

    def set_rng_state(self, state: Any) -> None:
        self._rng.setstate(state)

    def seed(self) -> None:
        """The account as eTrusted hands it over: channels, ``checkout`` and its settings."""
        now = self._clock()
        for number, channel_id in enumerate(self.config.channel_ids, start=1):
            self.channels[channel_id] = Channel(
                id=channel_id,
                name=f"Sandbox shop {number}",
                address=f"Sandboxstr. {number}, 12345 Sandbox",
                url=f"https://shop-{number}.sandbox.invalid",
                logo_url=f"https://shop-{number}.sandbox.invalid/logo.png",
                locale=_CHANNEL_LOCALES[(number - 1) % len(_CHANNEL_LOCALES)],
                created_at=now,
                updated_at=now,
            )
            self.channel_invites[channel_id] = []
        for name in self.config.event_types:
            # Seeded types are switched on, as eTrusted's default ``checkout`` is.
            self.create_event_type(name, active=True, settings_enabled=True, immediate=True)

    # -- events ---------------------------------------------------------------------------

    def is_active_event_type(self, name: str) -> bool:
        type_id = self.event_type_by_name.get(name)
        return type_id is not None and self.event_types[type_id].active

    def accept_event(self, body: dict[str, Any]) -> AcceptedEvent:
        """Store a validated event and create its invite; the caller answers 202."""
        now = self._clock()
        ref = self.new_id("evt")
        channel_id: str = body["channel"]["id"]
        known_channel = channel_id in self.channels
        self.events[ref] = StoredEvent(
            ref=ref,
            body=body,
            created_at=now,
            ready_at=now + self.config.processing_delay,
            dropped=not known_channel,
        )
        accepted = AcceptedEvent(
            event_ref=ref,
            type=body["type"],
            channel_id=channel_id,
            transaction_reference=body["transaction"]["reference"],
            created_at=iso(now),
            body=body,
        )
        self.accepted.append(accepted)
        if known_channel and self._invites_on(channel_id, body["type"]):
            self._create_invite(ref, body, now)
        return accepted

    def _invites_on(self, channel_id: str, event_type: str) -> bool:
        if not self.config.invites_follow_settings:
            return True
        settings = self._settings_for(channel_id, event_type)
        return settings is None or settings.enabled

    def _settings_for(self, channel_id: str, event_type: str) -> InviteSettings | None:
        type_id = self.event_type_by_name.get(event_type)
        settings_id = None if type_id is None else self.settings_by_pair.get((channel_id, type_id))
        return None if settings_id is None else self.settings[settings_id]

    def get_event(self, ref: str) -> dict[str, Any] | None:
        stored = self.events.get(ref)
        if stored is None or stored.dropped or self._clock() < stored.ready_at:
            return None
        return {
            **stored.body,
            "id": stored.ref,
            "accountRef": self.config.account_ref,
            "tracking": dict(_TRACKING),
            "createdAt": iso(stored.created_at),
        }

    def _create_invite(self, ref: str, body: dict[str, Any], now: float) -> None:
        channel_id: str = body["channel"]["id"]
        event_type: str = body["type"]
        reference: str = body["transaction"]["reference"]
        customer: dict[str, Any] = body["customer"]
        email: str = customer["email"]
        key = (channel_id, event_type, reference)
        transaction_id = self.transactions.get(key)
        if transaction_id is None:
            transaction_id = self.new_id("txn")
            self.transactions[key] = transaction_id
            status_name, status_reason = "SCHEDULED", None
        else:
            # eTrusted has no idempotency key: it accepts the repeat and rejects its invite.
            status_name, status_reason = "REJECTED", "DUPLICATE"
        customer_id = self.customers.get(email.lower())
        if customer_id is None:
            customer_id = self.new_id("cst")
            self.customers[email.lower()] = customer_id
        created = iso(now)
        index = len(self.invites)
        invite = Invite(
            id=self.new_id("inv"),
            channel_id=channel_id,
            event_ref=ref,
            created_at=now,
            ready_at=now + self.config.processing_delay,
            customer_id=customer_id,
            email=email,
            first_name=customer.get("firstName"),
            last_name=customer.get("lastName"),
            transaction_id=transaction_id,
            reference=reference,
            transaction_date=body["transaction"].get("date", created),
            scheduled_at=self._scheduled_at(channel_id, event_type, now),
            estimated_delivery_date=body.get("estimatedDeliveryDate"),
            locale=body.get("defaultLocale") or self.channels[channel_id].locale,
            review_type="SERVICE_AND_PRODUCT_REVIEW" if body.get("products") else "SERVICE_REVIEW",
            status_name=status_name,
            status_reason=status_reason,
        )
        self.invites.append(invite)
        self.index_invite(invite, index)

    def index_invite(self, invite: Invite, index: int) -> None:
        self.invite_index[invite.id] = index
        self.channel_invites.setdefault(invite.channel_id, []).append(index)
        terms = {invite.reference.lower(), invite.email.lower()}
        for term in terms:
            self.invite_search.setdefault((invite.channel_id, term), []).append(index)

    def _scheduled_at(self, channel_id: str, event_type: str, now: float) -> str:
        delay: float = self.config.default_sending_delay_days
        time_of_day = _DEFAULT_TIME_OF_DAY
        settings = self._settings_for(channel_id, event_type)
        if settings is not None:
            service = settings.service
            delay, time_of_day = service.sending_delay_in_days, service.sending_time_of_day
        day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=delay)
        hour, minute, second = (int(part) for part in time_of_day.rstrip("Z").split(":"))
        moment = datetime.combine(day, time(hour, minute, second), UTC)
        return iso(moment.timestamp())

    # -- invites --------------------------------------------------------------------------

    def list_invites(
        self,
        channel_id: str,
        *,
        count: int,
        after: str | None = None,
        before: str | None = None,
        query: str | None = None,
    ) -> InvitePage:
        """Newest first, cursor-paginated; ``after`` = older than, ``before`` = newer than.

        Raises UnknownCursorError for a cursor that is not an invite of this channel.
        """
        if query is not None:
            positions = self.invite_search.get((channel_id, query.lower()), [])
        else:
            positions = self.channel_invites.get(channel_id, [])
        now = self._clock()
        invites = self.invites
        # Processing is in arrival order, so the readable invites are a prefix.
        ready = bisect.bisect_right(positions, now, key=lambda i: invites[i].ready_at)
        if after is not None:
            end = min(bisect.bisect_left(positions, self._cursor(channel_id, after)), ready)
            start = max(0, end - count)
        elif before is not None:
            start = min(bisect.bisect_right(positions, self._cursor(channel_id, before)), ready)
            end = min(ready, start + count)
        else:
            end = ready
            start = max(0, end - count)
        items = [invites[positions[i]] for i in range(end - 1, start - 1, -1)]
        return InvitePage(items=items, has_older=start > 0, has_newer=end < ready)

    def _cursor(self, channel_id: str, invite_id: str) -> int:
        index = self.invite_index.get(invite_id)
        if index is None or self.invites[index].channel_id != channel_id:
            raise UnknownCursorError(invite_id)
        return index

    # -- event types and invite settings --------------------------------------------------

    def create_event_type(
        self,
        name: str,
        *,
        active: bool,
        settings_enabled: bool = False,
        immediate: bool = False,
    ) -> EventType | None:
        """None when the name is taken (the caller answers 409)."""
        if name in self.event_type_by_name:
            return None
        now = self._clock()
        event_type = EventType(
            id=self.new_id("ety"), name=name, active=active, created_at=now, updated_at=now
        )
        self.event_types[event_type.id] = event_type
        self.event_type_by_name[name] = event_type.id
        visible_at = now if immediate else now + self.config.invite_settings_delay
        for channel_id in self.channels:
            self._create_settings(channel_id, event_type.id, settings_enabled, now, visible_at)
        return event_type

    def _create_settings(
        self, channel_id: str, type_id: str, enabled: bool, now: float, visible_at: float
    ) -> None:
        def configuration() -> InviteConfiguration:
            return InviteConfiguration(
                sending_delay_in_days=self.config.default_sending_delay_days,
                sending_time_of_day=_DEFAULT_TIME_OF_DAY,
                invite_template_id=self.new_id("tpl"),
                questionnaire_template_id=self.new_id("qst"),
                enabled=enabled,
            )

        settings = InviteSettings(
            id=self.new_id("is"),
            channel_id=channel_id,
            event_type_id=type_id,
            enabled=enabled,
            product=configuration(),
            service=configuration(),
            created_at=now,
            updated_at=now,
            visible_at=visible_at,
        )
        self.settings[settings.id] = settings
        self.settings_by_pair[(channel_id, type_id)] = settings.id

    def list_event_types(self, name: str | None = None) -> list[EventType]:
        if name is None:
            return list(self.event_types.values())
        type_id = self.event_type_by_name.get(name)
        return [] if type_id is None else [self.event_types[type_id]]

    def set_event_type_active(self, type_id: str, active: bool) -> EventType | None:
        event_type = self.event_types.get(type_id)
        if event_type is not None:
            event_type.active = active
            event_type.updated_at = self._clock()
        return event_type

    def delete_event_type(self, type_id: str) -> bool:
        event_type = self.event_types.pop(type_id, None)
        if event_type is None:
            return False
        del self.event_type_by_name[event_type.name]
        for channel_id in self.channels:
            settings_id = self.settings_by_pair.pop((channel_id, type_id), None)
            if settings_id is not None:
                del self.settings[settings_id]
        return True

    def visible_settings(
        self,
        *,
        settings_id: str | None = None,
        channel_id: str | None = None,
        event_type_id: str | None = None,
    ) -> list[InviteSettings]:
        now = self._clock()
        candidates: Iterable[InviteSettings]
        if settings_id is not None:
            found = self.settings.get(settings_id)
            candidates = () if found is None else (found,)
        else:
            candidates = self.settings.values()
        return [
            s
            for s in candidates
            if s.visible_at <= now
            and (channel_id is None or s.channel_id == channel_id)
            and (event_type_id is None or s.event_type_id == event_type_id)
        ]

    def patch_settings(self, settings: Iterable[InviteSettings], patch: dict[str, Any]) -> None:
        now = self._clock()
        for item in settings:
            item.apply(patch, now)

    # -- channels -------------------------------------------------------------------------

    def update_channel(self, channel_id: str, body: dict[str, Any]) -> Channel | None:
        channel = self.channels.get(channel_id)
        if channel is None:
            return None
        channel.name = body["name"]
        channel.address = body.get("address", channel.address)
        channel.url = body.get("url", channel.url)
        channel.logo_url = body.get("logoUrl", channel.logo_url)
        channel.locale = body.get("locale", channel.locale)
        channel.updated_at = self._clock()
        return channel
