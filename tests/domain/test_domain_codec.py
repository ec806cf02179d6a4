"""Domain events survive the journal: dump -> JSON text -> load gives back an equal event."""

from __future__ import annotations

import enum
import json
import types
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit.domain import (
    EVENT_TYPES,
    Consent,
    DomainEvent,
    OrderFacts,
    OrderFulfilled,
    Shipment,
    dump_event,
    load_event,
)
from kit.errors import ValidationError

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
_SCALARS: dict[Any, st.SearchStrategy[Any]] = {
    str: _TEXT,
    int: st.integers(-(2**53), 2**53),
    bool: st.booleans(),
    datetime: st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=_OFFSETS
    ),
    date: st.dates(),
    Decimal: st.decimals(allow_nan=False, allow_infinity=False, places=2),
}


def _for(hint: Any) -> st.SearchStrategy[Any]:
    """A strategy for any field type the domain records use (kept closed on purpose: a new
    field type fails here loudly instead of going untested)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_for(arg) for arg in typing.get_args(hint)))
    if origin is tuple:
        return st.lists(_for(typing.get_args(hint)[0]), max_size=3).map(tuple)
    if hint is type(None):
        return st.none()
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if attrs.has(hint):
        return records(hint)
    return _SCALARS[hint]


def records(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _for(hints[f.name]) for f in attrs.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kwargs: cls(**kwargs))


@given(st.one_of(*(records(cls) for cls in EVENT_TYPES)))
def test_every_event_round_trips_through_json_text(event: DomainEvent) -> None:
    """What the journal stores as JSON reads back as an equal event of the same class."""
    text = json.dumps(dump_event(event), allow_nan=False)
    loaded = load_event(json.loads(text))
    assert type(loaded) is type(event)
    assert loaded == event
    assert dump_event(loaded) == dump_event(event)


def test_kinds_are_unique_and_name_the_record() -> None:
    kinds = [cls.kind for cls in EVENT_TYPES]
    assert len(set(kinds)) == len(kinds)
    assert dump_event(_fulfilled())["kind"] == "order_fulfilled"


def _fulfilled(**changes: Any) -> OrderFulfilled:
    event = OrderFulfilled(
        source="my-shop",
        platform="shopify",
        account="kit-demo.myshopify.com",
        stream="5560001000001",
        occurred_at=datetime(2025, 3, 4, 11, 15, 1, tzinfo=timezone(timedelta(hours=1))),
        delivery_id="5f1b2c3d-0000-4000-8000-00000000a001",
        order=OrderFacts(
            reference="#1042",
            placed_at=datetime(2025, 3, 1, 8, 12, 44, tzinfo=UTC),
            total=Decimal("59.80"),
            consent=Consent.OPTED_IN,
        ),
        shipment=Shipment(shipment_id="6200001", estimated_delivery=date(2025, 3, 6)),
    )
    return attrs.evolve(event, **changes)


def test_times_are_stored_in_utc_and_money_as_text() -> None:
    """The stored shape is stable: UTC ISO 8601, decimals as strings, enums as values."""
    dumped = dump_event(_fulfilled())
    assert dumped["occurred_at"] == "2025-03-04T10:15:01+00:00"
    assert dumped["order"]["total"] == "59.80"
    assert dumped["order"]["consent"] == "opted_in"
    assert dumped["shipment"]["estimated_delivery"] == "2025-03-06"


def test_naive_datetimes_are_refused() -> None:
    """A time without an offset is ambiguous; the record refuses it rather than guess."""
    with pytest.raises(ValueError, match="naive"):
        _fulfilled(occurred_at=datetime(2025, 3, 4, 10, 15))


def test_unknown_keys_are_ignored_so_newer_rows_stay_readable() -> None:
    dumped = {**dump_event(_fulfilled()), "added_in_a_later_version": 1}
    assert load_event(dumped) == _fulfilled()


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"kind": "order_teleported"}, "kind"),
        ({"occurred_at": "2025-03-04T10:15:01"}, "$.occurred_at"),
        ({"stream": 5560001000001}, "$.stream"),
        (
            {"order": {"reference": "#1", "placed_at": "2025-03-01T08:12:44Z", "total": 1.5}},
            "$.order.total",
        ),
        (
            {"order": {"reference": "#1", "placed_at": "2025-03-01T08:12:44Z", "consent": "yes"}},
            "$.order.consent",
        ),
    ],
)
def test_corrupt_records_name_the_field(change: dict[str, Any], path: str) -> None:
    """A corrupt journal row is a ValidationError that says where, never a bare TypeError."""
    with pytest.raises(ValidationError) as caught:
        load_event({**dump_event(_fulfilled()), **change})
    assert path in str(caught.value)
