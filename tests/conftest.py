"""Fixtures shared by the whole suite.

PostgreSQL: tests marked ``postgres`` use :func:`pg_dsn` and a private schema each. Outside CI
they skip with the reason when no server answers; with ``CI=true`` an unreachable server fails
the run instead, so CI can never pass by skipping them.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from ci import unavailable
from cli_helpers import Run, capture_runs
from hypothesis import settings

# pytester: tests that run a pytest suite (the adapter contract) and read its outcome.
pytest_plugins = ["pytester"]

PG_DSN = os.environ.get("ETRUSTED_KIT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")

# Tests never fail on wall-clock speed: Hypothesis's per-example deadline (200 ms) would turn a
# loaded CI machine into failures that say nothing about the code.
settings.register_profile("kit", deadline=None)
settings.load_profile("kit")


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kit's own variables from the developer's shell must not leak into tests."""
    for name in list(os.environ):
        if name.startswith(("ETRUSTED_", "ETRUSTED_KIT_")) and name != "ETRUSTED_KIT_TEST_PG_DSN":
            monkeypatch.delenv(name, raising=False)


def _pg_reachable(dsn: str) -> str | None:
    parsed = urlparse(dsn)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 5432
    try:
        with socket.create_connection((host, port), timeout=2):
            pass
    except OSError as exc:
        return f"PostgreSQL at {host}:{port} is not reachable ({exc})"
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg is not installed (pip install 'etrusted-kit[postgres]')"
    return None


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    problem = _pg_reachable(PG_DSN)
    if problem is not None:
        unavailable(problem, what="the PostgreSQL tests")
    return PG_DSN


@pytest.fixture
async def pg_schema(pg_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty schema name for one test; dropped afterwards."""
    import asyncpg

    name = f"etk_test_{uuid.uuid4().hex[:12]}"
    yield name
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run one etrusted-kit command in process: ``await run("status", "--db", db)``."""
    return capture_runs(capsys)


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A path for a SQLite outbox that does not exist yet."""
    return str(tmp_path / "outbox.db")
