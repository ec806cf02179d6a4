"""Text PostgreSQL cannot store is refused at the door, whatever the backend behind it.

Run against every backend of the contract suite (``storage`` in tests/contract/conftest.py), so
an outbox on any of them only ever holds entries that can be moved to PostgreSQL.
"""

from __future__ import annotations

import pytest
from builders import event

from kit.errors import ValidationError
from kit.outbox import Outbox, State
from kit.outbox.protocol import Storage


async def test_every_backend_refuses_what_postgresql_cannot_store(storage: Storage) -> None:
    """A NUL character in a transaction reference or a custom key is a ValidationError on every
    backend, PostgreSQL included, and nothing is stored, so an outbox that took an event can
    always be moved to PostgreSQL (whose text cannot hold a NUL)."""
    app = Outbox(storage, owns_storage=False)  # the fixture opens and closes the storage
    with pytest.raises(ValidationError, match=r"transaction\.reference: contains a NUL"):
        await app.enqueue(event("o-2\x00", email="b@example.org"))
    with pytest.raises(ValidationError, match="key: contains a NUL"):
        await app.enqueue(event("o-3", email="c@example.org"), key="mine\x00")
    assert (await app.stats()).counts[State.PENDING] == 0
