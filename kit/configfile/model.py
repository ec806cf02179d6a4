"""The configuration file's sections as frozen attrs values.

Each TOML table is one class; a key is a field. Adding a section (``[admin]``) or a source key
(``poll_interval``) is adding a field with its default here and its row in
``docs/configuration.md``: the loader structures whatever the classes declare, and a test
checks that the reference names every key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import attrs

from kit.config import check_http_url, http_url, positive
from kit.errors import ConfigError
from kit.policy import PolicyConfig


@attrs.frozen
class Secret:
    """A secret from the file: a literal, or ``{ env = "NAME" }`` resolved when it was loaded.

    Its value is never part of ``repr`` or ``str``, so a config object can be logged, printed
    or put in an error message as a whole. ``env`` names the variable it came from, if any.
    """

    value: str = attrs.field(repr=False)
    env: str | None = None

    def __str__(self) -> str:
        return f"${self.env}" if self.env else "***"


def _optional(validator: Any) -> Any:
    return attrs.validators.optional(validator)


@attrs.frozen(kw_only=True)
class OutboxSettings:
    """``[outbox]``: where the outbox lives (a SQLite path or URL, or a PostgreSQL URL).

    A secret because a PostgreSQL URL may carry a password.
    """

    url: Secret | None = None


@attrs.frozen(kw_only=True)
class ETrustedSettings:
    """``[etrusted]``: the eTrusted API client. The ``ETRUSTED_*`` variables override these
    keys; a key set nowhere takes :class:`~kit.config.ClientConfig`'s default."""

    client_id: Secret | None = None
    client_secret: Secret | None = None
    api_url: str | None = attrs.field(default=None, validator=_optional(http_url))
    token_url: str | None = attrs.field(default=None, validator=_optional(http_url))
    audience: str | None = None
    connect_timeout: float | None = attrs.field(default=None, validator=_optional(positive))
    request_timeout: float | None = attrs.field(default=None, validator=_optional(positive))

    def given(self) -> dict[str, Any]:
        """The keys the file sets, secrets revealed: for building a :class:`ClientConfig`."""
        values = attrs.asdict(self, recurse=False)
        return {
            name: value.value if isinstance(value, Secret) else value
            for name, value in values.items()
            if value is not None
        }


DEFAULT_ADMIN_HOST = "127.0.0.1"
DEFAULT_ADMIN_PORT = 9108


def _admin_port(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ConfigError(f"admin {attribute.name} must be a whole number 0..65535, got {value!r}")


_HOST_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_HOST_LABEL}(\.{_HOST_LABEL})*\Z")


