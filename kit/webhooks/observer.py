"""The contract of something that watches every answered delivery (metrics, for one).

Called once per delivery, after its answer was decided and before it is sent; it must be quick
and must not raise. ``source`` is None for a name no source has (it came from the URL, so it is
never a label); ``result`` is the ingest's result when the delivery was stored.
"""

from __future__ import annotations

from typing import Protocol

from kit.journal.records import IngestResult
from kit.webhooks.answer import WebhookAnswer


class WebhookObserver(Protocol):
    def answered(
        self,
        source: str | None,
        answer: WebhookAnswer,
        result: IngestResult | None,
        seconds: float,
    ) -> None: ...


__all__ = ["WebhookObserver"]
