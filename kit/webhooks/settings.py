"""How the HTTP intake takes deliveries in: its body cap, its routes and its answer to a
retryable failure."""

from __future__ import annotations

import re
from typing import Any

import attrs

from kit.errors import ConfigError

DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024

# Literal path segments only: the prefix becomes part of an aiohttp route, where braces would
# turn it into a pattern, and a trailing slash would make ``/webhooks//my-shop``.
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)*\Z")


def _whole_number(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name} must be a whole number >= 1, got {value!r}")


def _prefix(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not _PREFIX.match(value):
        raise ConfigError(
            f"{attribute.name} must be empty or a path such as '/webhooks' (segments of letters,"
            f" digits, '.', '_', '~' or '-', no trailing slash), got {value!r}"
        )


@attrs.frozen(kw_only=True)
class WebhookSettings:
    """The intake's HTTP settings.

    ``max_body_bytes`` caps a delivery's body: Shopify's largest order payloads stay far below
    the 2 MiB default, and anything beyond it is refused (413) before it is held in memory.
    ``retry_after`` is the ``Retry-After`` (seconds) of a 503, when the database failed and the
    platform should send the delivery again.
    """

    max_body_bytes: int = attrs.field(default=DEFAULT_MAX_BODY_BYTES, validator=_whole_number)
    path_prefix: str = attrs.field(default="/webhooks", validator=_prefix)
    retry_after: int = attrs.field(default=10, validator=_whole_number)

    def route(self, source: str) -> str:
        """The path a source's deliveries are posted to."""
        return f"{self.path_prefix}/{source}"


__all__ = ["DEFAULT_MAX_BODY_BYTES", "WebhookSettings"]
