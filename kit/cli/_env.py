"""Flags, environment and configuration file: the only ``os.environ`` reader, and the one
place that decides which of them wins.

Precedence, for every setting: **flag > environment variable > configuration file > default**
(:func:`layered`). The environment sits above the file because it is what differs between the
places one file is used in: a container or CI job sets a variable for its run, a sandbox's
``export`` line points one shell at the sandbox, and neither should need an edited copy of the
file. The file is found the same way: ``--config``, else ``ETRUSTED_KIT_CONFIG``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kit.config import ENV_VARIABLES, ClientConfig
from kit.configfile import KitConfig, load_config
from kit.errors import ConfigError
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage

DEFAULT_DB = "./etrusted-kit.db"
CONFIG_VARIABLE = "ETRUSTED_KIT_CONFIG"
DB_VARIABLE = "ETRUSTED_KIT_DB"


def layered(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge settings; the first layer that gives a key wins. Callers pass the layers in the
    kit's one order: flags, then the environment, then the file. A key given as None or ""
    counts as not given, as an unset flag or an empty variable does."""
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key not in merged and value is not None and value != "":
                merged[key] = value
    return merged


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help=f"TOML configuration file (env {CONFIG_VARIABLE}); flags and ETRUSTED_* variables"
        " override its keys",
    )


def config_path(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str | None:
    found = layered(
        {"path": getattr(args, "config", None)}, {"path": _environ(environ).get(CONFIG_VARIABLE)}
    )
    return found.get("path")


def file_config(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> KitConfig | None:
    """The configuration file named by ``--config`` or ``ETRUSTED_KIT_CONFIG``, if any; its
    ``{ env = ... }`` secrets are read from the same environment."""
    path = config_path(args, environ)
    return None if path is None else load_config(path, environ=_environ(environ))


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help=f"outbox database URL or SQLite path (env {DB_VARIABLE}, else [outbox] url of the"
        f" configuration file, default {DEFAULT_DB})",
    )
    add_config_option(parser)


def add_storage_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--durability",
        choices=["normal", "full"],
        default=None,
        help="SQLite only: 'full' fsyncs every commit, so even a power loss cannot roll back an"
        " accepted event or a 'sending' mark (default: normal, safe against process crashes)",
    )
    parser.add_argument(
        "--pool-size", type=int, default=None, help="PostgreSQL only: most pooled connections"
    )


def storage_options(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Backend options from the flags, refusing the ones the chosen backend does not have."""
    postgres = url.startswith(("postgresql://", "postgres://"))
    durability = getattr(args, "durability", None)
    pool_size = getattr(args, "pool_size", None)
    if postgres and durability is not None:
        raise ConfigError("--durability applies to SQLite outboxes only")
    if not postgres and pool_size is not None:
        raise ConfigError("--pool-size applies to PostgreSQL outboxes only")
    if durability is not None:
        return {"durability": durability}
    if pool_size is not None:
        return {"max_size": pool_size, "min_size": min(1, pool_size)}
    return {}


def db_url(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str:
    env = _environ(environ)
    return db_url_from(args, file_config(args, env), env)


def db_url_from(
    args: argparse.Namespace,
    file: KitConfig | None,
    environ: Mapping[str, str] | None = None,
    *,
    default: str = DEFAULT_DB,
) -> str:
    """:func:`db_url` over a file the caller has already loaded; ``default`` when no flag,
    variable or key gives one."""
    env = _environ(environ)
    file_url = file.outbox.url if file is not None else None
    url: str = layered(
        {"url": getattr(args, "db", None)},
        {"url": env.get(DB_VARIABLE)},
        {"url": None if file_url is None else file_url.value},
    ).get("url", default)
    return url


def client_config(
    environ: Mapping[str, str] | None = None,
    *,
    args: argparse.Namespace | None = None,
    flags: Mapping[str, Any] | None = None,
) -> ClientConfig:
    """Credentials and URLs: ``flags``, then the ``ETRUSTED_*`` variables, then the file's
    ``[etrusted]`` table (read :meth:`ClientConfig.from_env` for the variables)."""
    env = _environ(environ)
    file = None if args is None else file_config(args, env)
    return client_config_from(file, env, flags=flags)


def client_config_from(
    file: KitConfig | None,
    environ: Mapping[str, str] | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
) -> ClientConfig:
    """:func:`client_config` over a file the caller has already loaded."""
    env = _environ(environ)
    from_file = {} if file is None else file.etrusted.given()
    # The file's keys that have a variable stand in for an unset variable, so from_env's rule
    # (and its message for missing credentials) holds with or without a file.
    variables = layered(env, {var: from_file.get(field) for field, var in ENV_VARIABLES.items()})
    others = layered(flags or {}, {k: v for k, v in from_file.items() if k not in ENV_VARIABLES})
    return ClientConfig.from_env(variables, **others)


def file_not_there(outbox: Outbox) -> bool:
    """Whether the outbox is a SQLite file that does not exist yet: opening it would create it,
    which a dry run must not do."""
    storage = outbox.storage
    if not isinstance(storage, SQLiteStorage) or storage.is_memory:
        return False
    return not Path(storage.path).exists()
