"""An outbox with its intake on SQLite and PostgreSQL, and an import source to run files into."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from adapters.importer import ImportAdapter, ImportConfig, Importer, ImportReport
from adapters.importer.config import ImportedAs
from kit.journal import Intake, IntakeSource
from kit.journal.records import StreamHistory
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.outbox.types import Entry
from kit.policy import PolicyConfig, Trigger

from .files import CHANNEL

SOURCE = "legacy"


def import_source(*, event: ImportedAs = ImportedAs.ORDER_FULFILLED, **policy: Any) -> IntakeSource:
    """The import source ``legacy``: the default ``order_shipped`` trigger unless ``policy``
    gives ``triggers``; ``policy`` sets any other policy key (``consent``, ...)."""
    options: dict[str, Any] = {"channel_id": CHANNEL}
    options.update(policy)
    return IntakeSource(
        name=SOURCE,
        adapter=ImportAdapter(source=SOURCE, config=ImportConfig(event=event)),
        policy=PolicyConfig(**options),
    )


def delayed(delay: str) -> tuple[Trigger, ...]:
    return (Trigger(on="order_fulfilled", event_type="order_shipped", delay=delay),)


@attrs.define
class Store:
    outbox: Outbox
    tmp: Path
    clock: float = 1_767_225_600.0  # the import's start, moved on by each run
    runs: int = 0

    async def run(
        self,
        text: str | bytes,
        *,
        name: str = "orders.csv",
        source: IntakeSource | None = None,
        dry_run: bool = False,
        batch: int = 2,
    ) -> ImportReport:
        """Write ``text`` to a file called ``name`` and import it (small batches, so a test's
        few transactions span several)."""
        self.runs += 1
        path = self.tmp / f"{self.runs}-{name}"
        if isinstance(text, str):
            path.write_text(text, encoding="utf-8")
        else:
            path.write_bytes(text)
        self.clock += 60.0
        start = self.clock
        importer = Importer(
            source or import_source(), Intake(self.outbox), batch=batch, clock=lambda: start
        )
        return await importer.run(path, dry_run=dry_run)

    async def entries(self) -> list[Entry]:
        return await self.outbox.entries()

    async def history(self, reference: str) -> StreamHistory:
        return await Intake(self.outbox).journal.history(SOURCE, reference)

    def key(self, reference: str, event_type: str = "order_shipped") -> str:
        return f"import:{SOURCE}:{reference}:{event_type}"


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    outbox = Outbox(SQLiteStorage(tmp_path / "outbox.db"))
    await outbox.open()
    yield Store(outbox, tmp_path)
    await outbox.aclose()


@pytest.fixture
async def postgres_store(pg_dsn: str, pg_schema: str, tmp_path: Path) -> AsyncIterator[Store]:
    from kit.outbox.postgres import PostgresStorage

    outbox = Outbox(PostgresStorage(pg_dsn, schema=pg_schema))
    await outbox.open()
    yield Store(outbox, tmp_path)
    await outbox.aclose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest) -> Store:
    value: Store = request.getfixturevalue(f"{request.param}_store")
    return value
