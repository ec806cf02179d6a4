"""Every backend's transaction object offers each operation the ingest steps yield, with the
same parameters: the steps call them by name (kit/journal/core.py)."""

from __future__ import annotations

import inspect

import pytest

from kit.journal._pg_tx import PgTx
from kit.journal._sqlite_tx import SQLiteTx
from kit.journal.ingest import journal_for
from kit.journal.memory import MemoryTx
from kit.journal.protocol import JournalTx
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage

OPERATIONS = {
    name: inspect.signature(member)
    for name, member in vars(JournalTx).items()
    if inspect.isfunction(member) and not name.startswith("_")
}


@pytest.mark.parametrize("tx", [SQLiteTx, MemoryTx, PgTx], ids=lambda cls: cls.__name__)
def test_each_backend_offers_every_operation(tx: type) -> None:
    assert {"record_delivery", "read_stream", "insert_entry", "erase_streams"} <= set(OPERATIONS)
    for name, signature in OPERATIONS.items():
        method = getattr(tx, name, None)
        assert method is not None, f"{tx.__name__} lacks {name}"
        assert list(inspect.signature(method).parameters) == list(signature.parameters), name
        assert inspect.iscoroutinefunction(method) is (tx is PgTx), name


def test_an_in_memory_outbox_has_one_journal() -> None:
    """Its rows live in the journal object: a second journal would start empty."""
    outbox = Outbox(InMemoryStorage())
    assert journal_for(outbox) is journal_for(outbox)
