"""Running a file through a source's intake: streamed, in batches, every bad row reported.

Rows are read, checked and merged one at a time (:mod:`adapters.importer.transactions`); each
complete transaction becomes its canonical body, its identity and its domain event through
the source's adapter, exactly as a webhook does, and :data:`BATCH` of them are journaled and
decided in one transaction of the outbox's database (:meth:`kit.journal.Intake.ingest_many`).
So memory holds one batch, not the file; a crash loses at most the batch in flight, and
running the same file again finishes the job (what was committed is folded as duplicates).

A dry run journals nothing: each transaction is looked up in the journal (already imported?)
and decided by the policy on the history the journal holds, as ``backfill --dry-run`` does
(:mod:`kit.journal.preview`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from adapters.importer.adapter import encode
from adapters.importer.reader import BadRow, FileFormat, FileReader
from adapters.importer.transactions import Transaction, transactions
from kit.adapters import DeliveryIdentity, ParseResult
from kit.journal import Intake, IntakeSource
from kit.journal.preview import preview
from kit.journal.records import IngestStatus, JournaledDecision, Outcome
from kit.policy import Decision, Enqueue, Recorded, Skipped

BATCH = 500
"""Transactions per database transaction: one commit for many, and short enough that the
webhooks ``serve`` takes in beside an import wait for the writer no longer than a moment."""

KEPT_ERRORS = 1000
"""Bad rows kept for the report (every one is still passed to ``on_bad_row`` as found)."""

_NO_HEADERS: dict[str, str] = {}


@attrs.define
class ImportReport:
    """What an import did, counted; ``outcomes`` by what the policy decided and did."""

    path: str
    file_format: FileFormat
    detected_by: str
    dry_run: bool = False
    rows: int = 0  # data rows read, good and bad
    bad_rows: int = 0
    transactions: int = 0
    duplicates: int = 0  # transactions journaled before with the same content
    outcomes: Counter[str] = attrs.field(factory=Counter)
    ignored_columns: tuple[str, ...] = ()
    errors: list[BadRow] = attrs.field(factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.file_format.value,
            "detected_by": self.detected_by,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "bad_rows": self.bad_rows,
            "transactions": self.transactions,
            "duplicates": self.duplicates,
            "outcomes": dict(sorted(self.outcomes.items())),
            "ignored_columns": list(self.ignored_columns),
            "errors": [
                {"line": e.line, "reason": e.reason, "reference": e.reference} for e in self.errors
            ],
            "errors_truncated": self.bad_rows > len(self.errors),
        }


@attrs.frozen
class Progress:
    """Handed to the progress callback after every batch."""

    bytes_read: int
    rows: int
    transactions: int


def outcome_name(journaled: JournaledDecision) -> str:
    """One word per decision for the tally: ``enqueued``, ``skipped:no_consent``, ..."""
    decision = journaled.decision
    if isinstance(decision, Skipped):
        return f"skipped:{decision.reason.value}"
    if isinstance(decision, Recorded):
        return f"recorded:{decision.note.value}"
    if journaled.outcome is Outcome.RECORDED:
        return decision.kind  # throttled, stale
    return journaled.outcome.value


def _preview_name(decision: Decision) -> str:
    if isinstance(decision, Enqueue):
        return "enqueued"
    return outcome_name(JournaledDecision(decision=decision, outcome=Outcome.RECORDED))


class Importer:
    """Imports files into one import source through ``intake``."""

    def __init__(
        self,
        source: IntakeSource,
        intake: Intake,
        *,
        batch: int = BATCH,
        on_bad_row: Callable[[BadRow], None] | None = None,
        progress: Callable[[Progress], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self._source = source
        self._intake = intake
        self._batch = batch
        self._on_bad_row = on_bad_row
        self._progress = progress
        self._clock = clock

    async def run(
        self, path: Path, *, file_format: FileFormat | None = None, dry_run: bool = False
    ) -> ImportReport:
        with path.open("rb") as stream:
            reader = FileReader(stream, path, file_format=file_format)
            report = ImportReport(
                path=str(path),
                file_format=reader.format,
                detected_by=reader.detected_by,
                dry_run=dry_run,
            )
            started = self._clock()
            pending: list[tuple[DeliveryIdentity, ParseResult]] = []
            for item in transactions(reader):
                if isinstance(item, BadRow):
                    self._bad(report, item)
                    continue
                report.transactions += 1
                report.rows += item.rows
                pending.append(self._parse(item, started))
                if len(pending) >= self._batch:
                    await self._send(report, pending, dry_run)
                    pending = []
                    self._tick(report, reader)
            if pending:
                await self._send(report, pending, dry_run)
            report.ignored_columns = reader.ignored_columns
            self._tick(report, reader)
        return report

    def _parse(self, tx: Transaction, started: float) -> tuple[DeliveryIdentity, ParseResult]:
        body = encode(tx)
        adapter = self._source.adapter
        identity = adapter.identify(_NO_HEADERS, body)
        when = datetime.fromtimestamp(started, UTC)
        return identity, adapter.parse(_NO_HEADERS, body, received_at=when)

    def _bad(self, report: ImportReport, bad: BadRow) -> None:
        report.rows += 1
        report.bad_rows += 1
        if len(report.errors) < KEPT_ERRORS:
            report.errors.append(bad)
        if self._on_bad_row is not None:
            self._on_bad_row(bad)

    def _tick(self, report: ImportReport, reader: FileReader) -> None:
        if self._progress is not None:
            self._progress(Progress(reader.bytes_read, report.rows, report.transactions))

    async def _send(
        self,
        report: ImportReport,
        pending: list[tuple[DeliveryIdentity, ParseResult]],
        dry_run: bool,
    ) -> None:
        if dry_run:
            for identity, parsed in pending:
                names = await self._preview(identity, parsed)
                if names is None:
                    report.duplicates += 1
                else:
                    report.outcomes.update(names)
            return
        results = await self._intake.ingest_many(self._source, pending)
        for result in results:
            if result.status is IngestStatus.DUPLICATE:
                report.duplicates += 1
            elif result.skip is not None:
                report.outcomes[f"skipped:{result.skip.reason.value}"] += 1
            report.outcomes.update(outcome_name(d) for d in result.decisions)

    async def _preview(self, identity: DeliveryIdentity, parsed: ParseResult) -> list[str] | None:
        """What ingesting would decide, by outcome name; None when it is a duplicate."""
        seen = await preview(
            self._intake.journal, self._source.name, self._source.policy, identity, parsed
        )
        if seen.duplicate:
            return None
        if seen.skip is not None:
            return [f"skipped:{seen.skip.reason.value}"]
        return [_preview_name(d) for d in seen.decisions]


__all__ = ["BATCH", "KEPT_ERRORS", "ImportReport", "Importer", "Progress", "outcome_name"]
