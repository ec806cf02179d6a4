"""Pytest fixtures for testing an adapter or an integration: a sandbox and an in-memory intake.

Load it from a root ``conftest.py`` (``pytest_plugins = ["kit.testing.pytest_plugin"]``) or
import the fixtures you want into one. Override ``etrusted_sandbox_config`` to give the
sandbox your event types. This module imports pytest; :mod:`kit.testing` does not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import running_sandbox
from kit.testing.intake import MemoryIntake, memory_intake


@pytest.fixture
def etrusted_sandbox_config() -> SandboxConfig:
    """The sandbox's configuration; override it to create your event types up front."""
    return SandboxConfig()


@pytest_asyncio.fixture
async def etrusted_sandbox(etrusted_sandbox_config: SandboxConfig) -> AsyncIterator[SandboxServer]:
    """A sandbox on a free loopback port for the test."""
    async with running_sandbox(etrusted_sandbox_config) as server:
        yield server


@pytest_asyncio.fixture
async def etrusted_memory_intake() -> AsyncIterator[MemoryIntake]:
    """An in-memory outbox, journal and intake for the test."""
    async with memory_intake() as kit:
        yield kit


__all__ = ["etrusted_memory_intake", "etrusted_sandbox", "etrusted_sandbox_config"]
