"""A Shopify source's own settings (the adapter keys of a ``[[sources]]`` table)."""

from __future__ import annotations

import enum
import re
from datetime import timedelta
from typing import Any

import attrs

from kit.adapters import check_url_template
from kit.configfile.model import Secret
from kit.errors import ConfigError
from kit.feeds.settings import check_polling, max_age_field, poll_interval_field, polling
from kit.renewals import CONTRACT_SOURCE_NAMES, RECURRING_ORDER_TAGS

URL_PLACEHOLDERS = ("product_id", "variant_id", "sku")


class ReferenceField(enum.StrEnum):
    """Which order field becomes eTrusted's ``transaction.reference``.

    ``name`` (``#1042``) is what the merchant and the buyer see, and what eTrusted's invite
    history shows; ``order_number`` drops the shop's prefix; ``id`` is Shopify's internal id.
    """

    NAME = "name"
    ORDER_NUMBER = "order_number"
    ID = "id"


def _reference(value: ReferenceField | str) -> ReferenceField:
    try:
        return ReferenceField(value)
    except ValueError:
        choices = ", ".join(field.value for field in ReferenceField)
        raise ConfigError(f"reference must be one of {choices}, got {value!r}") from None


def _shop_domain(value: str) -> str:
    return value.strip().lower()


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or value < 0):
        raise ConfigError(f"{attribute.name} must be a whole number of days >= 0, got {value!r}")


def _strings(values: Any) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"expected a list of strings, got {values!r}")
    return tuple(v.strip() for v in values if v.strip())


def _url_template(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    check_url_template(attribute.name, value, URL_PLACEHOLDERS)


_API_VERSION = re.compile(r"\d{4}-\d{2}\Z")
DEFAULT_API_VERSION = "2025-07"


def _api_version(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not _API_VERSION.match(value):
        raise ConfigError(f"{attribute.name} must look like '2025-07', got {value!r}")


def _base_url(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and not value.startswith(("https://", "http://")):
        raise ConfigError(f"{attribute.name} must be an http(s) URL, got {value!r}")


@attrs.frozen(kw_only=True)
class ShopifyConfig:
    """What the Shopify adapter needs to know about one shop.

    Order webhooks carry no product URL, image or barcode; ``product_url`` is a template
    (``{product_id}``, ``{variant_id}``, ``{sku}``) for shops that can resolve one, otherwise the
    products stay out of the event until an enriching source fills them in. ``transit_days``
    gives an estimated delivery date when the fulfilment carries none.

    An order tagged with one of ``renewal_tags`` (not ``Prepaid``) or created through one of
    ``renewal_source_names`` is a subscription renewal's order: it is reported as a renewal
    too, under the key its subscription app's webhook uses (:mod:`kit.renewals`).

    The order feed (polling and backfill, :mod:`adapters.shopify.feed`) reads the GraphQL Admin
    API of ``api_base_url`` (default ``https://{shop_domain}``) in ``api_version`` with
    ``admin_access_token``; without a token the source has webhooks only. ``max_age``: orders
    placed longer ago are skipped ``too_old``.
    """

    shop_domain: str = attrs.field(converter=_shop_domain)
    reference: ReferenceField = attrs.field(default=ReferenceField.NAME, converter=_reference)
    transit_days: int | None = attrs.field(default=None, validator=_non_negative)
    product_url: str | None = attrs.field(default=None, validator=_url_template)
    renewal_tags: tuple[str, ...] = attrs.field(default=RECURRING_ORDER_TAGS, converter=_strings)
    renewal_source_names: tuple[str, ...] = attrs.field(
        default=CONTRACT_SOURCE_NAMES, converter=_strings
    )
    admin_access_token: Secret | None = None
    api_version: str = attrs.field(default=DEFAULT_API_VERSION, validator=_api_version)
    poll_interval: timedelta | None = poll_interval_field()
    api_base_url: str | None = attrs.field(default=None, validator=_base_url)
    max_age: timedelta = max_age_field()

    @property
    def graphql_url(self) -> str:
        base = (self.api_base_url or f"https://{self.shop_domain}").rstrip("/")
        return f"{base}/admin/api/{self.api_version}/graphql.json"

    @property
    def polling(self) -> timedelta | None:
        """How often ``serve`` polls: ``None`` without ``admin_access_token`` or at
        ``poll_interval = 0`` (see :mod:`kit.feeds.settings`)."""
        return polling(self.poll_interval, credentials=self.admin_access_token is not None)

    def __attrs_post_init__(self) -> None:
        if not self.shop_domain or "/" in self.shop_domain or " " in self.shop_domain:
            raise ConfigError(f"shop_domain must be a host name, got {self.shop_domain!r}")
        check_polling(
            self.poll_interval,
            credentials=self.admin_access_token is not None,
            needs="admin_access_token",
        )


__all__ = ["DEFAULT_API_VERSION", "ReferenceField", "ShopifyConfig"]