def host_name(value: str) -> str:
    """A host name as a ``Host`` header names it, compared without case and a final dot."""
    name = value.lower().removesuffix(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    if len(name) > 253 or not _HOST_NAME.match(name):
        raise ConfigError(
            f"{value!r} is not a host name: give the name alone, without scheme, path or port"
            " (ops.example.com)"
        )
    return name


def _host_names(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise ConfigError('expected a list of host names (["ops.example.com"])')
    return tuple(host_name(v) for v in values)


def _public_url(value: str | None) -> str | None:
    if value is None:
        return None
    check_http_url("public_url", value)
    parts = urlsplit(value)
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(
            f"public_url is where the page is reached: no user, query or fragment, got {value!r}"
        )
    return value


def _is_loopback(host: str) -> bool:
    if host.lower().removesuffix(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another name, or "" (every interface)


@attrs.frozen(kw_only=True)
class AdminSettings:
    """``[admin]``: the admin listener of ``serve`` (health, metrics and the operator page).

    Separate from the webhook port, and on loopback by default: it is for the host's
    Prometheus and probes, never for the shop platform. ``token`` guards the actions of the
    operator page; the read-only endpoints do not ask for it.

    The operator page answers only requests whose ``Host`` is an IP address, ``localhost``, a
    name of ``allowed_hosts`` or the host of ``public_url``: a site that rebinds its own name
    to this address cannot read it (the probes and ``/metrics`` answer any name).
    ``public_url`` is where a browser reaches the page through a reverse proxy
    (``https://ops.example.com/kit``); the retry action then expects the browser's ``Origin``
    to be that URL's.
    """

    host: str = DEFAULT_ADMIN_HOST
    port: int = attrs.field(default=DEFAULT_ADMIN_PORT, validator=_admin_port)
    token: Secret | None = None
    allowed_hosts: tuple[str, ...] = attrs.field(default=(), converter=_host_names)
    public_url: str | None = attrs.field(default=None, converter=_public_url)

    @property
    def host_names(self) -> tuple[str, ...]:
        """The names the listener answers to besides IP addresses and ``localhost``."""
        if self.public_url is None:
            return self.allowed_hosts
        public = urlsplit(self.public_url).hostname
        assert public is not None  # checked by _public_url
        return (*self.allowed_hosts, host_name(public))

    @property
    def exposed_without_token(self) -> bool:
        """Bound beyond loopback with no token: anyone who reaches the port reads the page
        (and nobody can retry)."""
        return self.token is None and not _is_loopback(self.host)


_ROUTE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}\Z")


def route_name(value: str) -> str:
    """A source's name is its webhook route (``POST /webhooks/{name}``) and its name in the
    journal: lower-case letters, digits, ``-`` and ``_``, so it needs no escaping anywhere and
    two spellings of one shop cannot become two sources."""
    if not isinstance(value, str) or not _ROUTE_NAME.match(value):
        raise ConfigError(
            f"{value!r} is not a source name: use 1 to 64 lower-case letters, digits, '-' or '_',"
            " starting with a letter or digit (it becomes the URL path /webhooks/NAME)"
        )
    return value


@attrs.frozen(kw_only=True)
class SourceConfig:
    """One ``[[sources]]`` table: a shop (or other account) whose deliveries the kit takes in.

    The table is flat: the keys of this class, the policy keys (:class:`PolicyConfig`'s fields,
    with ``[[sources.triggers]]`` and ``[sources.exclusions]``) and the adapter's own keys (its
    plugin's ``config_type``) sit side by side, structured into ``policy`` and
    ``adapter_config``.
    """

    name: str = attrs.field(converter=route_name)
    adapter: str
    webhook_secrets: tuple[Secret, ...] = ()
    policy: PolicyConfig
    adapter_config: object

    @property
    def route(self) -> str:
        return f"/webhooks/{self.name}"


NESTED_SOURCE_FIELDS = ("policy", "adapter_config")
""":class:`SourceConfig` fields whose keys sit flat in the source's table."""


def _unique_names(sources: Iterable[SourceConfig]) -> tuple[SourceConfig, ...]:
    result = tuple(sources)
    first: dict[str, int] = {}
    for index, source in enumerate(result):
        if source.name in first:
            raise ConfigError(
                f"sources[{first[source.name]}] and sources[{index}] are both called "
                f"{source.name!r}: a name is a webhook route and must be unique"
            )
        first[source.name] = index
    return result


@attrs.frozen(kw_only=True)
class KitConfig:
    """The whole file. Every section is optional: ``flush`` needs only ``[outbox]`` and
    ``[etrusted]`` (or the flags and variables), ``serve`` needs sources too."""

    outbox: OutboxSettings = OutboxSettings()
    etrusted: ETrustedSettings = ETrustedSettings()
    sources: tuple[SourceConfig, ...] = attrs.field(default=(), converter=_unique_names)
    # None: no [admin] table, so serve opens no admin port (see docs/metrics.md).
    admin: AdminSettings | None = None


__all__ = [
    "DEFAULT_ADMIN_HOST",
    "DEFAULT_ADMIN_PORT",
    "NESTED_SOURCE_FIELDS",
    "AdminSettings",
    "ETrustedSettings",
    "KitConfig",
    "OutboxSettings",
    "Secret",
    "SourceConfig",
    "host_name",
    "route_name",
]
