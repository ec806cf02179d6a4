"""Public helpers for testing code that talks to eTrusted through the kit.

A sandbox on loopback (:func:`running_sandbox`) for the whole path over HTTP, an in-memory
outbox, and a scripted fake client (:class:`FakeDeliveryClient`) for flusher tests that must
decide the order in which things happen. The storage contract for outbox backends is the pytest
suite :mod:`kit.testing.storage_contract`, imported on its own: this module never imports pytest.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from kit.outbox.memory import InMemoryStorage
from kit.sandbox import Fault, FaultKind, Sandbox, SandboxConfig, SandboxServer
from kit.testing.fake_client import Answer, Call, FakeDeliveryClient, Raise, Reply, WaitFor


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
    "Answer",
    "Call",
    "FakeDeliveryClient",
    "Fault",
    "FaultKind",
    "InMemoryStorage",
    "Raise",
    "Reply",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "WaitFor",
    "running_sandbox",
]
