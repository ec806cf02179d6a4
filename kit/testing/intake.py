"""An in-memory outbox with its journal and intake: the whole intake path with no database.

Deliveries go through the real :class:`~kit.journal.Intake` (verify, identify, parse, journal,
policy, outbox), so a test of an adapter sees what production would store, in dictionaries.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import attrs

from kit.journal import Intake, Journal, journal_for
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage


@attrs.frozen(kw_only=True)
class MemoryIntake:
    """An opened in-memory outbox, the journal that shares it, and the intake over both."""

    outbox: Outbox
    journal: Journal
    intake: Intake


@asynccontextmanager
async def memory_intake(*, clock: Callable[[], float] = time.time) -> AsyncIterator[MemoryIntake]:
    """An outbox, journal and intake in memory for the block; ``clock`` stamps all three."""
    async with Outbox(InMemoryStorage(), clock=clock) as outbox:
        journal = journal_for(outbox, clock=clock)
        yield MemoryIntake(outbox=outbox, journal=journal, intake=Intake(outbox, clock=clock))


__all__ = ["MemoryIntake", "memory_intake"]
