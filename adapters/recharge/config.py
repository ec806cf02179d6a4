"""A Recharge source's own settings (the adapter keys of a ``[[sources]]`` table)."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from kit.adapters import check_url_template
from kit.errors import ConfigError
from kit.policy import duration

URL_PLACEHOLDERS = ("handle", "product_id", "variant_id", "sku")
DEFAULT_TOLERANCE = timedelta(hours=48)


class SignatureScheme(enum.StrEnum):
    """Which of Recharge's signature headers a source accepts.

    ``auto`` takes the timestamped header when a delivery has one, else the legacy one.
    ``timestamped`` refuses legacy-only deliveries: the legacy digest carries no time, so only
    this setting makes an old delivery replayed without its timestamped header fail.
    """

    AUTO = "auto"
    TIMESTAMPED = "timestamped"
    LEGACY = "legacy"


def _scheme(value: SignatureScheme | str) -> SignatureScheme:
    try:
        return SignatureScheme(value)
    except ValueError:
        choices = ", ".join(repr(s.value) for s in SignatureScheme)
        raise ConfigError(f"signature must be one of {choices}, got {value!r}") from None


def _shop_domain(value: str) -> str:
    return value.strip().lower()


def _topic(value: str | None) -> str | None:
    return None if value is None else value.strip().lower() or None


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone must be an IANA time zone such as 'UTC', got {value!r}"
        ) from None
    return value


def _url_template(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    check_url_template(attribute.name, value, URL_PLACEHOLDERS)


@attrs.frozen(kw_only=True)
class RechargeConfig:
    """What the Recharge adapter needs to know about one Recharge store.

    ``shop_domain`` is the Shopify shop Recharge runs on: a renewal is named by the Shopify order
    it created there, so its invite shares the key of that order's own webhooks
    (:mod:`kit.renewals`). ``tolerance`` is how old a timestamped signature may be (Recharge
    retries for 48 hours). ``topic`` is the topic of every delivery to this source when
    Recharge sends no ``X-Recharge-Topic`` (one source per webhook address). ``timezone``
    places Recharge timestamps that carry no offset.
    """

    shop_domain: str = attrs.field(converter=_shop_domain)
    signature: SignatureScheme = attrs.field(default=SignatureScheme.AUTO, converter=_scheme)
    tolerance: timedelta = attrs.field(default=DEFAULT_TOLERANCE, converter=duration)
    topic: str | None = attrs.field(default=None, converter=_topic)
    timezone: str = attrs.field(default="UTC", converter=_timezone)
    product_url: str | None = attrs.field(default=None, validator=_url_template)

    def __attrs_post_init__(self) -> None:
        if not self.shop_domain or "/" in self.shop_domain or " " in self.shop_domain:
            raise ConfigError(f"shop_domain must be a host name, got {self.shop_domain!r}")
        if self.tolerance <= timedelta(0):
            raise ConfigError("tolerance must be longer than 0s")


__all__ = ["DEFAULT_TOLERANCE", "URL_PLACEHOLDERS", "RechargeConfig", "SignatureScheme"]
