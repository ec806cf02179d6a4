"""A sandbox on loopback that knows ``order_shipped``, and a SQLite outbox path, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import running_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(event_types=("order_shipped",))) as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outbox.db'}"
