"""How ``serve`` listens and how long it lets requests finish when it stops."""

from __future__ import annotations

from typing import Any

import attrs

from kit.config import positive
from kit.errors import ConfigError
from kit.webhooks import WebhookSettings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_SHUTDOWN_GRACE = 10.0
DEFAULT_FEED_LEASE = 30.0


def _port(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"{attribute.name} must be a whole number 0..65535, got {value!r}")


def _host(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{attribute.name} must name an address to listen on, got {value!r}")


@attrs.frozen(kw_only=True)
class ServeSettings:
    """The listener of :class:`~kit.serve.Service`.

    ``host`` defaults to loopback: a shop platform reaches the kit through a reverse proxy or a
    tunnel that terminates TLS, never on a bare port. ``port`` 0 picks a free one (the service
    reports which). ``shutdown_grace`` bounds how long requests in flight may take once a stop
    was asked for; platforms give up on a webhook after a few seconds (Shopify after 5), so the
    default leaves room and still stops well inside a container's kill timeout. The flusher's
    own bound for its POSTs is :attr:`FlusherConfig.grace_period`.

    ``feed_lease``: seconds a replica's claim to poll a source lasts without renewal (it renews
    every third of it); when a replica dies, another takes its sources' polling over within it.
    """

    host: str = attrs.field(default=DEFAULT_HOST, validator=_host)
    port: int = attrs.field(default=DEFAULT_PORT, validator=_port)
    shutdown_grace: float = attrs.field(default=DEFAULT_SHUTDOWN_GRACE, validator=positive)
    webhooks: WebhookSettings = attrs.field(factory=WebhookSettings)
    feed_lease: float = attrs.field(default=DEFAULT_FEED_LEASE, validator=positive)


__all__ = [
    "DEFAULT_FEED_LEASE",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_SHUTDOWN_GRACE",
    "ServeSettings",
]
