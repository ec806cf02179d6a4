"""JSON-able dicts for domain records, for the journal: exact round trips, stable shapes.

A record is a flat dict of its fields plus ``"kind"``, the class's stable name. Date-times are
ISO 8601 in UTC with microseconds, dates ``yyyy-mm-dd``, money a decimal string (never a float),
enums their value, tuples lists. Reading ignores keys it does not know, so a row written by a
newer kit (one more optional field) stays readable after a downgrade; a missing required field
or a wrong type is a :class:`~kit.errors.ValidationError` naming the field.

This converter is separate from :mod:`kit.codec` on purpose: that one speaks eTrusted's
camelCase wire and reads responses leniently; this one is the kit's own storage format.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import cattrs
from cattrs.v import transform_error

from kit.codec import unstructure_optional_scalars_as_is
from kit.domain.events import EVENT_TYPES, DomainEvent, ErasureScope
from kit.domain.facts import Consent
from kit.domain.skip import SkipReason
from kit.errors import FieldError, ValidationError

KIND = "kind"


class Kinded(Protocol):
    """A record class with a stable ``kind`` name."""

    kind: ClassVar[str]


T = TypeVar("T", bound=Kinded)


def _structure_datetime(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"a stored date-time must carry its offset: {value!r}")
    return parsed


def _structure_date(value: Any, _: type) -> date:
    if not isinstance(value, str):
        raise TypeError(f"expected yyyy-mm-dd, got {type(value).__name__}")
    return date.fromisoformat(value)


def _structure_decimal(value: Any, _: type) -> Decimal:
    if not isinstance(value, str):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal: {value!r}") from None
    if not parsed.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return parsed


def _is_enum(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, enum.Enum)


def _structure_enum(value: Any, cls: type[enum.Enum]) -> enum.Enum:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise TypeError(f"expected one of {[m.value for m in cls]}, got {type(value).__name__}")
    return cls(value)


def register_enum(converter: cattrs.Converter, cls: type[enum.Enum]) -> None:
    """Read ``cls`` from its value, strictly (the str/int hooks would accept any string)."""
    converter.register_structure_hook(cls, _structure_enum)


def _strict(kind: type) -> Any:
    def structure(value: Any, _: type) -> Any:
        if type(value) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(
        forbid_extra_keys=False, unstruct_collection_overrides={tuple: list}
    )
    unstructure_optional_scalars_as_is(converter)
    converter.register_unstructure_hook(datetime, lambda value: value.isoformat())
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_unstructure_hook(date, lambda value: value.isoformat())
    converter.register_structure_hook(date, _structure_date)
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, _structure_decimal)
    # No coercion: a number where a string belongs is a corrupt record, not something to fix.
    for kind in (str, int, bool):
        converter.register_structure_hook(kind, _strict(kind))
    # Each enum by name: a StrEnum is a str, and dispatch would hand it to the str hook.
    for enum_class in (Consent, ErasureScope, SkipReason):
        register_enum(converter, enum_class)
    converter.register_unstructure_hook_func(_is_enum, lambda value: value.value)
    return converter


converter = _make_converter()
"""The one converter for the kit's stored records (domain events, policy decisions)."""


class TaggedCodec(Generic[T]):
    """Dump and load a closed family of attrs classes told apart by their ``kind``."""

    def __init__(self, classes: tuple[type[T], ...], *, subject: str) -> None:
        self._by_kind: dict[str, type[T]] = {}
        for cls in classes:
            kind = cls.kind
            if kind in self._by_kind:
                raise ValueError(f"two classes share the kind {kind!r}")
            self._by_kind[kind] = cls
        self._subject = subject

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._by_kind)

    def dump(self, record: T) -> dict[str, Any]:
        body = converter.unstructure(record, type(record))
        return {KIND: type(record).kind, **body}

    def load(self, data: Any) -> T:
        if not isinstance(data, dict):
            raise ValidationError(
                [FieldError("(root)", "must be an object")], subject=self._subject
            )
        kind = data.get(KIND)
        cls = self._by_kind.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValidationError(
                [FieldError(KIND, f"must be one of {', '.join(sorted(self._by_kind))}")],
                subject=self._subject,
            )
        fields = {key: value for key, value in data.items() if key != KIND}
        try:
            return converter.structure(fields, cls)
        except Exception as exc:  # cattrs wraps field errors in groups
            errors = [FieldError("(record)", message) for message in _messages(exc)]
            raise ValidationError(errors, subject=self._subject) from exc


def _messages(exc: Exception) -> list[str]:
    if isinstance(exc, cattrs.BaseValidationError):
        return transform_error(exc)
    return [str(exc)]


events = TaggedCodec[DomainEvent](EVENT_TYPES, subject="domain event")
"""The journal's codec for domain events."""


def dump_event(event: DomainEvent) -> dict[str, Any]:
    """A JSON-able dict of ``event`` that :func:`load_event` turns back into an equal event."""
    return events.dump(event)


def load_event(data: Any) -> DomainEvent:
    """The event :func:`dump_event` wrote; :class:`~kit.errors.ValidationError` if corrupt."""
    return events.load(data)


__all__ = [
    "KIND",
    "Kinded",
    "TaggedCodec",
    "converter",
    "dump_event",
    "events",
    "load_event",
    "register_enum",
]
