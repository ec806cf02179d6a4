"""Typed reads from a Stripe event, each failure a PayloadError naming the field.

Stripe's shapes differ from Shopify's (unix-second times, "expandable" fields that are an id or
the object with that id), so this reader is the Stripe adapter's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kit.errors import PayloadError


class Obj:
    """A JSON object of a Stripe payload and the path that led to it."""

    __slots__ = ("_data", "path")

    def __init__(self, data: Mapping[str, Any], path: str) -> None:
        self._data = data
        self.path = path

    def _at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _fail(self, key: str, expected: str) -> PayloadError:
        value = self._data.get(key)
        return PayloadError(f"{self._at(key)} must be {expected}, got {type(value).__name__}")

    def text(self, key: str) -> str | None:
        """A string, stripped; ``None`` when absent, null or blank."""
        value = self._data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value.strip() or None

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise PayloadError(f"{self._at(key)} is required")
        return value

    def ident(self, key: str) -> str | None:
        """An expandable field: the id itself, or the expanded object's ``id``."""
        value = self._data.get(key)
        if isinstance(value, Mapping):
            return Obj(value, self._at(key)).text("id")
        return self.text(key)

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

    def when(self, key: str) -> datetime | None:
        """A unix timestamp (seconds), in UTC."""
        value = self.integer(key)
        if value is None:
            return None
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise PayloadError(f"{self._at(key)} is not a unix time") from None

    def node(self, key: str) -> Obj | None:
        """A nested object (an expandable field left as an id gives ``None``)."""
        value = self._data.get(key)
        if value is None or isinstance(value, str):
            return None
        if not isinstance(value, Mapping):
            raise self._fail(key, "an object")
        return Obj(value, self._at(key))

    def items(self, key: str) -> list[Obj]:
        """The objects of a Stripe list (``{"object": "list", "data": [...]}``) or an array."""
        value = self._data.get(key)
        if value is None:
            return []
        path = self._at(key)
        if isinstance(value, Mapping):
            value = value.get("data")
            path = f"{path}.data"
        if not isinstance(value, list):
            raise PayloadError(f"{path} must be a list")
        out = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise PayloadError(f"{path}[{index}] must be an object")
            out.append(Obj(item, f"{path}[{index}]"))
        return out


__all__ = ["Obj"]
