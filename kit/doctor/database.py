"""The outbox database: it exists, carries this kit's schema, and takes writes.

Nothing is created here: a missing database is reported (a mistyped path must not be answered
with a new, empty outbox); ``--fix`` creates it, as ``serve`` would on its first start.
"""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

from kit.doctor.context import Context
from kit.doctor.fixes import CreateOutbox, shown_url
from kit.doctor.result import CheckResult, Problem
from kit.errors import KitError, MigrationError
from kit.outbox import Storage, missing_sqlite_file, storage_from_url
from kit.outbox.migrations import load_migrations
from kit.outbox.sqlite import SQLiteStorage

_WHERE = "--db, ETRUSTED_KIT_DB or [outbox] url"


@runtime_checkable
class _Versioned(Protocol):
    async def schema_version(self) -> int: ...


def _folder(path: str) -> str | None:
    """The directory of ``path`` when it does not exist (then the file cannot be created)."""
    folder = os.path.dirname(os.path.abspath(path))
    return None if os.path.isdir(folder) else folder


def _latest(storage: Storage) -> int:
    backend = "sqlite" if isinstance(storage, SQLiteStorage) else "postgres"
    return load_migrations(backend)[-1].version


async def check_database(ctx: Context) -> CheckResult:
    name = "database"
    setup = ctx.setup
    url = setup.db_url
    if url is None:
        return CheckResult.problem(
            name,
            "no outbox database is configured",
            [Problem(message=setup.db_problem or "no URL", hint=f"set {_WHERE}")],
        )
    shown = shown_url(url)
    missing = missing_sqlite_file(url)
    if missing is not None:
        folder = _folder(missing)
        if folder is not None:
            return CheckResult.problem(
                name,
                f"the outbox database {missing} cannot be created",
                [
                    Problem(
                        message=f"its directory {folder} does not exist",
                        hint=f"create the directory, or point {_WHERE} at the right file",
                    )
                ],
            )
        return CheckResult.problem(
            name,
            f"the outbox database {missing} does not exist",
            [
                Problem(
                    message=f"there is no file {missing} (a mistyped path, or nothing started yet)",
                    hint=f"check {_WHERE}; on a first start, --fix creates it (as serve does)",
                    fix=CreateOutbox(url),
                )
            ],
        )
    try:
        storage = storage_from_url(url)
    except KitError as exc:
        return CheckResult.problem(
            name, "the outbox URL is not usable", [Problem(message=str(exc), hint=f"fix {_WHERE}")]
        )
    try:
        return await _examine(name, storage, url, shown)
    except KitError as exc:
        return _unwritable(name, shown, exc)
    finally:
        await storage.aclose()


def _unwritable(name: str, shown: str, exc: KitError) -> CheckResult:
    return CheckResult.problem(
        name,
        f"the outbox at {shown} cannot be opened for writing",
        [
            Problem(
                message=str(exc),
                hint="check that the user running etrusted-kit may write the database"
                " (and, for SQLite, its directory), that the disk is not full or read-only"
                " and that the server is up",
            )
        ],
    )


async def _examine(name: str, storage: Storage, url: str, shown: str) -> CheckResult:
    try:
        await storage.open(migrate=False)
    except MigrationError as exc:  # written by a newer kit: opening without migrating says so
        return CheckResult.problem(
            name,
            f"the outbox at {shown} cannot be used by this etrusted-kit",
            [Problem(message=str(exc), hint="upgrade etrusted-kit to the version that wrote it")],
        )
    latest = _latest(storage)
    version = await storage.schema_version() if isinstance(storage, _Versioned) else latest
    if version == 0:
        return CheckResult.problem(
            name,
            f"there is no outbox at {shown}",
            [
                Problem(
                    message=f"{shown} holds no outbox tables (a mistyped URL or schema, or"
                    " nothing started yet)",
                    hint=f"check {_WHERE}; on a first start, --fix creates it (as serve does)",
                    fix=CreateOutbox(url),
                )
            ],
        )
    if version < latest:
        return CheckResult.problem(
            name,
            f"the outbox at {shown} is at schema version {version}, not {latest}",
            [
                Problem(
                    message=f"migrations {version + 1} to {latest} are not applied yet",
                    hint="--fix applies them (serve and flush also do when they start)",
                    fix=CreateOutbox(url),
                )
            ],
        )
    moved = await storage.moved_to()
    if moved is not None:
        return CheckResult.problem(
            name,
            f"the outbox at {shown} was moved",
            [
                Problem(
                    message=f"migrate-outbox moved it to {shown_url(moved)}; nothing is"
                    " delivered from here any more",
                    hint=f"point {_WHERE} at the new outbox",
                )
            ],
        )
    # Up to date: migrating is a no-op that still takes the write lock, as serve's start does,
    # so it proves the database takes writes without changing anything.
    await storage.migrate()
    return CheckResult.ok(name, f"the outbox at {shown} is writable, schema version {version}")


__all__ = ["check_database"]
