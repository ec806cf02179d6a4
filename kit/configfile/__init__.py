"""The kit's one configuration file: TOML, read with :mod:`tomllib`, into frozen attrs values.

:func:`load_config` reads a file, :func:`parse_config` TOML text and :func:`config_from_mapping`
a parsed document; each returns a :class:`KitConfig` or raises one
:class:`~kit.errors.ConfigFileError` whose ``problems`` name every key path that is wrong or
unknown. Loading has no other effect: nothing is opened or connected. Reference:
``docs/configuration.md``.
"""

from __future__ import annotations

from kit.configfile.load import config_from_mapping, load_config, parse_config
from kit.configfile.model import (
    AdminSettings,
    ETrustedSettings,
    KitConfig,
    OutboxSettings,
    Secret,
    SourceConfig,
    route_name,
)

__all__ = [
    "AdminSettings",
    "ETrustedSettings",
    "KitConfig",
    "OutboxSettings",
    "Secret",
    "SourceConfig",
    "config_from_mapping",
    "load_config",
    "parse_config",
    "route_name",
]
