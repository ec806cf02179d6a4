"""Fixtures for the sandbox tests: a sandbox on loopback with a fake clock, and a tiny client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from sandbox_helpers import Api, FakeClock, make_event

from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import running_sandbox


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox_config() -> SandboxConfig:
    """Override in a test module (or parametrize indirectly) for another configuration."""
    return SandboxConfig(seed=1234)


@pytest.fixture
async def server(sandbox_config: SandboxConfig, clock: FakeClock) -> AsyncIterator[SandboxServer]:
    async with running_sandbox(sandbox_config, clock=clock) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def api(server: SandboxServer, http: aiohttp.ClientSession) -> Api:
    return Api(server, http)


@pytest.fixture
def event() -> Callable[..., dict[str, Any]]:
    return make_event
