"""An application's own transaction on its own driver connection, for ``enqueue_in``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiosqlite


class ExternalTransaction:
    """The application's connection (what it passes to ``enqueue_in``) and its transaction."""

    def __init__(
        self,
        connection: Any,
        begin: Callable[[], Awaitable[Any]],
        commit: Callable[[], Awaitable[Any]],
        rollback: Callable[[], Awaitable[Any]],
    ) -> None:
        self.connection = connection
        self.begin, self.commit, self.rollback = begin, commit, rollback


ExternalFactory = Callable[[], AbstractAsyncContextManager[ExternalTransaction]]


@contextlib.asynccontextmanager
async def sqlite_external(path: Path | str) -> AsyncIterator[ExternalTransaction]:
    """An aiosqlite connection to the SQLite file ``path``."""
    async with aiosqlite.connect(path, isolation_level=None, timeout=10) as conn:

        async def begin() -> None:
            await conn.execute("BEGIN IMMEDIATE")

        yield ExternalTransaction(conn, begin, conn.commit, conn.rollback)


@contextlib.asynccontextmanager
async def postgres_external(dsn: str) -> AsyncIterator[ExternalTransaction]:
    """An asyncpg connection to the PostgreSQL database ``dsn``."""
    import asyncpg  # the PostgreSQL extra: imported only by those who test on PostgreSQL

    conn = await asyncpg.connect(dsn)
    try:
        holder: dict[str, Any] = {}

        async def begin() -> None:
            holder["tx"] = conn.transaction()
            await holder["tx"].start()

        async def commit() -> None:
            await holder.pop("tx").commit()

        async def rollback() -> None:
            await holder.pop("tx").rollback()

        yield ExternalTransaction(conn, begin, commit, rollback)
    finally:
        await conn.close()
