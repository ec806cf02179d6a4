"""Readiness: whether this process can do its job now, each check named.

Liveness needs no check of its own: the event loop answering ``/healthz`` is the proof.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import attrs

from kit.flusher import RunningFlusher
from kit.outbox import Outbox

DATABASE_TIMEOUT = 2.0  # a probe's own timeout is a few seconds; answer inside it


@attrs.frozen
class Check:
    name: str
    ok: bool
    detail: str


@attrs.frozen
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in self.checks},
        }


async def database(
    outbox: Outbox | None,
    timeout: float = DATABASE_TIMEOUT,  # noqa: ASYNC109 - a probe's bound, not a cancel scope
) -> Check:
    """One cheap query (where the outbox was moved to, if anywhere), with a short timeout."""
    if outbox is None:
        return Check("database", False, "not open")
    try:
        async with asyncio.timeout(timeout):
            moved = await outbox.storage.moved_to()
    except TimeoutError:
        return Check("database", False, f"no answer within {timeout:g} s")
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return Check("database", False, f"unreachable: {type(exc).__name__}")
    if moved is not None:
        return Check("database", False, "the outbox was moved (migrate-outbox)")
    return Check("database", True, "reachable")


def flusher(handle: RunningFlusher | None) -> Check:
    if handle is None or not handle.healthy:
        return Check("flusher", False, "not running")
    if handle.flusher.paused_by_credentials:
        return Check("flusher", False, "paused: eTrusted refused the credentials")
    return Check("flusher", True, "running")


def intake(accepting: Callable[[], bool]) -> Check:
    if not accepting():
        return Check("intake", False, "not accepting webhooks")
    return Check("intake", True, "accepting")


async def readiness(
    outbox: Outbox | None, handle: RunningFlusher | None, accepting: Callable[[], bool]
) -> Readiness:
    return Readiness((await database(outbox), flusher(handle), intake(accepting)))


__all__ = ["Check", "Readiness", "database", "flusher", "intake", "readiness"]
