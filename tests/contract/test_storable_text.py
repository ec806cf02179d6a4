"""Text PostgreSQL cannot store is refused at the door by every backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import event

from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_every_backend_refuses_what_postgresql_cannot_store(
    tmp_path: Path, backend: str
) -> None:
    """A NUL character in a transaction reference or a custom key is a ValidationError on every
    backend, so an outbox that takes it can always be moved to PostgreSQL (whose text cannot
    hold it), and nothing is stored."""
    from kit.errors import ValidationError
    from kit.outbox import State
    from kit.outbox.memory import InMemoryStorage

    storage = InMemoryStorage() if backend == "memory" else SQLiteStorage(tmp_path / "o.db")
    async with Outbox(storage) as app:
        with pytest.raises(ValidationError, match=r"transaction\.reference: contains a NUL"):
            await app.enqueue(event("o-2\x00", email="b@example.org"))
        with pytest.raises(ValidationError, match="key: contains a NUL"):
            await app.enqueue(event("o-3", email="c@example.org"), key="mine\x00")
        assert (await app.stats()).counts[State.PENDING] == 0
