"""An import source's own settings (the adapter keys of a ``[[sources]]`` table)."""

from __future__ import annotations

import enum

import attrs

from kit.errors import ConfigError


class ImportedAs(enum.StrEnum):
    """Which domain event an imported transaction becomes, so the source's triggers fire on it.

    ``order_fulfilled`` (the default, which the default ``order_shipped`` trigger reads) carries
    the file's ``estimated_delivery_date`` to eTrusted; the others say only what happened.
    """

    ORDER_PLACED = "order_placed"
    ORDER_PAID = "order_paid"
    ORDER_FULFILLED = "order_fulfilled"
    ORDER_DELIVERED = "order_delivered"


def _imported_as(value: ImportedAs | str) -> ImportedAs:
    try:
        return ImportedAs(value)
    except ValueError:
        choices = ", ".join(repr(kind.value) for kind in ImportedAs)
        raise ConfigError(f"event must be one of {choices}, got {value!r}") from None


@attrs.frozen(kw_only=True)
class ImportConfig:
    event: ImportedAs = attrs.field(default=ImportedAs.ORDER_FULFILLED, converter=_imported_as)


__all__ = ["ImportConfig", "ImportedAs"]
