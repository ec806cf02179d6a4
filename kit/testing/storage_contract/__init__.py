"""The storage contract as a pytest suite: run it against any outbox backend.

Subclass :class:`StorageContract` in a test module and give it a ``backend`` fixture that yields
an opened :class:`Backend`; pytest collects every test of the contract for that class::

    class TestMyBackend(StorageContract):
        @pytest_asyncio.fixture
        async def backend(self) -> AsyncIterator[Backend]:
            async with Backend("mine", MyStorage()) as opened:
                yield opened

Where the protocol (kit/outbox/protocol.py) leaves a choice open, the suite pins the one every
backend makes:

* ``due_at`` of a new entry is ``max(now, send_after)``.
* A completion ends its attempt once: it applies only while the attempt is current, the entry is
  ``sending``/``in_doubt`` and the claim's lease is still recorded (a repeat returns False).
* ``Delivered`` clears ``last_error``; ``Release`` keeps it; the other outcomes store their text.
* ``retry_dead`` skips dead entries whose payload was purged (there is nothing left to send).
* ``purge`` and the payload scrub of ``forget_customer`` do not touch ``updated_at``; state
  changes do. ``forget_customer`` also clears ``email_hash``, so asking again finds nothing.
* ``stats().last_error`` is the error of the most recently updated entry that has one.
* ``load`` gives entries new ids in the order of the records; everything else is kept.
* ``amend`` changes only a ``pending`` entry, whose due time becomes ``max(now, send_after)``.

This package imports pytest and pytest-asyncio; :mod:`kit.testing` does not import it.
"""

from __future__ import annotations

from kit.testing.storage_contract.amend import AmendContract
from kit.testing.storage_contract.backend import Backend, StorageFactory
from kit.testing.storage_contract.claim import ClaimContract
from kit.testing.storage_contract.dump_load import DumpLoadContract
from kit.testing.storage_contract.enqueue import EnqueueContract
from kit.testing.storage_contract.enqueue_in import EnqueueInContract
from kit.testing.storage_contract.external import (
    ExternalFactory,
    ExternalTransaction,
    postgres_external,
    sqlite_external,
)
from kit.testing.storage_contract.finish import FinishContract
from kit.testing.storage_contract.holds import HoldContract
from kit.testing.storage_contract.operators import OperatorContract
from kit.testing.storage_contract.reading import ReadingContract
from kit.testing.storage_contract.transitions import TransitionContract


class StorageContract(
    EnqueueContract,
    AmendContract,
    ClaimContract,
    FinishContract,
    TransitionContract,
    OperatorContract,
    HoldContract,
    EnqueueInContract,
    ReadingContract,
    DumpLoadContract,
):
    """Every part of the storage contract. A subclass provides the ``backend`` fixture.

    Each part is a class of its own (``ClaimContract``, ``TransitionContract``, ...), for a
    backend that is built up one subject at a time.
    """


__all__ = [
    "AmendContract",
    "Backend",
    "ClaimContract",
    "DumpLoadContract",
    "EnqueueContract",
    "EnqueueInContract",
    "ExternalFactory",
    "ExternalTransaction",
    "FinishContract",
    "HoldContract",
    "OperatorContract",
    "ReadingContract",
    "StorageContract",
    "StorageFactory",
    "TransitionContract",
    "postgres_external",
    "sqlite_external",
]
