"""The journal: every delivery, domain event and policy decision, in the outbox's database,
and the intake core that fills it in one transaction with the outbox.

An HTTP handler (or any framework's route) calls :meth:`Intake.ingest_raw` with a source's
headers and raw body, and answers from the :class:`IngestResult`. Backends are imported
lazily by :func:`journal_for`, so the outbox's modules can import the journal's SQL.
"""

from __future__ import annotations

from kit.journal.ingest import Intake, IntakeSource, journal_for
from kit.journal.protocol import Journal
from kit.journal.records import (
    DecisionRow,
    Delivery,
    DeliveryRow,
    EventRow,
    IngestResult,
    IngestStatus,
    JournaledDecision,
    Outcome,
    StreamHistory,
    StreamTimeline,
)

__all__ = [
    "DecisionRow",
    "Delivery",
    "DeliveryRow",
    "EventRow",
    "IngestResult",
    "IngestStatus",
    "Intake",
    "IntakeSource",
    "Journal",
    "JournaledDecision",
    "Outcome",
    "StreamHistory",
    "StreamTimeline",
    "journal_for",
]
