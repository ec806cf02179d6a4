"""Typed reads from an untrusted JSON payload, each failure a PayloadError with its path.

A signed body can still be of a shape no rule expects (an API version change, a trimmed
subscription, a plugin's filter). Every read here either returns the documented type, ``None``
for an absent or ``null`` optional, or raises :class:`~kit.errors.PayloadError` naming the
field, so the intake answers 400 instead of crashing with a ``TypeError``. Adapters share it,
so every platform's payload errors read alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from kit import jsonenc
from kit.codec import parse_datetime, storable
from kit.errors import PayloadError

_NAIVE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\Z")
# Text no database stores, and the JSON escapes that alone can put it into a decoded string.
_NUL_ESCAPE = b"\\u0000"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class Node:
    """A JSON object and the path that led to it (spelled out only for an error message: a
    webhook reads a dozen nodes, and fails rarely)."""

    __slots__ = ("_data", "_parent", "_step")

    def __init__(
        self, data: Mapping[str, Any], parent: Node | str | None = None, step: str | int = ""
    ) -> None:
        self._data = data
        self._parent = parent  # a string names a root (``orders[3]`` of a feed page)
        self._step = step  # the key in the parent object, or the index in its array

    @property
    def path(self) -> str:
        parent, step = self._parent, self._step
        if parent is None:
            return ""
        if isinstance(parent, str):
            return parent
        if isinstance(step, int):
            return f"{parent.path}[{step}]"
        return parent._at(step)

    def _at(self, key: str) -> str:
        path = self.path
        return f"{path}.{key}" if path else key

    def _fail(self, key: str, expected: str) -> PayloadError:
        value = self._data.get(key)
        return PayloadError(f"{self._at(key)} must be {expected}, got {type(value).__name__}")

    def raw(self, key: str) -> Any:
        """The value as parsed, for shapes the typed reads do not cover."""
        return self._data.get(key)

    def has(self, key: str) -> bool:
        return self._data.get(key) is not None

    def text(self, key: str) -> str | None:
        """A string, stripped; ``None`` when absent, null or blank."""
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value.strip() or None

    def ident(self, key: str) -> str | None:
        """An id, sent as a number or a string; always returned as a string."""
        value = self._data.get(key)
        if value is None:
            return None
        if type(value) is int:
            return str(value)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self._fail(key, "an id")
        return str(value).strip() or None

    def required_ident(self, key: str) -> str:
        value = self.ident(key)
        if value is None:
            raise PayloadError(f"{self._at(key)} is required")
        return value

    def flag(self, key: str) -> bool:
        value = self._data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def integer(self, key: str) -> int | None:
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "a whole number")
        return value

    def decimal(self, key: str) -> Decimal | None:
        """Money, sent as a decimal string (``"59.80"``) or a whole number."""
        value = self._data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self._fail(key, "a decimal string")
        try:
            parsed = Decimal(str(value).strip())
        except InvalidOperation:
            raise PayloadError(f"{self._at(key)} is not a decimal: {value!r}") from None
        if not parsed.is_finite():
            raise PayloadError(f"{self._at(key)} is not a finite decimal")
        return parsed

    def when(self, key: str, *, naive_is_utc: bool = False) -> datetime | None:
        """An ISO 8601 date-time with offset, in UTC.

        ``naive_is_utc`` accepts one without an offset as UTC, for fields the platform documents
        as UTC but writes bare (WooCommerce's ``date_modified_gmt``).
        """
        value = self.text(key)
        if value is None:
            return None
        if naive_is_utc and _NAIVE.match(value):
            value += "Z"
        try:
            return parse_datetime(value)
        except ValueError:
            raise PayloadError(f"{self._at(key)} is not an ISO 8601 date-time") from None

    def local_date(self, key: str) -> date | None:
        """The calendar date an ISO 8601 date-time names where it was written, in its own
        offset: a shop's "due on the 8th" at midnight +01:00 is the 8th, though in UTC it is
        still the 7th. Checked as :meth:`when` checks it."""
        value = self.text(key)
        if value is None:
            return None
        self.when(key)
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise PayloadError(f"{self._at(key)} is not an ISO 8601 date-time") from None

    def node(self, key: str) -> Node | None:
        value = self._data.get(key)
        if value is None:
            return None
        if type(value) is not dict and not isinstance(value, Mapping):
            raise self._fail(key, "an object")
        return Node(value, self, key)

    def nodes(self, key: str) -> list[Node]:
        value = self._data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(key, "an array")
        out = []
        array = Node({}, self, key)  # the array's path, for its items'
        for index, item in enumerate(value):
            if type(item) is not dict and not isinstance(item, Mapping):
                raise PayloadError(f"{self._at(key)}[{index}] must be an object")
            out.append(Node(item, array, index))
        return out


def decode(raw: bytes) -> Any:
    """A platform's JSON (a webhook body, a feed's page), with its text made storable.

    JSON may escape a NUL (``\\u0000``) or half a surrogate pair into a string. PostgreSQL
    stores neither and SQLite no lone surrogate, so an order carrying one could never be
    journaled, and its platform would be told for hours that the database is down: every string
    goes through :func:`kit.codec.storable`. Both arrive only as escapes, so a body without one
    is returned as :func:`kit.jsonenc.decode` read it. Raises :class:`ValueError` or
    :class:`RecursionError` for a body that is not JSON.
    """
    value = jsonenc.decode(raw)
    if _NUL_ESCAPE in raw or _SURROGATE_ESCAPE.search(raw):
        return _storable_values(value)
    return value


def _storable_values(value: Any) -> Any:
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {_storable_values(k): _storable_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable_values(item) for item in value]
    return value


def json_object(raw_body: bytes) -> dict[str, Any]:
    """A delivery's body, which must be a JSON object (read by :func:`decode`)."""
    try:
        body = decode(raw_body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise PayloadError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError(f"the body must be a JSON object, got {type(body).__name__}")
    return body


def first_text(*candidates: tuple[Node | None, str]) -> str | None:
    """The first non-blank string among ``(node, key)`` pairs, in order."""
    for node, key in candidates:
        if node is not None:
            value = node.text(key)
            if value is not None:
                return value
    return None


__all__ = ["Node", "decode", "first_text", "json_object"]
