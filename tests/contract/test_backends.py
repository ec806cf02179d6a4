"""The shipped storage contract (kit.testing.storage_contract) against every backend of the kit.

Memory, SQLite in memory, a SQLite file and PostgreSQL (marked ``postgres``: it skips when no
server answers outside CI and fails in CI, as ``pg_dsn`` in tests/conftest.py decides).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kit.outbox.memory import InMemoryStorage
from kit.outbox.sqlite import SQLiteStorage
from kit.testing.storage_contract import (
    Backend,
    StorageContract,
    postgres_external,
    sqlite_external,
)


class TestMemory(StorageContract):
    @pytest.fixture
    async def backend(self) -> AsyncIterator[Backend]:
        storage = InMemoryStorage()
        async with Backend("memory", storage, another=lambda: storage) as opened:
            yield opened


class TestSQLiteMemory(StorageContract):
    """An in-memory database is private to its one connection: no races, no ``enqueue_in``."""

    @pytest.fixture
    async def backend(self) -> AsyncIterator[Backend]:
        async with Backend("sqlite_memory", SQLiteStorage(":memory:")) as opened:
            yield opened


class TestSQLiteFile(StorageContract):
    @pytest.fixture
    async def backend(self, tmp_path: Path) -> AsyncIterator[Backend]:
        path = tmp_path / "outbox.db"
        async with Backend(
            "sqlite_file",
            SQLiteStorage(path),
            another=lambda: SQLiteStorage(path),
            external=lambda: sqlite_external(path),
        ) as opened:
            yield opened


@pytest.mark.postgres
class TestPostgres(StorageContract):
    @pytest.fixture
    async def backend(self, pg_dsn: str, pg_schema: str) -> AsyncIterator[Backend]:
        from kit.outbox.postgres import PostgresStorage

        async with Backend(
            "postgres",
            PostgresStorage(pg_dsn, schema=pg_schema),
            another=lambda: PostgresStorage(pg_dsn, schema=pg_schema),
            external=lambda: postgres_external(pg_dsn),
        ) as opened:
            yield opened
