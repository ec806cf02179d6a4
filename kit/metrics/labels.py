"""The label values metrics may carry: each from a fixed set, never an order id or an e-mail.

A Prometheus series per label value lives as long as the server keeps it, so every value here
comes from an enum, a fixed word list, or the configured source names; anything else becomes
``other`` (or ``unknown`` for a source). :func:`allowed` lists every set, for a test that scrapes
a running service and checks each label value against it.
"""

from __future__ import annotations

from collections.abc import Iterable

from kit.domain.events import EVENT_TYPES
from kit.domain.skip import SkipReason
from kit.journal.records import IngestStatus, Outcome
from kit.outbox.types import AttemptKind, State

UNKNOWN_SOURCE = "unknown"
OTHER = "other"
NONE = "none"

# A refused delivery by its answer's word; every 401 is one word, whatever the adapter said.
REFUSALS = frozenset(
    {
        "unknown_source",
        "body_too_large",
        "unreadable_body",
        "verification_failed",
        "invalid_payload",
        "storage_unavailable",  # a moved outbox too: its log line and /readyz tell the two apart
        "erasure_in_flight",
        "internal_error",
    }
)
ANSWERS = frozenset(s.value for s in IngestStatus) | REFUSALS | {OTHER}
EVENT_KINDS = frozenset(t.kind for t in EVENT_TYPES)
STATUS_CLASSES = frozenset({"2xx", "3xx", "4xx", "5xx", NONE})
PAUSES = frozenset({"credentials", "rate_limit"})


def source(name: str | None, known: Iterable[str]) -> str:
    return name if name is not None and name in known else UNKNOWN_SOURCE


def answer(status: int, body: dict[str, object]) -> str:
    """``accepted``/``duplicate``/``skipped`` for a stored delivery, else the refusal's word."""
    if 200 <= status < 300:
        word = body.get("status")
    elif status == 401:
        return "verification_failed"
    else:
        word = body.get("error")
    return word if isinstance(word, str) and word in ANSWERS else OTHER


def status_class(status: int | None) -> str:
    """``2xx``..``5xx`` for an HTTP answer; ``none`` when no answer came (timeout, refused
    connection)."""
    if status is None or not 200 <= status < 600:
        return NONE
    return f"{status // 100}xx"


def event_kind(kind: str) -> str:
    return kind if kind in EVENT_KINDS else OTHER


def skip_reason(reason: object) -> str:
    return reason.value if isinstance(reason, SkipReason) else NONE


def allowed(sources: Iterable[str]) -> dict[str, frozenset[str]]:
    """Every label name the kit uses, with every value it may take."""
    return {
        "source": frozenset(sources) | {UNKNOWN_SOURCE},
        "answer": ANSWERS,
        "outcome": frozenset(o.value for o in Outcome),
        "reason": frozenset(r.value for r in SkipReason) | {NONE},
        "state": frozenset(s.value for s in State),
        "kind": frozenset(k.value for k in AttemptKind),
        "event_kind": EVENT_KINDS | {OTHER},
        "status_class": STATUS_CLASSES,
        "pause": PAUSES,
    }


__all__ = ["allowed", "answer", "event_kind", "skip_reason", "source", "status_class"]
