"""The file importer: CSV or JSON-lines files of past transactions -> domain events.

Registered as the ``import`` entry point of ``etrusted_kit.adapters`` and run by
``etrusted-kit import FILE --source NAME``; see ``docs/adapters/import.md`` for the columns,
idempotency, errors and memory.
"""

from __future__ import annotations

from adapters.importer.adapter import ImportAdapter, ImportPlugin, decode, encode, plugin
from adapters.importer.config import ImportConfig, ImportedAs
from adapters.importer.reader import BadRow, FileFormat, FileReader
from adapters.importer.runner import BATCH, Importer, ImportReport, Progress
from adapters.importer.transactions import Transaction, transactions

__all__ = [
    "BATCH",
    "BadRow",
    "FileFormat",
    "FileReader",
    "ImportAdapter",
    "ImportConfig",
    "ImportPlugin",
    "ImportReport",
    "ImportedAs",
    "Importer",
    "Progress",
    "Transaction",
    "decode",
    "encode",
    "plugin",
    "transactions",
]
