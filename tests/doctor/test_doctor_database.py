"""The database check: a writable, migrated outbox passes; one that cannot take writes, holds
no outbox, or lives in a schema that was never created is named, and nothing is created."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import Run

from kit.outbox import Outbox
from kit.sandbox import SandboxServer

from .conftest import SECRET_VARIABLE, WEBHOOK_SECRET, write_config
from .test_doctor_cli import check_lines


@contextlib.contextmanager
def unwritable(*paths: Path) -> Iterator[None]:
    """``paths`` cannot be written, even by root (whom file modes do not stop): immutable."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    names = [str(p) for p in paths]
    done = subprocess.run(["chattr", "+i", *names], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot make files immutable here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *names], check=True)


async def test_an_unwritable_database_is_named(
    run: Run, tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outbox the kit may not write (its file and directory read-only): the database check
    says it cannot be opened for writing, and how to fix that."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "shop.db"
    async with Outbox.from_url(str(path)):
        pass
    assert sorted(p.name for p in folder.iterdir()) == ["shop.db"]
    config = write_config(tmp_path / "shop.toml", sandbox, db=f"sqlite:///{path}")
    with unwritable(path, folder):
        result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert check_lines(result.out)["database"] == "✗"
    assert "cannot be opened for writing" in result.out
    assert "may write the database" in result.out


async def test_a_file_without_an_outbox_is_named(
    run: Run, tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite file that holds no outbox (another application's database, a wrong path) is
    reported as such and left without the kit's tables."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE theirs (x)")
        conn.commit()
    config = write_config(tmp_path / "shop.toml", sandbox, db=f"sqlite:///{path}")
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert "holds no outbox tables" in result.out
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"theirs"}


@pytest.mark.postgres
async def test_an_empty_postgres_schema_is_named_and_not_created(
    run: Run,
    tmp_path: Path,
    sandbox: SandboxServer,
    pg_dsn: str,
    pg_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A schema with no outbox (a typo in ?schema=): named, not created; --fix creates it."""
    import asyncpg

    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    url = f"{pg_dsn}?schema={pg_schema}"
    config = write_config(tmp_path / "shop.toml", sandbox, db=url)
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert "there is no outbox at" in result.out
    conn = await asyncpg.connect(pg_dsn)
    try:
        has = "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1"
        assert await conn.fetchval(has, pg_schema) == 0
        fixed = await run("doctor", "--config", str(config), "--fix", "--yes")
        assert fixed.code == 0, fixed.out
        assert await conn.fetchval(has, pg_schema) > 0
    finally:
        await conn.close()


@pytest.mark.postgres
async def test_a_read_only_postgres_role_is_named(
    run: Run,
    tmp_path: Path,
    sandbox: SandboxServer,
    pg_dsn: str,
    pg_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A role that may read the outbox but not write it: the database check says so."""
    import asyncpg

    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    async with Outbox.from_url(f"{pg_dsn}?schema={pg_schema}"):
        pass
    role = f"{pg_schema}_ro"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        await conn.execute(f'GRANT USAGE ON SCHEMA "{pg_schema}" TO "{role}"')
        await conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA "{pg_schema}" TO "{role}"')
        read_only = pg_dsn.replace("postgres@", f"{role}@", 1)
        assert read_only != pg_dsn
        config = write_config(tmp_path / "shop.toml", sandbox, db=f"{read_only}?schema={pg_schema}")
        result = await run("doctor", "--config", str(config))
        assert result.code == 1, result.out
        assert "cannot be opened for writing" in result.out
        assert "permission denied" in result.out
    finally:
        await conn.execute(f'DROP OWNED BY "{role}"')
        await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        await conn.close()


def older_outbox(path: Path, version: int) -> None:
    """An outbox as an older etrusted-kit left it: the first ``version`` migrations only."""
    from kit.outbox import _sqlite_sql as sql
    from kit.outbox.migrations import load_migrations

    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("BEGIN")
        conn.execute(sql.SCHEMA_TABLE)
        for migration in load_migrations("sqlite")[:version]:
            for statement in sql.statements(migration.sql):
                conn.execute(statement)
            conn.execute(sql.RECORD_VERSION, (migration.version, migration.name, 0.0))
        conn.execute("COMMIT")


async def test_an_outbox_behind_on_migrations_is_named_and_fix_migrates_it(
    run: Run, tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outbox an older kit wrote: the check names the versions missing; --fix applies
    them, and the second run passes."""
    from kit.outbox.migrations import load_migrations

    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    latest = load_migrations("sqlite")[-1].version
    path = tmp_path / "old.db"
    older_outbox(path, latest - 1)
    config = write_config(tmp_path / "shop.toml", sandbox, db=f"sqlite:///{path}")
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert f"is at schema version {latest - 1}, not {latest}" in result.out

    fixed = await run("doctor", "--config", str(config), "--fix", "--yes")
    assert fixed.code == 0, fixed.out
    assert f"schema version {latest}" in fixed.out
