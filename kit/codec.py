"""The one cattrs converter between the attrs models and eTrusted's JSON.

Python names are snake_case, the wire is camelCase; the few odd wire names (``EventRef``,
``Message``, OAuth's ``access_token``) are declared on the field with :func:`wire`. ``None``
optionals are left out of request bodies because the API's JSON schemas reject ``null`` where a
string is expected. Responses are read leniently (unknown keys ignored, missing optionals fine)
but primitive types strictly: a ``null`` or a number where the API promised a string is a broken
response, not something to paper over with ``str()``.
"""

from __future__ import annotations

import email.utils
import enum
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from kit import jsonenc
from kit.errors import FieldError, ValidationError
from kit.redact import mask_emails

T = TypeVar("T")

WIRE_KEY = "etrusted_wire_name"

_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))\Z"
)
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\Z")
# The last year parse_datetime takes: room before the calendar ends for a hold-back added.
_LATEST_YEAR = 8999
_MAX_ERROR_TEXT = 300


def wire(name: str) -> dict[str, str]:
    """Field metadata naming a wire key that is not the camelCase of the Python name."""
    return {WIRE_KEY: name}


def wire_name(field: attrs.Attribute[Any]) -> str:
    explicit = field.metadata.get(WIRE_KEY)
    if explicit:
        return str(explicit)
    head, *rest = field.name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# -- dates and times ------------------------------------------------------------------------


def parse_datetime(value: str) -> datetime:
    """RFC 3339 with any number of fraction digits and ``Z`` or an offset; returns UTC.

    Raises :class:`ValueError` also for an instant outside the years 1 to 8999: what is parsed
    here is computed with (a hold-back added, an epoch taken), and at the calendar's ends that
    overflows.
    """
    match = _DATETIME.match(value)
    if match is None:
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    try:
        # The shape is checked above; for it, the C parser gives the same instant ten times
        # faster (webhooks carry several date-times each). It refuses only lower-case "t"/"z"
        # and impossible dates, which the groups below take or explain.
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _from_groups(value, match)
    try:
        parsed = parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"not a date-time in range: {value!r}") from None
    if parsed.year > _LATEST_YEAR:
        raise ValueError(f"not a date-time in range: {value!r}")
    return parsed


def _from_groups(value: str, match: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    if zulu:
        tz: timezone = UTC
    else:
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        parsed = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz
        )
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 date-time: {value!r} ({exc})") from None
    return parsed


def format_datetime(value: datetime) -> str:
    """``yyyy-MM-ddTHH:mm:ss.SSSZ`` in UTC; a naive value is taken to be UTC already."""
    value = value.astimezone(UTC) if value.tzinfo is not None else value
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}."
        f"{value.microsecond // 1000:03d}Z"
    )


def parse_date(value: str) -> date:
    match = _DATE.match(value)
    if match is None:
        raise ValueError(f"not a yyyy-MM-dd date: {value!r}")
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise ValueError(f"not a yyyy-MM-dd date: {value!r} ({exc})") from None


def format_date(value: date) -> str:
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


# -- the converter --------------------------------------------------------------------------


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"expected a number, got {type(value).__name__}")


def _structure_enum(value: Any, type_: type[enum.Enum]) -> enum.Enum:
    try:
        return type_(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in type_)
        raise ValueError(f"expected one of {allowed}, got {value!r}") from None


def _unstructure_enum(value: enum.Enum) -> Any:
    return value.value


def _structure_datetime(value: Any, _: type) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_datetime(value)
    raise TypeError(f"expected a date-time string, got {type(value).__name__}")


def _structure_date(value: Any, _: type) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_date(value)
    raise TypeError(f"expected a date string, got {type(value).__name__}")


_SCALARS = frozenset({str, int, bool, float, type(None)})


def _optional_scalar(type_: Any) -> bool:
    args = typing.get_args(type_)
    return (
        typing.get_origin(type_) in (typing.Union, types.UnionType)
        and type(None) in args
        and all(arg in _SCALARS for arg in args)
    )


