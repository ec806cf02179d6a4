"""How a sandbox behaves: credentials, timing, seeds and what the account starts with.

Frozen and explicit like every kit config: the CLI builds one from flags, tests build one
inline. Nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from kit.config import DEFAULT_AUDIENCE, positive
from kit.errors import ConfigError
from kit.validation import event_type_name_errors

SEEDED_CHANNEL_IDS: tuple[str, ...] = (
    "chl-00000000-0000-4000-8000-000000000001",
    "chl-00000000-0000-4000-8000-000000000002",
)
SEEDED_ACCOUNT_REF = "acc-00000000-0000-4000-8000-000000000001"


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ConfigError(f"{attribute.name} must be >= 0, got {value!r}")


def _not_empty(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value:
        raise ConfigError(f"{attribute.name} must not be empty")


def _names(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    if len(set(value)) != len(value) or not all(value):
        raise ConfigError(f"{attribute.name} must be distinct, non-empty strings, got {value!r}")


def _type_names(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    """Seeded types obey the rule POST /event-types enforces: a test suite seeded with a name
    eTrusted refuses would pass here and fail against the real account."""
    _names(instance, attribute, value)
    for name in value:
        errors = event_type_name_errors(name)
        if errors:
            raise ConfigError(f"{attribute.name}: {name!r} {errors[0].message}")


def _as_tuple(values: Iterable[str]) -> tuple[str, ...]:
    """A typed converter, so that ``SandboxConfig(event_types=[...])`` passes mypy --strict."""
    return tuple(values)


@attrs.frozen(kw_only=True)
class SandboxConfig:
    """Everything a :class:`~kit.sandbox.Sandbox` needs; the defaults suit tests and demos."""

    client_id: str = attrs.field(default="sandbox-client", validator=_not_empty)
    client_secret: str = attrs.field(default="sandbox-secret", repr=False, validator=_not_empty)
    # The only ``audience`` the token endpoint accepts (a request may also leave it out).
    audience: str = attrs.field(default=DEFAULT_AUDIENCE, validator=_not_empty)
    # Echoed as ``expires_in``; tokens stop working this many seconds after issue.
    token_expires_in: int = attrs.field(default=300, validator=positive)
    # Seconds until an accepted event is readable by GET /events/{ref} and its invite listed:
    # eTrusted answers 202 and processes later, so clients must not expect read-your-writes.
    processing_delay: float = attrs.field(default=0.0, validator=_non_negative)
    # Seeds the RNG for ids and fault probabilities, so a run can be replayed exactly.
    seed: int | None = None
    account_ref: str = attrs.field(default=SEEDED_ACCOUNT_REF, validator=_not_empty)
    channel_ids: tuple[str, ...] = attrs.field(
        default=SEEDED_CHANNEL_IDS, converter=_as_tuple, validator=_names
    )
    # Active event types the account starts with (eTrusted seeds ``checkout`` for everyone).
    event_types: tuple[str, ...] = attrs.field(
        default=("checkout",), converter=_as_tuple, validator=_type_names
    )
    # Invite settings of a new event type appear only after this many seconds (eTrusted's own
    # connector retries its PATCH, which suggests they are created asynchronously).
    invite_settings_delay: float = attrs.field(default=0.0, validator=_non_negative)
    # Default ``sendingDelayInDays`` of new invite settings.
    default_sending_delay_days: int = attrs.field(default=3, validator=_non_negative)
    # Events for a channel the account does not have are accepted and silently dropped (never
    # readable, no invite), as eTrusted is believed to do. Strict mode answers 400 instead.
    strict_channels: bool = False
    # Create no invite for an event whose channel and type have invite settings with
    # ``enabled: false``. Off by default: the public material does not say what eTrusted does
    # then, and a type created through the API starts disabled. Switch it on to rehearse a
    # touchpoint with invites switched off (the kit then cannot reconcile in-doubt events).
    invites_follow_settings: bool = False
