"""The journal: every delivery, domain event and policy decision, in the outbox's database.

Backends are imported lazily (:func:`kit.journal.ingest.journal_for`), so that the outbox's
SQLite module can import the journal's SQL without a cycle.
"""

from __future__ import annotations
