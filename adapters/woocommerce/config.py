"""A WooCommerce source's own settings (the adapter keys of a ``[[sources]]`` table)."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import attrs

from kit.adapters import check_url_template
from kit.config import http_url
from kit.configfile.model import Secret
from kit.errors import ConfigError
from kit.feeds.settings import check_polling, max_age_field, poll_interval_field, polling

CANCELLING_STATUSES = frozenset({"cancelled", "refunded"})
"""Statuses that withdraw an invite; they can never also mean "fulfilled"."""


class ReferenceField(enum.StrEnum):
    """Which order field becomes eTrusted's ``transaction.reference``.

    ``number`` is what the buyer and the merchant see (sequential-number plugins make it differ
    from the id); ``id`` is WooCommerce's internal post or order id.
    """

    NUMBER = "number"
    ID = "id"


def _reference(value: ReferenceField | str) -> ReferenceField:
    try:
        return ReferenceField(value)
    except ValueError:
        choices = ", ".join(field.value for field in ReferenceField)
        raise ConfigError(f"reference must be one of {choices}, got {value!r}") from None


def status_name(value: str) -> str:
    """An order status as the REST API spells it: lower case, without the ``wc-`` prefix that
    the database (and some shipping plugins' settings pages) show."""
    name = value.strip().lower()
    return name.removeprefix("wc-")


def _statuses(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        raise ConfigError(
            f"fulfilled_statuses must be a list of statuses, got the string {values!r}"
        )
    names = frozenset(status_name(v) for v in values if v.strip())
    if not names:
        raise ConfigError("fulfilled_statuses must name at least one status, e.g. 'completed'")
    clash = sorted(names & CANCELLING_STATUSES)
    if clash:
        raise ConfigError(
            f"fulfilled_statuses may not contain {clash[0]!r}: that status cancels the invite"
        )
    return names


def _store_url(value: str) -> str:
    return value.strip().rstrip("/")


PRODUCT_URL_FIELDS = ("product_id", "variation_id", "sku")


def _url_template(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    check_url_template(attribute.name, value, PRODUCT_URL_FIELDS)


@attrs.frozen(kw_only=True)
class WooCommerceConfig:
    """What the WooCommerce adapter needs to know about one store.

    ``store_url`` is the site's address (``https://shop.example``, or with the path of a
    WordPress installed in a folder); the REST API lives below it at ``/wp-json/wc/v3``. The
    REST API key (``consumer_key``, ``consumer_secret``, read access) is only needed by the
    order feed: without it the source takes webhooks alone. Basic auth sends the key with every
    request, so a plain-http ``store_url`` is refused unless ``allow_insecure_http`` is set
    (a local stand-in, a shop behind a TLS-terminating proxy on the same host).

    Order lines carry no product URL, and eTrusted shows a product only with one:
    ``product_url`` is a template (``{product_id}``, ``{variation_id}``, ``{sku}``), e.g.
    ``https://shop.example/?post_type=product&p={product_id}``, which WordPress redirects to
    the product's page. Without it an invite names no products. ``max_age``: orders the feed
    finds that were placed longer ago are skipped ``too_old``.
    """

    store_url: str = attrs.field(converter=_store_url, validator=http_url)
    consumer_key: Secret | None = None
    consumer_secret: Secret | None = None
    poll_interval: timedelta | None = poll_interval_field()
    max_age: timedelta = max_age_field()
    fulfilled_statuses: frozenset[str] = attrs.field(
        default=frozenset({"completed"}), converter=_statuses
    )
    reference: ReferenceField = attrs.field(default=ReferenceField.NUMBER, converter=_reference)
    product_url: str | None = attrs.field(default=None, validator=_url_template)
    allow_insecure_http: bool = False

    def __attrs_post_init__(self) -> None:
        if urlsplit(self.store_url).scheme != "https" and not self.allow_insecure_http:
            raise ConfigError(
                f"store_url {self.store_url!r} is plain http: the REST API key would cross the "
                "network readable; use https, or set allow_insecure_http = true for a store "
                "reached only over a trusted link"
            )
        if (self.consumer_key is None) != (self.consumer_secret is None):
            missing = "consumer_secret" if self.consumer_secret is None else "consumer_key"
            raise ConfigError(
                f"{missing} is missing: the REST API key is a consumer_key and consumer_secret pair"
            )
        check_polling(
            self.poll_interval,
            credentials=self.consumer_key is not None,
            needs="consumer_key and consumer_secret",
        )

    @property
    def orders_url(self) -> str:
        """The REST v3 orders listing the feed reads."""
        return f"{self.store_url}/wp-json/wc/v3/orders"

    @property
    def store_host(self) -> str:
        """The store's host name, lower case (what ``X-WC-Webhook-Source`` must name)."""
        return (urlsplit(self.store_url).hostname or "").lower()

    @property
    def polling(self) -> timedelta | None:
        """How often the order feed runs: ``None`` when it is off (no REST API key, or
        ``poll_interval = 0``), else ``poll_interval`` (see :mod:`kit.feeds.settings`)."""
        return polling(self.poll_interval, credentials=self.consumer_key is not None)

    def api_credentials(self) -> tuple[str, str] | None:
        """The REST API key pair, revealed, for the feed's Basic auth; ``None`` without it."""
        if self.consumer_key is None or self.consumer_secret is None:
            return None
        return self.consumer_key.value, self.consumer_secret.value


__all__ = [
    "CANCELLING_STATUSES",
    "PRODUCT_URL_FIELDS",
    "ReferenceField",
    "WooCommerceConfig",
    "status_name",
]
