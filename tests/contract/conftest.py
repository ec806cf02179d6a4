"""One storage contract, every backend.

``storage`` is an opened backend, parametrised over memory, SQLite in memory, a SQLite file and
PostgreSQL (marked ``postgres``). ``storage_factory`` opens a second storage object on the same
database for cross-connection races; backends that cannot share their database (in-memory
SQLite) skip those tests through :attr:`Backend.shares_database`. ``Backend.external`` opens an
application's own driver connection on the outbox's database (``enqueue_in``), when there is one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kit.outbox.memory import InMemoryStorage
from kit.outbox.protocol import Storage
from kit.outbox.sqlite import SQLiteStorage

from .external import ExternalFactory, postgres_external, sqlite_external

StorageFactory = Callable[[], Awaitable[Storage]]


class Backend:
    """An opened storage plus the means to open more objects on the same database."""

    def __init__(
        self,
        name: str,
        storage: Storage,
        *,
        another: Callable[[], Storage] | None,
        same_object: bool = False,
        external: ExternalFactory | None = None,
    ) -> None:
        self.name = name
        self.storage = storage
        self.external = external
        self._another = another
        self._same_object = same_object  # memory: "another connection" is the object itself
        self._opened: list[Storage] = []

    @property
    def shares_database(self) -> bool:
        return self._another is not None

    async def open_another(self) -> Storage:
        assert self._another is not None, f"{self.name} cannot share its database"
        if self._same_object:
            return self.storage
        other = self._another()
        await other.open()
        self._opened.append(other)
        return other

    async def __aenter__(self) -> Backend:
        await self.storage.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for other in reversed(self._opened):
            await other.aclose()
        await self.storage.aclose()


@pytest.fixture
async def memory_backend() -> AsyncIterator[Backend]:
    storage = InMemoryStorage()
    async with Backend("memory", storage, another=lambda: storage, same_object=True) as b:
        yield b


@pytest.fixture
async def sqlite_memory_backend() -> AsyncIterator[Backend]:
    async with Backend("sqlite_memory", SQLiteStorage(":memory:"), another=None) as b:
        yield b


@pytest.fixture
async def sqlite_file_backend(tmp_path: Path) -> AsyncIterator[Backend]:
    path = tmp_path / "outbox.db"
    async with Backend(
        "sqlite_file",
        SQLiteStorage(path),
        another=lambda: SQLiteStorage(path),
        external=lambda: sqlite_external(path),
    ) as b:
        yield b


@pytest.fixture
async def postgres_backend(pg_dsn: str, pg_schema: str) -> AsyncIterator[Backend]:
    from kit.outbox.postgres import PostgresStorage

    async with Backend(
        "postgres",
        PostgresStorage(pg_dsn, schema=pg_schema),
        another=lambda: PostgresStorage(pg_dsn, schema=pg_schema),
        external=lambda: postgres_external(pg_dsn),
    ) as b:
        yield b


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("sqlite_memory", id="sqlite_memory"),
        pytest.param("sqlite_file", id="sqlite_file"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> Backend:
    value: Backend = request.getfixturevalue(f"{request.param}_backend")
    return value


@pytest.fixture
def storage(backend: Backend) -> Storage:
    return backend.storage


@pytest.fixture
def storage_factory(backend: Backend) -> StorageFactory:
    if not backend.shares_database:
        pytest.skip(f"{backend.name}: a second storage object cannot open the same database")
    return backend.open_another
