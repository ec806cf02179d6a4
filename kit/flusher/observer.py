"""The contract of something that watches what the flusher decides (metrics, for one).

Called synchronously from the one place a decision takes effect, once per decision, so an
observer must be quick and must not raise: it runs inside the send loop.
"""

from __future__ import annotations

from typing import Protocol

from kit.flusher.decisions import Decision
from kit.outbox.types import AttemptKind, Claimed


class FlusherObserver(Protocol):
    def decided(
        self, item: Claimed, decision: Decision, kind: AttemptKind | None, now: float
    ) -> None:
        """One decision about ``item``; ``kind`` is None when no request was made for it."""


__all__ = ["FlusherObserver"]
