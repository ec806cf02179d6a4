"""Explicit, frozen configuration objects.

Library code never reads the environment: the CLI builds these from flags and ``ETRUSTED_*``
variables (see :mod:`kit.cli`), embedding applications build them however they like, or from the
same variables with :meth:`ClientConfig.from_env`, passing the mapping themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from kit.errors import ConfigError

DEFAULT_API_URL = "https://api.etrusted.com"
DEFAULT_TOKEN_URL = "https://login.etrusted.com/oauth/token"  # noqa: S105 (a URL)
DEFAULT_AUDIENCE = "https://api.etrusted.com"


def positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    """attrs validator shared by the kit's config objects: finite and > 0 (NaN compares false
    both ways, so ``value <= 0`` alone would let it through into every timeout)."""
    if not 0 < value < math.inf:
        raise ConfigError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def http_url(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    """attrs validator: an http(s) URL with a host and a valid port (:func:`check_http_url`)."""
    check_http_url(attribute.name, value)


def check_http_url(name: str, value: str) -> None:
    """``value`` is an http(s) URL with a host and a valid port, else a :class:`ConfigError`
    naming ``name``. A missing host or a bad port would otherwise surface only at the first
    request."""
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    try:
        parts = urlsplit(value)
        host, _port = parts.hostname, parts.port  # .port raises for a bad one
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL ({exc}): {value!r}") from exc
    if not host:
        raise ConfigError(f"{name} has no host: {value!r}")
    # The resolver encodes the name only at the first request, where an empty or long label
    # fails as a bare UnicodeError and a blank as an endless "unreachable".
    try:
        if any(c.isspace() for c in host):
            raise UnicodeError("blank in the host name")
        host.encode("idna")
    except UnicodeError as exc:
        raise ConfigError(f"{name} has an invalid host ({exc}): {value!r}") from exc


ENV_VARIABLES = {
    "client_id": "ETRUSTED_CLIENT_ID",
    "client_secret": "ETRUSTED_CLIENT_SECRET",
    "api_url": "ETRUSTED_API_URL",
    "token_url": "ETRUSTED_TOKEN_URL",
}
"""Which ``ETRUSTED_*`` variable sets which :class:`ClientConfig` field."""

REQUIRED = ("client_id", "client_secret")


@attrs.frozen(kw_only=True)
class ClientConfig:
    """How to reach and authenticate against eTrusted.

    ``client_secret`` never appears in ``repr`` so that configs can be logged safely.
    """

    client_id: str
    client_secret: str = attrs.field(repr=False)
    api_url: str = attrs.field(default=DEFAULT_API_URL, validator=http_url)
    token_url: str = attrs.field(default=DEFAULT_TOKEN_URL, validator=http_url)
    audience: str = DEFAULT_AUDIENCE
    connect_timeout: float = attrs.field(default=5.0, validator=positive)
    # Total time for one request, connect included. A POST that exceeds it is in doubt.
    request_timeout: float = attrs.field(default=15.0, validator=positive)
    # Refresh the token this many seconds before ``expires_in`` runs out.
    token_refresh_margin: float = attrs.field(default=30.0)
    user_agent: str = "etrusted-kit/0.1"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> ClientConfig:
        """A config from the ``ETRUSTED_*`` variables in ``environ`` (pass ``os.environ``).

        ``ETRUSTED_CLIENT_ID`` and ``ETRUSTED_CLIENT_SECRET`` are required; without
        ``ETRUSTED_API_URL`` and ``ETRUSTED_TOKEN_URL`` the production URLs are used. The
        ``etrusted-kit`` command reads the same variables through this method, so a sandbox's
        ``export`` line points both at the same place. ``overrides`` sets any field and wins
        over its variable (a test keeps the credentials and points the URLs elsewhere).
        Raises :class:`~kit.errors.ConfigError` naming every missing variable.
        """
        given: dict[str, Any] = {
            field: environ[var] for field, var in ENV_VARIABLES.items() if environ.get(var)
        }
        given.update(overrides)
        missing = [ENV_VARIABLES[field] for field in REQUIRED if not given.get(field)]
        if missing:
            raise ConfigError(
                "missing " + " and ".join(missing) + ": set the eTrusted API client credentials"
                " (try `etrusted-kit sandbox`, which prints a set that works offline)"
            )
        return cls(**given)

    def __attrs_post_init__(self) -> None:
        if not self.client_id:
            raise ConfigError("client_id must not be empty")
        if not self.client_secret:
            raise ConfigError("client_secret must not be empty")
