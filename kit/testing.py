"""Public helpers for testing code that talks to eTrusted through the kit."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from kit.outbox.memory import InMemoryStorage
from kit.sandbox import Fault, FaultKind, Sandbox, SandboxConfig, SandboxServer


@asynccontextmanager
async def running_sandbox(
    config: SandboxConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    host: str = "127.0.0.1",
    port: int = 0,
) -> AsyncIterator[SandboxServer]:
    """A sandbox listening on loopback for the duration of the block.

    ``server.sandbox`` is the live :class:`~kit.sandbox.Sandbox` (faults, accepted events,
    counters); ``server.client_config()`` is a client configuration that points at it.
    """
    async with SandboxServer(Sandbox(config, clock=clock), host=host, port=port) as server:
        yield server


__all__ = [
    "Fault",
    "FaultKind",
    "InMemoryStorage",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "running_sandbox",
]
