"""Public helpers for testing code that talks to eTrusted through the kit.

A sandbox on loopback (:func:`running_sandbox`) for the whole path over HTTP, an in-memory
outbox, and a scripted fake client (:class:`FakeDeliveryClient`) for flusher tests that must
decide the order in which things happen. For adapter authors: signed deliveries
(:func:`signed_delivery`), the whole intake in memory (:func:`memory_intake`) and the adapter
contract's checks (:mod:`kit.testing.adapter_checks`).

The pytest suites are imported on their own, because this module never imports pytest: the
storage contract for outbox backends (:mod:`kit.testing.storage_contract`), the adapter contract
(:mod:`kit.testing.adapter_contract`) and the fixtures (:mod:`kit.testing.pytest_plugin`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from kit.outbox.memory import InMemoryStorage
from kit.sandbox import Fault, FaultKind, Sandbox, SandboxConfig, SandboxServer
from kit.testing.deliveries import (
    SignedDelivery,
    Signer,
    header_signer,
    hmac_sha256_base64,
    hmac_sha256_hex,
    signed_delivery,
)
from kit.testing.fake_client import Answer, Call, FakeDeliveryClient, Raise, Reply, WaitFor
from kit.testing.intake import MemoryIntake, memory_intake


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
    "MemoryIntake",
    "Raise",
    "Reply",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "SignedDelivery",
    "Signer",
    "WaitFor",
    "header_signer",
    "hmac_sha256_base64",
    "hmac_sha256_hex",
    "memory_intake",
    "running_sandbox",
    "signed_delivery",
]
