"""A sandbox on loopback that knows ``order_shipped``, and a SQLite outbox path, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from admin.page_helpers import PUBLIC_URL, TOKEN, Page, opened_page
from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import running_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(event_types=("order_shipped",))) as server:
        yield server


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    """The operator page with the admin token ``TOKEN`` configured."""
    async for value in opened_page(tmp_path, TOKEN):
        yield value


@pytest.fixture
async def tokenless(tmp_path: Path) -> AsyncIterator[Page]:
    """The operator page without an admin token: its action is refused."""
    async for value in opened_page(tmp_path, None):
        yield value


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[Page]:
    """The operator page with ``[admin] public_url = PUBLIC_URL``: behind an HTTPS proxy."""
    own = tmp_path / "proxied"  # a database of its own, beside the page fixture's
    own.mkdir()
    async for value in opened_page(own, TOKEN, public_url=PUBLIC_URL):
        yield value
