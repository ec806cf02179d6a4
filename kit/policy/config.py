"""A source's trigger policy, as frozen values: what fires, when, for whom, on which channel.

Built by the TOML loader (or by hand when embedding); every check happens here, at start-up,
so a policy that cannot work (a reserved event type, a fallback on a trigger that has no
delivery to wait for, two triggers fighting over one key) never reaches the first webhook.
Durations are :class:`~datetime.timedelta` values; :func:`duration` reads ``"3d"``-style text.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from kit.errors import ConfigError, ValidationError
from kit.validation import RESERVED_EVENT_TYPE, validate_event_type_name

_DURATION = re.compile(r"\s*(\d+)\s*([dhms])\s*\Z")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def duration(value: timedelta | str | int) -> timedelta:
    """``"3d"``, ``"12h"``, ``"30m"``, ``"45s"`` or a number of seconds; never negative."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int) and not isinstance(value, bool):
        result = timedelta(seconds=value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        result = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        raise ConfigError(f"not a duration (use e.g. '3d', '12h', '30m'): {value!r}")
    if result < timedelta(0):
        raise ConfigError(f"a duration must not be negative: {value!r}")
    return result


def _optional_duration(value: timedelta | str | int | None) -> timedelta | None:
    return None if value is None else duration(value)


def _names(values: Iterable[str]) -> frozenset[str]:
    """Tags, SKUs, channels: compared without case and surrounding blanks."""
    if isinstance(values, str):
        raise ConfigError(f"expected a list of names, got the string {values!r}")
    return frozenset(v.strip().casefold() for v in values if v.strip())


def _countries(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise ConfigError(f"expected a list of country codes, got the string {values!r}")
    return frozenset(v.strip().upper() for v in values if v.strip())


def _patterns(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ConfigError(f"expected a list of e-mail patterns, got the string {values!r}")
    return tuple(v.strip().casefold() for v in values if v.strip())


def _channels(values: Mapping[str, str] | Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    pairs = values.items() if isinstance(values, Mapping) else values
    return tuple(sorted((locale.strip(), channel.strip()) for locale, channel in pairs))


def _decimal(value: Decimal | str | int | None) -> Decimal | None:
    if value is None:
        return None
    try:
        parsed = Decimal(str(value))
    except ArithmeticError:
        raise ConfigError(f"minimum_total is not a number: {value!r}") from None
    if not parsed.is_finite() or parsed < 0:
        raise ConfigError(f"minimum_total must be a number >= 0, got {value!r}")
    return parsed


class TriggerOn(enum.StrEnum):
    """The domain events a trigger can fire on (their ``kind`` names)."""

    ORDER_PLACED = "order_placed"
    ORDER_PAID = "order_paid"
    ORDER_FULFILLED = "order_fulfilled"  # the first shipment
    ORDER_DELIVERED = "order_delivered"  # the first delivered shipment (see delivered_fallback)
    SUBSCRIPTION_RENEWED = "subscription_renewed"  # a renewal, chosen by ``renewals``
    SUBSCRIPTION_CREATED = "subscription_created"  # the charge that started a subscription


SUBSCRIPTION_TRIGGERS = frozenset({TriggerOn.SUBSCRIPTION_RENEWED, TriggerOn.SUBSCRIPTION_CREATED})


class Renewals(enum.StrEnum):
    """Which renewals of a subscription a ``subscription_renewed`` trigger fires on."""

    ALL = "all"
    FIRST = "first"
    EVERY_NTH = "every_nth"  # the Nth, 2Nth, ... renewal (``nth = N``)


DEFAULT_RENEWALS = Renewals.FIRST
DEFAULT_RENEWAL_PER_CUSTOMER = timedelta(days=90)
"""The conservative default of a renewal trigger: a subscriber is asked once, after the first
renewal (they have used what they pay for, and chose to keep it), and no customer hears from the
kit more than once a quarter, however many subscriptions they hold."""


class ConsentMode(enum.StrEnum):
    """Whose orders may become invites, read from the platform's marketing consent.

    ``all`` is how Trusted Shops' own plugins behave (the merchant answers for consent, e.g.
    through its terms); ``unless_opted_out`` leaves out customers who withdrew their marketing
    consent; ``opted_in_only`` invites only customers who gave it, the reading of GDPR Art. 7
    that eTrusted's documentation asks for outside checkout.
    """

    ALL = "all"
    UNLESS_OPTED_OUT = "unless_opted_out"
    OPTED_IN_ONLY = "opted_in_only"


E = TypeVar("E", bound=enum.Enum)


def _choice(cls: type[E], value: E | str) -> E:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in cls)
        raise ConfigError(f"{value!r} is not one of {choices}") from None


def _trigger_on(value: TriggerOn | str) -> TriggerOn:
    return _choice(TriggerOn, value)


def _consent_mode(value: ConsentMode | str) -> ConsentMode:
    return _choice(ConsentMode, value)


def _optional_renewals(value: Renewals | str | None) -> Renewals | None:
    return None if value is None else _choice(Renewals, value)


def _nth(value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"nth must be a whole number >= 1, got {value!r}")
    return value


def _per_customer_default(trigger: Trigger) -> timedelta | None:
    if trigger.on is TriggerOn.SUBSCRIPTION_RENEWED:
        return DEFAULT_RENEWAL_PER_CUSTOMER
    return None


def _event_type(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        validate_event_type_name(value)
    except ValidationError as exc:
        raise ConfigError(f"event_type {value!r}: {exc.errors[0].message}") from exc
    if value == RESERVED_EVENT_TYPE:
        raise ConfigError("event_type 'checkout' is reserved for the Trustbadge; use your own")


@attrs.frozen(kw_only=True)
class Trigger:
    """One domain event -> one eTrusted event type, with its hold-back delays.

    ``delay`` becomes the entry's ``send_after`` (counted from when the event happened in the
    shop): a cancellation inside it withdraws the invite. Point-of-sale orders take
    ``delay_pos`` and orders shipped abroad ``delay_international`` when set. With
    ``on = "order_delivered"``, ``delivered_fallback`` sends that long after the first
    fulfilment when no delivery is ever reported (many carriers never report one).
    ``per_customer`` sends at most one invite per e-mail address within that time (``"0d"``:
    no limit); a ``subscription_renewed`` trigger defaults to 90 days.

    Renewal triggers only: ``renewals`` picks which renewals fire (``"first"`` unless set;
    ``"every_nth"`` with ``nth``), and ``min_subscription_age`` leaves out renewals of a
    subscription younger than that (see :mod:`kit.policy.renewals`).
    """

    on: TriggerOn = attrs.field(converter=_trigger_on)
    event_type: str = attrs.field(validator=_event_type)
    delay: timedelta = attrs.field(default=timedelta(0), converter=duration)
    delay_international: timedelta | None = attrs.field(default=None, converter=_optional_duration)
    delay_pos: timedelta | None = attrs.field(default=None, converter=_optional_duration)
    delivered_fallback: timedelta | None = attrs.field(default=None, converter=_optional_duration)
    per_customer: timedelta | None = attrs.field(
        default=attrs.Factory(_per_customer_default, takes_self=True),
        converter=_optional_duration,
    )
    renewals: Renewals | None = attrs.field(default=None, converter=_optional_renewals)
    nth: int | None = attrs.field(default=None, converter=_nth)
    min_subscription_age: timedelta | None = attrs.field(default=None, converter=_optional_duration)

    def __attrs_post_init__(self) -> None:
        if self.delivered_fallback is not None and self.on is not TriggerOn.ORDER_DELIVERED:
            raise ConfigError(
                f"delivered_fallback needs on = 'order_delivered', not {self.on.value!r}"
            )
        renewal_keys = [
            name
            for name in ("renewals", "nth", "min_subscription_age")
            if getattr(self, name) is not None
        ]
        if renewal_keys and self.on is not TriggerOn.SUBSCRIPTION_RENEWED:
            raise ConfigError(
                f"{renewal_keys[0]} needs on = 'subscription_renewed', not {self.on.value!r}"
            )
        if self.renewal_rule is Renewals.EVERY_NTH and self.nth is None:
            raise ConfigError("renewals = 'every_nth' needs nth = N (fire on every Nth renewal)")
        if self.nth is not None and self.renewal_rule is not Renewals.EVERY_NTH:
            raise ConfigError(f"nth needs renewals = 'every_nth', not {self.renewal_rule.value!r}")

    @property
    def renewal_rule(self) -> Renewals:
        """The renewals this trigger fires on (the conservative default when not set)."""
        return self.renewals if self.renewals is not None else DEFAULT_RENEWALS


@attrs.frozen(kw_only=True)
class Exclusions:
    """Orders that never become invites, each skipped with its own reason.

    Orders without an e-mail are always skipped (``no_email``): there is no one to invite.
    Names compare without case. ``email_blocklist`` holds shell-style patterns
    (``*@example.com``, ``test+*@*``). A ``minimum_total`` is in the shop's currency.
    Excluded products are left out of the invite; an order left with none is skipped.
    """

    test_orders: bool = True
    gift_card_only: bool = True
    point_of_sale: bool = False
    order_tags: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    customer_tags: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    skus: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    product_ids: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    countries: frozenset[str] = attrs.field(default=frozenset(), converter=_countries)
    sales_channels: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    minimum_total: Decimal | None = attrs.field(default=None, converter=_decimal)
    email_blocklist: tuple[str, ...] = attrs.field(default=(), converter=_patterns)


DEFAULT_TRIGGERS = (Trigger(on=TriggerOn.ORDER_FULFILLED, event_type="order_shipped"),)


def _triggers(values: Iterable[Trigger]) -> tuple[Trigger, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class PolicyConfig:
    """One source's policy. The default: one ``order_shipped`` per order, on its first
    fulfilment, at once; test orders and orders without an e-mail skipped.

    The channel is ``channel_id`` unless ``channels_by_locale`` names one for the order's
    locale (``de_DE``) or its language (``de``). ``home_countries`` defines "international":
    an order shipped to a country outside them (none set: no order is international).
    """

    channel_id: str | None = None
    channels_by_locale: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_channels)
    triggers: tuple[Trigger, ...] = attrs.field(default=DEFAULT_TRIGGERS, converter=_triggers)
    exclusions: Exclusions = Exclusions()
    consent: ConsentMode = attrs.field(default=ConsentMode.ALL, converter=_consent_mode)
    home_countries: frozenset[str] = attrs.field(default=frozenset(), converter=_countries)

    def __attrs_post_init__(self) -> None:
        if not self.channel_id and not self.channels_by_locale:
            raise ConfigError("a source needs channel_id or channels_by_locale")
        if not self.triggers:
            raise ConfigError("a source needs at least one trigger")
        types = [trigger.event_type for trigger in self.triggers]
        doubled = sorted({t for t in types if types.count(t) > 1})
        if doubled:
            raise ConfigError(
                f"two triggers send event_type {doubled[0]!r}; one order would need two "
                "invites under one key"
            )


__all__ = [
    "DEFAULT_RENEWALS",
    "DEFAULT_RENEWAL_PER_CUSTOMER",
    "DEFAULT_TRIGGERS",
    "SUBSCRIPTION_TRIGGERS",
    "ConsentMode",
    "Exclusions",
    "PolicyConfig",
    "Renewals",
    "Trigger",
    "TriggerOn",
    "duration",
]
