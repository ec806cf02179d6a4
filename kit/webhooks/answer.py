"""What the intake answers a platform: a status and a small JSON body, safe to show the sender.

An answer names a fixed word (``error`` or ``status``), never a secret, an e-mail, a message
from the code or a stack: whoever posts to a webhook route may be anyone.
"""

from __future__ import annotations

from typing import Any

import attrs

from kit.journal.records import IngestResult, IngestStatus


@attrs.frozen
class WebhookAnswer:
    """One HTTP answer: ``status`` and a JSON-safe ``body``; ``retry_after`` (seconds) comes
    with a 503 and becomes the ``Retry-After`` header."""

    status: int
    body: dict[str, Any]
    retry_after: int | None = attrs.field(default=None, kw_only=True)

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer needs beside its JSON content type."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}

    @property
    def ok(self) -> bool:
        """Whether the platform may forget the delivery (it is stored, or was before)."""
        return 200 <= self.status < 300


def stored(result: IngestResult) -> WebhookAnswer:
    """200 for every outcome of an ingest: accepted, duplicate or skipped on purpose, the
    delivery is in the journal and a retry would change nothing."""
    body: dict[str, Any] = {"status": result.status.value, "delivery_id": result.delivery_id}
    if result.status is IngestStatus.SKIPPED and result.skip is not None:
        body["reason"] = result.skip.reason.value
    return WebhookAnswer(200, body)


def refused(status: int, error: str, *, retry_after: int | None = None) -> WebhookAnswer:
    """An error answer with its fixed word (``unknown_source``, ``bad_signature``, ...)."""
    return WebhookAnswer(status, {"error": error}, retry_after=retry_after)


__all__ = ["WebhookAnswer", "refused", "stored"]
