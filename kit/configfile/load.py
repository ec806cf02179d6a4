"""Reading the file: TOML text -> :class:`KitConfig`, or one error naming every problem."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from cattrs.errors import BaseValidationError

from kit.configfile._convert import make_converter
from kit.configfile._problems import problems
from kit.configfile._sources import source_hook
from kit.configfile.model import KitConfig, SourceConfig
from kit.errors import ConfigError, ConfigFileError


def config_from_mapping(
    data: Mapping[str, Any], *, environ: Mapping[str, str], origin: str = "configuration"
) -> KitConfig:
    """A :class:`KitConfig` from a parsed document (``tomllib.load``'s result).

    ``{ env = "NAME" }`` secrets are looked up in ``environ``: pass ``os.environ`` to read the
    process environment; the kit never reads it on its own. Raises
    :class:`~kit.errors.ConfigFileError` listing every problem with its key path.
    """
    converter = make_converter(environ)
    converter.register_structure_hook(SourceConfig, source_hook(converter))
    try:
        return converter.structure(dict(data), KitConfig)
    except (BaseValidationError, ConfigError, TypeError) as exc:
        raise ConfigFileError(list(problems(exc)), origin=origin) from None


def parse_config(
    text: str, *, environ: Mapping[str, str], origin: str = "configuration"
) -> KitConfig:
    """A :class:`KitConfig` from TOML text; a syntax error names its line and column."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from None
    return config_from_mapping(data, environ=environ, origin=origin)


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str]) -> KitConfig:
    """A :class:`KitConfig` from the TOML file at ``path`` (see :func:`config_from_mapping`)."""
    origin = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            raw = stream.read()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file {origin}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{origin} is not valid TOML: it is not UTF-8 text") from None
    return parse_config(text, environ=environ, origin=origin)


__all__ = ["config_from_mapping", "load_config", "parse_config"]
