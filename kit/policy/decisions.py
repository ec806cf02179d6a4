"""What the policy decided about one domain event: values the journal stores and replays.

Each decision names the outbox key it concerns (``{platform}:{account}:{stream}:{event type}``),
so the journal can show an order's whole story and the policy can replay, from earlier
decisions alone, what the outbox holds for a key. :class:`Amend` carries the full new values,
never a difference, so applying it twice changes nothing.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Any, ClassVar

import attrs
from cattrs.gen import make_dict_unstructure_fn, override

from kit.domain import LineItem, OrderFacts, SkipReason, utc
from kit.domain.codec import KIND, TaggedCodec, converter, register_enum
from kit.mapping import BodyFacts


def dedupe_key(platform: str, account: str, stream: str, event_type: str) -> str:
    """The outbox key of one invite: one per order (or stream) and eTrusted event type."""
    return f"{platform}:{account}:{stream}:{event_type}"


class Note(enum.StrEnum):
    """Why an event changed nothing (:class:`Recorded`)."""

    NOTHING_TO_DO = "nothing_to_do"  # no trigger fires on it and nothing waits to be changed
    ALREADY_SENT = "already_sent"  # it would withdraw or change an invite that already left
    ALREADY_DECIDED = "already_decided"  # the key was enqueued, cancelled or throttled before
    ERASURE = "erasure"  # an erasure request: the journal and outbox act, not the policy


@attrs.frozen(kw_only=True)
class Enqueue:
    """Put an invite into the outbox, to be sent not before ``send_after``."""

    kind: ClassVar[str] = "enqueue"
    key: str
    event_type: str
    channel_id: str
    facts: BodyFacts
    send_after: datetime = attrs.field(converter=utc)


@attrs.frozen(kw_only=True)
class Skipped:
    """A trigger fired, but an exclusion or the order's state rules the invite out (for now:
    a later event that lifts the reason, such as an e-mail added to the order, may still
    enqueue it)."""

    kind: ClassVar[str] = "skipped"
    key: str
    reason: SkipReason
    detail: str | None = None


@attrs.frozen(kw_only=True)
class Cancel:
    """Withdraw the waiting entry (cancelled, refunded, or now excluded)."""

    kind: ClassVar[str] = "cancel"
    key: str
    reason: SkipReason


@attrs.frozen(kw_only=True)
class Amend:
    """Change a waiting entry: its products (a partial refund), when it is sent and its
    estimated delivery date (a delivery reported after a fallback was planned), so the entry
    ends as it would have had the events come in another order."""

    kind: ClassVar[str] = "amend"
    key: str
    products: tuple[LineItem, ...]
    send_after: datetime = attrs.field(converter=utc)
    estimated_delivery_date: date | None = None


@attrs.frozen(kw_only=True)
class Throttled:
    """The customer had an invite within the trigger's ``per_customer`` window; final.

    ``last_invite_at`` is when the invite it defers to is due: the customer's nearest one.
    """

    kind: ClassVar[str] = "throttled"
    key: str
    last_invite_at: datetime = attrs.field(converter=utc)


@attrs.frozen(kw_only=True)
class Stale:
    """The event is older than what the stream already held and changes nothing."""

    kind: ClassVar[str] = "stale"
    newest_at: datetime = attrs.field(converter=utc)


@attrs.frozen(kw_only=True)
class Recorded:
    """Journaled, nothing to do (``key`` when it concerns one entry)."""

    kind: ClassVar[str] = "recorded"
    note: Note
    key: str | None = None
    detail: str | None = None


Decision = Enqueue | Skipped | Cancel | Amend | Throttled | Stale | Recorded

DECISION_TYPES: tuple[type[Decision], ...] = (
    Enqueue,
    Skipped,
    Cancel,
    Amend,
    Throttled,
    Stale,
    Recorded,
)

register_enum(converter, Note)
decisions = TaggedCodec[Decision](DECISION_TYPES, subject="policy decision")
"""The journal's codec for decisions (same storage format as domain events)."""


# The journal keeps an order's facts once, in its events: an Enqueue's body may leave its
# order out (dump_decision(..., order=False)), and the reader puts back the order its stream's
# events fold to (load_decision(..., order=...)), so the bulk of the body (the order) is
# neither unstructured nor structured for the decision. The stand-in is what the codec
# structures in place of the order.
_ENQUEUE_WITHOUT_ORDER = make_dict_unstructure_fn(
    Enqueue,
    converter,
    facts=override(
        unstruct_hook=make_dict_unstructure_fn(BodyFacts, converter, order=override(omit=True))
    ),
)
_STAND_IN = converter.unstructure(
    OrderFacts(reference="", placed_at=datetime(1970, 1, 1, tzinfo=UTC)), OrderFacts
)


def dump_decision(decision: Decision, *, order: bool = True) -> dict[str, Any]:
    """``order=False``: an :class:`Enqueue`'s ``facts`` without their ``order``."""
    if order or not isinstance(decision, Enqueue):
        return decisions.dump(decision)
    return {KIND: Enqueue.kind, **_ENQUEUE_WITHOUT_ORDER(decision)}


def load_decision(data: Any, *, order: OrderFacts | None = None) -> Decision:
    """``order``: the order of an :class:`Enqueue` stored without it (ignored when the body
    has its own); without one, such a body fails validation."""
    facts = data.get("facts") if isinstance(data, dict) else None
    if order is None or not isinstance(facts, dict) or "order" in facts:
        return decisions.load(data)
    decision = decisions.load({**data, "facts": {**facts, "order": _STAND_IN}})
    if not isinstance(decision, Enqueue):
        return decision
    return attrs.evolve(decision, facts=attrs.evolve(decision.facts, order=order))


__all__ = [
    "DECISION_TYPES",
    "Amend",
    "Cancel",
    "Decision",
    "Enqueue",
    "Note",
    "Recorded",
    "Skipped",
    "Stale",
    "Throttled",
    "dedupe_key",
    "dump_decision",
    "load_decision",
]
