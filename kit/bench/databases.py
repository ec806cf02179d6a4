"""Fresh scratch outboxes for each round (SQLite files or PostgreSQL schemas), removed after use."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kit.bench.config import BenchConfig
from kit.errors import StorageError


@contextlib.contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Driver errors of the raw baselines, translated like the backends translate theirs."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"bench baseline {what} failed: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):
            raise StorageError(f"bench baseline {what} failed: {exc}") from exc
        raise


class Databases:
    """Fresh, empty outbox databases for each round: SQLite files or PostgreSQL schemas."""

    def __init__(self, config: BenchConfig, workdir: Path) -> None:
        self._config = config
        self._workdir = workdir
        self._counter = 0
        self._schemas: list[str] = []
        self.base_schema = "etk_bench"
        self.dsn = ""
        if config.postgres:
            assert config.db is not None
            parts = urlsplit(config.db)
            query = parse_qsl(parts.query, keep_blank_values=True)
            schema = [v for k, v in query if k == "schema"]
            if schema:
                self.base_schema = schema[-1]
            rest = urlencode([(k, v) for k, v in query if k != "schema"])
            self.dsn = urlunsplit(parts._replace(query=rest))

    def _name(self, label: str) -> str:
        self._counter += 1
        return f"{label}_{self._counter}"

    def new(self, label: str) -> str:
        """The URL of a new, empty outbox (created on first open)."""
        name = self._name(label)
        if not self._config.postgres:
            return str(self._workdir / f"{name}.db")
        schema = f"{self.base_schema}_{name}"[:58]
        self._schemas.append(schema)
        parts = urlsplit(self.dsn)
        query = [*parse_qsl(parts.query, keep_blank_values=True), ("schema", schema)]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def raw_target(self, label: str) -> str:
        """A SQLite file, or a PostgreSQL schema name, for a raw baseline."""
        name = self._name(label)
        if not self._config.postgres:
            return str(self._workdir / f"{name}.db")
        schema = f"{self.base_schema}_{name}"[:58]
        self._schemas.append(schema)
        return schema

    async def drop(self, url_or_schema: str) -> None:
        """Remove one database now (a 1M backlog takes gigabytes)."""
        if not self._config.postgres:
            for suffix in ("", "-wal", "-shm"):
                await asyncio.to_thread(Path(url_or_schema + suffix).unlink, missing_ok=True)
            return
        schema = url_or_schema
        if "://" in url_or_schema:
            query = dict(parse_qsl(urlsplit(url_or_schema).query))
            schema = query["schema"]
        await self._drop_schemas([schema])
        with contextlib.suppress(ValueError):
            self._schemas.remove(schema)

    async def aclose(self) -> None:
        if self._config.postgres and self._schemas:
            schemas, self._schemas = self._schemas, []
            await self._drop_schemas(schemas)

    async def _drop_schemas(self, schemas: Sequence[str]) -> None:
        import asyncpg

        with db_errors("drop schema"):
            conn = await asyncpg.connect(self.dsn)
            try:
                for schema in schemas:
                    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
