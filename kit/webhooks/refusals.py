"""Why a delivery was not stored, as an answer and one log line.

Each refusal is logged once with ``action="webhook.refused"``, the source, the status and a
fixed reason word. The log shows the adapter's message with e-mails masked; it never holds a
secret or a signature (:class:`~kit.errors.VerificationError` messages carry neither). The
answer shows only the fixed word.
"""

from __future__ import annotations

import logging
import re

from kit.errors import (
    ErasureInFlightError,
    OutboxMovedError,
    PayloadError,
    StorageError,
    VerificationError,
)
from kit.redact import mask_emails
from kit.webhooks.answer import WebhookAnswer, refused
from kit.webhooks.body import BodyTooLarge, BodyUnreadable

logger = logging.getLogger(__name__)

_MAX_DETAIL = 200  # an adapter's message is for a human; a whole body is not
_WORD = re.compile(r"[a-z][a-z0-9_]{0,39}\Z")


def _log(
    level: int,
    source: str,
    status: int,
    reason: str,
    detail: str = "",
    **extra: object,
) -> None:
    logger.log(
        level,
        "webhook for %s refused with %s: %s%s",
        source,
        status,
        reason,
        f" ({detail})" if detail else "",
        extra={
            "action": "webhook.refused",
            "source": source,
            "status": status,
            "reason": reason,
            **extra,
        },
    )


def _detail(exc: BaseException) -> str:
    return mask_emails(str(exc))[:_MAX_DETAIL]


def unknown_source(source: str) -> WebhookAnswer:
    # The name came from the URL: log a bounded, quoted form of it.
    _log(logging.WARNING, repr(source[:64]), 404, "unknown_source")
    return refused(404, "unknown_source")


def too_large(source: str, exc: BodyTooLarge, limit: int) -> WebhookAnswer:
    how = "declared" if exc.declared else "sent"
    _log(logging.WARNING, source, 413, "body_too_large", f"{how} more than {limit} bytes")
    return refused(413, "body_too_large")


def unreadable(source: str, exc: BodyUnreadable) -> WebhookAnswer:
    _log(logging.WARNING, source, 400, "unreadable_body", _detail(exc))
    return refused(400, "unreadable_body")


def not_verified(source: str, exc: VerificationError) -> WebhookAnswer:
    # A third-party adapter's reason is shown to the sender only if it is a plain word.
    reason = exc.reason if _WORD.match(exc.reason) else "verification_failed"
    _log(logging.WARNING, source, 401, reason, _detail(exc))
    return refused(401, reason)


def bad_payload(source: str, exc: PayloadError) -> WebhookAnswer:
    _log(logging.WARNING, source, 400, "invalid_payload", _detail(exc))
    return refused(400, "invalid_payload")


def storage_failed(
    source: str, exc: StorageError | OutboxMovedError, retry_after: int
) -> WebhookAnswer:
    """503: nothing was stored (the ingest is one transaction), so the platform's retry is
    taken in as new. A moved outbox is an operator's to fix; until then the platform retries."""
    reason = "outbox_moved" if isinstance(exc, OutboxMovedError) else "storage_unavailable"
    _log(logging.ERROR, source, 503, reason, _detail(exc))
    return refused(503, "storage_unavailable", retry_after=retry_after)


def erasure_in_flight(source: str, exc: ErasureInFlightError, retry_after: int) -> WebhookAnswer:
    """503: a redact request found invites being sent, so nothing of it was stored (it would
    have left their payloads behind); the platform's retry, after the sends, erases it all. A
    WARNING, not an ERROR: nothing is broken, and it passes by itself."""
    _log(
        logging.WARNING,
        source,
        503,
        "erasure_in_flight",
        f"delivery {exc.delivery_id}: {exc.in_flight} entries being sent, erased on the retry",
        delivery_id=exc.delivery_id,
        in_flight=exc.in_flight,
    )
    return refused(503, "erasure_in_flight", retry_after=retry_after)


def crashed(source: str) -> WebhookAnswer:
    """500 for an exception nobody expected: a bug, logged with its traceback (call this in
    an ``except`` block). The ingest's transaction rolled back, so nothing was stored."""
    logger.exception(
        "webhook for %s failed unexpectedly",
        source,
        extra={"action": "webhook.failed", "source": source, "status": 500},
    )
    return refused(500, "internal_error")


__all__ = [
    "bad_payload",
    "crashed",
    "erasure_in_flight",
    "not_verified",
    "storage_failed",
    "too_large",
    "unknown_source",
    "unreadable",
]
