"""Versioned SQL migrations, shipped as data files next to this module.

Each backend has a folder ``<backend>/`` holding ``NNNN_name.sql`` files. Keeping the SQL as data
(not strings in Python) lets operators read and diff the schema, and lets every backend share one
loader and one rule for versions: they start at 1 and have no gaps, so "the version in force" is
always the number of files applied.
"""

from __future__ import annotations

import functools
import importlib.resources
import re

import attrs

from kit.errors import MigrationError

_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


@attrs.frozen
class Migration:
    """One schema step; ``version`` is the schema version once it has been applied."""

    version: int
    name: str
    sql: str = attrs.field(repr=False)


def load_migrations(backend: str) -> list[Migration]:
    """The migrations of ``backend`` (e.g. ``"sqlite"``), ordered by version."""
    return list(_load(backend))


@functools.cache
def _load(backend: str) -> tuple[Migration, ...]:
    if not re.fullmatch(r"[a-z0-9_]+", backend):
        raise MigrationError(f"invalid migration backend name {backend!r}")
    folder = importlib.resources.files(__name__).joinpath(backend)
    if not folder.is_dir():
        raise MigrationError(f"no migrations are shipped for backend {backend!r}")
    found: list[Migration] = []
    for item in folder.iterdir():
        if not item.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(item.name)
        if match is None:
            raise MigrationError(
                f"migration file {backend}/{item.name} is not named NNNN_lower_case_name.sql"
            )
        found.append(
            Migration(int(match["version"]), match["name"], item.read_text(encoding="utf-8"))
        )
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{backend} migrations must be numbered 1, 2, 3, ... without gaps; "
                f"expected version {expected}, found {migration.version} ({migration.name})"
            )
    if not found:
        raise MigrationError(f"no migrations are shipped for backend {backend!r}")
    return tuple(found)


__all__ = ["Migration", "load_migrations"]
