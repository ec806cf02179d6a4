"""Environment and flag handling shared by the subcommands (the only ``os.environ`` reader)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from kit.config import ClientConfig
from kit.errors import ConfigError

DEFAULT_DB = "./etrusted-kit.db"


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=None,
        help=f"outbox database URL or SQLite path (env ETRUSTED_KIT_DB, default {DEFAULT_DB})",
    )


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
    env = os.environ if environ is None else environ
    value: str | None = getattr(args, "db", None)
    return value or env.get("ETRUSTED_KIT_DB") or DEFAULT_DB


def client_config(environ: Mapping[str, str] | None = None) -> ClientConfig:
    """Credentials and URLs from ``ETRUSTED_*`` variables: :meth:`ClientConfig.from_env`."""
    return ClientConfig.from_env(os.environ if environ is None else environ)