def unstructure_optional_scalars_as_is(conv: cattrs.Converter) -> None:
    """``str | None`` and the like unstructure to themselves. cattrs knows that of ``str`` but
    wraps the optional in a function of its own; with this hook the generated code reads such a
    field directly (orders and bodies have a dozen of them, unstructured on every webhook)."""
    conv.register_unstructure_hook_func(_optional_scalar, identity)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True)
    unstructure_optional_scalars_as_is(conv)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook(int, _structure_int)
    conv.register_structure_hook(float, _structure_float)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_structure_hook(date, _structure_date)
    # Enums are str subclasses: without this the strict ``str`` hook would swallow them.
    conv.register_structure_hook(enum.StrEnum, _structure_enum)
    conv.register_structure_hook(enum.Enum, _structure_enum)
    conv.register_unstructure_hook(enum.StrEnum, _unstructure_enum)
    conv.register_unstructure_hook(enum.Enum, _unstructure_enum)
    conv.register_unstructure_hook(datetime, format_datetime)
    conv.register_unstructure_hook(date, format_date)

    def unstructure_factory(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
        overrides: dict[str, Any] = {
            f.name: override(rename=wire_name(f), omit_if_default=f.default is None)
            for f in attrs.fields(cls)
        }
        return make_dict_unstructure_fn(cls, conv, **overrides)

    def structure_factory(cls: type[Any]) -> Callable[[Mapping[str, Any], Any], Any]:
        overrides: dict[str, Any] = {
            f.name: override(rename=wire_name(f)) for f in attrs.fields(cls)
        }
        structure = make_dict_structure_fn(cls, conv, **overrides)

        def hook(value: Any, type_: Any) -> Any:
            if not isinstance(value, Mapping):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            return structure(value, type_)

        return hook

    conv.register_unstructure_hook_factory(attrs.has, unstructure_factory)
    conv.register_structure_hook_factory(attrs.has, structure_factory)
    return conv


converter = _make_converter()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return "is required"
    text = str(exc) or type(exc).__name__
    return mask_emails(text)[:_MAX_ERROR_TEXT]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _collect(exc: BaseException, path: str, out: list[FieldError]) -> None:
    """Flatten cattrs' exception groups into wire-named paths (``products[2].imageUrl``)."""
    if isinstance(exc, cattrs.ClassValidationError):
        fields = attrs.fields_dict(exc.cl) if attrs.has(exc.cl) else {}
        with_notes, without_notes = exc.group_exceptions()
        for inner, note in with_notes:
            field = fields.get(note.name)
            _collect(inner, _join(path, wire_name(field) if field else note.name), out)
        for inner in without_notes:
            _collect(inner, path, out)
    elif isinstance(exc, cattrs.IterableValidationError):
        item_notes, without_notes = exc.group_exceptions()
        for inner, item in item_notes:
            index = item.index
            sub = f"{path}[{index}]" if isinstance(index, int) else _join(path, str(index))
            _collect(inner, sub, out)
        for inner in without_notes:
            _collect(inner, path, out)
    elif isinstance(exc, BaseExceptionGroup):
        for member in exc.exceptions:
            _collect(member, path, out)
    else:
        out.append(FieldError(path or "(root)", _describe(exc)))


def _field_errors(exc: BaseException) -> list[FieldError]:
    out: list[FieldError] = []
    _collect(exc, "", out)
    return out


def to_wire(obj: Any) -> dict[str, Any]:
    """An attrs model as the camelCase dict the API expects (``None`` optionals left out)."""
    result = converter.unstructure(obj)
    if not isinstance(result, dict):
        raise TypeError(f"{type(obj).__name__} does not encode to a JSON object")
    return result


def from_wire(cls: type[T], data: Any) -> T:
    """Decode a JSON value into ``cls``; raises ValidationError naming every bad field."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise ValidationError(_field_errors(exc), subject=cls.__name__) from exc


def from_wire_list(cls: type[T], data: Any) -> list[T]:
    """Decode a JSON array of ``cls`` objects (the list endpoints answer with bare arrays)."""
    if not isinstance(data, list):
        raise ValidationError(
            [FieldError("(root)", f"expected an array, got {type(data).__name__}")],
            subject=f"list of {cls.__name__}",
        )
    try:
        return converter.structure(data, list[cls])  # type: ignore[valid-type]
    except (cattrs.BaseValidationError, TypeError, ValueError, KeyError) as exc:
        raise ValidationError(_field_errors(exc), subject=f"list of {cls.__name__}") from exc


def dump_json(body: Mapping[str, Any]) -> str:
    """Compact JSON exactly as the outbox stores and the client sends it."""
    return jsonenc.encode(body)


# -- error bodies and headers ----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ErrorBody:
    """What an error response said, whichever of the API's shapes it used."""

    message: str  # readable, e-mails masked, never empty
    error: str | None = None  # ``Error`` / OAuth ``error`` when given
    description: str | None = None  # ``ErrorDescription`` / ``error_description``
    is_json: bool = False


def _as_text(value: Any) -> str | None:
    return storable(value).strip() or None if isinstance(value, str) else None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` as every backend can store it: NULs dropped, each lone surrogate U+FFFD.

    JSON may escape a NUL (PostgreSQL's text refuses it) or half a UTF-16 pair, from a truncated
    escape, into a string (SQLite and every UTF-8 encoder refuse it). Text that came from
    outside in JSON (an error body from eTrusted, an order from a platform) would otherwise be
    unrecordable: an attempt's error retried for ever, an order answered 503 for hours.
    """
    if "\x00" not in text:
        try:
            text.encode()
        except UnicodeEncodeError:
            pass
        else:
            return text
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def parse_error_body(raw: bytes | str | None) -> ErrorBody:
    """Read ``{"Message"}``, ``{"Error","ErrorDescription"}``, OAuth, empty and non-JSON bodies."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (raw or "")
    text = text.strip()
    if not text:
        return ErrorBody(message="(empty body)")
    try:
        data = json.loads(text)
    except ValueError:
        snippet = " ".join(storable(text).split())
        if len(snippet) > _MAX_ERROR_TEXT:
            snippet = snippet[:_MAX_ERROR_TEXT] + "..."
        return ErrorBody(message=f"(non-JSON body) {mask_emails(snippet)}")
    if isinstance(data, Mapping):
        message = _as_text(data.get("Message")) or _as_text(data.get("message"))
        error = _as_text(data.get("Error")) or _as_text(data.get("error"))
        description = _as_text(data.get("ErrorDescription")) or _as_text(
            data.get("error_description")
        )
        if message is None:
            parts = [p for p in (error, description) if p]
            message = ": ".join(parts) if parts else None
        if message is not None:
            return ErrorBody(
                message=mask_emails(message)[:_MAX_ERROR_TEXT],
                error=error,
                description=mask_emails(description) if description else None,
                is_json=True,
            )
    compact = storable(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    if len(compact) > _MAX_ERROR_TEXT:
        compact = compact[:_MAX_ERROR_TEXT] + "..."
    return ErrorBody(message=f"(unrecognised JSON body) {mask_emails(compact)}", is_json=True)


def error_message(raw: bytes | str | None) -> str:
    """The readable message of an error body, for exceptions and logs."""
    return parse_error_body(raw).message


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (epoch seconds); delta-seconds or an HTTP-date.

    Returns ``None`` when absent or unreadable, and never a negative number.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if seconds == seconds and seconds != float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


__all__ = [
    "WIRE_KEY",
    "ErrorBody",
    "converter",
    "dump_json",
    "error_message",
    "format_date",
    "format_datetime",
    "from_wire",
    "from_wire_list",
    "parse_date",
    "parse_datetime",
    "parse_error_body",
    "parse_retry_after",
    "storable",
    "to_wire",
    "unstructure_optional_scalars_as_is",
    "wire",
    "wire_name",
]
