"""cattrs' nested validation errors -> one :class:`~kit.errors.FieldError` per problem.

cattrs notes every failed field (``AttributeValidationNote``) and element
(``IterableValidationNote``); walking them gives each problem its key path in the file's own
words: ``sources[0].triggers[1].delay``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

import attrs
from cattrs.errors import (
    AttributeValidationNote,
    BaseValidationError,
    ForbiddenExtraKeysError,
    IterableValidationNote,
)

from kit.configfile._convert import WrongType
from kit.configfile._sources import UnknownKeys
from kit.errors import ConfigError, FieldError


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _step(path: str, exc: BaseException) -> str:
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            return _join(path, note.name)
        if isinstance(note, IterableValidationNote):
            return f"{path}[{note.index}]"
    return path


def _unknown(path: str, keys: set[str], known: set[str]) -> Iterator[FieldError]:
    for key in sorted(keys):
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        yield FieldError(_join(path, key), f"unknown key{hint}")


def _message(exc: BaseException) -> str:
    if isinstance(exc, ConfigError | WrongType):
        return str(exc)
    if isinstance(exc, KeyError):
        return "required key missing"
    # A third-party config class's converter failed in its own way; its text is all we have.
    return f"invalid value ({type(exc).__name__}: {exc})"


def problems(exc: BaseException, path: str = "") -> Iterator[FieldError]:
    """Every problem inside ``exc``, each at its key path ("" is the top of the file)."""
    if isinstance(exc, BaseValidationError):
        for sub in exc.exceptions:
            yield from problems(sub, _step(path, sub))
    elif isinstance(exc, ForbiddenExtraKeysError):
        known = {a.name for a in attrs.fields(exc.cl)} if attrs.has(exc.cl) else set()
        yield from _unknown(path, exc.extra_fields, known)
    elif isinstance(exc, UnknownKeys):
        yield from _unknown(path, exc.keys, exc.known)
    else:
        yield FieldError(path or "(top level)", _message(exc))
