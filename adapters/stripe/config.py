"""A Stripe source's own settings (the adapter keys of a ``[[sources]]`` table).

The signing secrets (``whsec_...``) are the source's ``webhook_secrets``, like every push
adapter's: the intake hands them to :meth:`StripeAdapter.verify`, so this object never holds one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from kit.adapters import check_url_template
from kit.errors import ConfigError
from kit.policy import duration

URL_PLACEHOLDERS = ("product_id", "price_id")

DEFAULT_TOLERANCE = timedelta(minutes=5)
"""Stripe's own libraries accept a signature timestamp up to 300 s old."""


def _tolerance(value: timedelta | str | int) -> timedelta:
    result = duration(value)
    if result <= timedelta(0):
        raise ConfigError(f"tolerance must be longer than zero, got {value!r}")
    return result


def _url_template(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    check_url_template(attribute.name, value, URL_PLACEHOLDERS)


def _account(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith("acct_") or len(value) < 6 or not value.isascii():
        raise ConfigError(f"account must be a Stripe account id (acct_...), got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class StripeConfig:
    """What the Stripe adapter needs to know about one Stripe account.

    ``tolerance``: how far a delivery's signed timestamp may be from the moment the intake took
    it in, either way (a replayed delivery is older; a clock set wrong is in the future).
    ``account``: the Stripe account id, the second part of each outbox key (the source's name
    when not given). ``product_url``: a template (``{product_id}``, ``{price_id}``) for the
    invite's product links; without it invoice lines stay out of the invite, which then asks
    for a review of the shop.
    """

    tolerance: timedelta = attrs.field(default=DEFAULT_TOLERANCE, converter=_tolerance)
    account: str | None = attrs.field(default=None, converter=_account)
    product_url: str | None = attrs.field(default=None, validator=_url_template)


__all__ = ["DEFAULT_TOLERANCE", "URL_PLACEHOLDERS", "StripeConfig"]
