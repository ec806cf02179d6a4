"""Enqueueing inside the application's own transaction (SupportsExternalTransaction)."""

from __future__ import annotations

import pytest

from kit.errors import OutboxMovedError
from kit.outbox.protocol import SupportsExternalTransaction
from kit.outbox.types import (
    State,
)
from kit.testing.storage_contract._base import ContractBase
from kit.testing.storage_contract._support import (
    T,
    enqueue,
    entry,
    new,
)
from kit.testing.storage_contract.backend import Backend


class EnqueueInContract(ContractBase):
    """Skipped for a backend without ``enqueue_in`` or without ``Backend.external``."""

    async def test_enqueue_in_commits_and_rolls_back_with_the_callers_transaction(
        self,
        backend: Backend,
    ) -> None:
        """Entries enqueued on the application's own connection become visible to the outbox when
        the application commits, and vanish when it rolls back; duplicates are reported as by
        ``enqueue``, and a moved outbox refuses them as well."""
        storage = backend.storage
        if not isinstance(storage, SupportsExternalTransaction):
            pytest.skip(f"{backend.name}: no external transaction to enqueue in")
        if backend.external is None:
            pytest.skip(
                f"{backend.name}: no connection of the application's own (Backend.external)"
            )
        await enqueue(storage, "known")
        async with backend.external() as app:
            await app.begin()
            results = await storage.enqueue_in(
                app.connection, [new("a"), new("a"), new("known")], now=T
            )
            assert [(r.key, r.duplicate) for r in results] == [
                ("a", False),
                ("a", True),
                ("known", True),
            ]
            assert await storage.get("a") is None  # not committed yet
            await app.commit()
            assert (await entry(storage, "a")).state is State.PENDING

            await app.begin()
            assert not (await storage.enqueue_in(app.connection, [new("b")], now=T))[0].duplicate
            assert await storage.enqueue_in(app.connection, [], now=T) == []
            await app.rollback()
            assert await storage.get("b") is None

            await storage.set_moved("postgresql://elsewhere/shop")
            await app.begin()
            for keys in (["c"], ["c", "d"], ["known"]):
                with pytest.raises(OutboxMovedError, match="moved to postgresql://elsewhere/shop"):
                    await storage.enqueue_in(app.connection, [new(k) for k in keys], now=T)
            await app.rollback()
        assert [e.key for e in await storage.entries()] == ["known", "a"]
