"""Typed reads from a Stripe event, each failure a PayloadError naming the field.

The kit's :class:`~kit.payload.Node` reads strings, flags and numbers as every adapter does;
:class:`Obj` adds the shapes only Stripe has: unix-second times, "expandable" fields that are
an id or the object with that id, and list objects (``{"object": "list", "data": [...]}``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from kit.errors import PayloadError
from kit.payload import Node


class Obj(Node):
    """A JSON object of a Stripe payload and the path that led to it."""

    __slots__ = ()

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise PayloadError(f"{self._at(key)} is required")
        return value

    def ident(self, key: str) -> str | None:
        """An expandable field: the id itself, or the expanded object's ``id``."""
        value = self.raw(key)
        if isinstance(value, Mapping):
            return Obj(value, self, key).text("id")
        return self.text(key)

    def unix_time(self, key: str) -> datetime | None:
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
        value = self.raw(key)
        if value is None or isinstance(value, str):
            return None
        if not isinstance(value, Mapping):
            raise self._fail(key, "an object")
        return Obj(value, self, key)

    def items(self, key: str) -> list[Obj]:
        """The objects of a Stripe list (``{"object": "list", "data": [...]}``) or an array."""
        value = self.raw(key)
        if value is None:
            return []
        parent: Obj = self
        if isinstance(value, Mapping):
            parent = Obj(value, self, key)
            key, value = "data", value.get("data")
        if not isinstance(value, list):
            raise PayloadError(f"{parent._at(key)} must be a list")
        array = Obj({}, parent, key)  # the array's path, for its items'
        out = []
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise PayloadError(f"{parent._at(key)}[{index}] must be an object")
            out.append(Obj(item, array, index))
        return out


__all__ = ["Obj"]
