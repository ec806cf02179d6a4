"""The one JSON encoder for payloads and request bodies, and the one decoder: orjson when
installed, else the stdlib.

Compact, UTF-8 kept (``separators=(",", ":")``, ``ensure_ascii=False``). The bytes are the same
whichever encoder runs: a stored payload must not depend on what happened to be installed, and
the hash stored beside it must keep matching. orjson (the ``speedups`` extra) encodes a 1 KB event
body about ten times faster than :mod:`json`, but it differs from it in places: floats below
1e-4 (``0.00001`` against ``1e-05``), NaN and infinities (``null`` against ``NaN``), and types the
stdlib refuses or spells differently (enums, UUIDs, dates, subclasses). So orjson only gets
trees of plain ``dict``/``list``/``tuple``/``str``/``int``/``bool``/``None`` and floats it
formats like ``repr``; anything else, and anything orjson refuses (non-string keys, integers
beyond 64 bits, lone surrogates, deep nesting), goes to the stdlib, whose answer (or error) is
the reference.

:func:`decode` is the one JSON reader of webhook bodies and answers, by the same rule: orjson
reads a document only where its value is the stdlib's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

_STDLIB = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# Deeper trees go to the stdlib, which also reports circular references properly.
_MAX_DEPTH = 32
_INF = float("inf")
_LEAVES = frozenset({str, int, bool, type(None)})
_NESTED = frozenset({dict, list, tuple})

#: Encodes with the standard library; the reference every other encoder must match.
encode_stdlib: Callable[[Any], str] = _STDLIB.encode


def _plain(node: dict[Any, Any] | list[Any] | tuple[Any, ...], depth: int) -> bool:
    """True when orjson would encode every value under ``node`` exactly as the stdlib does."""
    if depth > _MAX_DEPTH:
        return False
    for value in node.values() if type(node) is dict else node:
        kind = type(value)
        if kind in _LEAVES:
            continue
        if kind in _NESTED:
            if not _plain(value, depth + 1):
                return False
        elif kind is float:
            # orjson writes 1e-05 as 0.00001; NaN and infinities as null. Others match repr.
            if not (value == 0.0 or 1e-4 <= abs(value) < _INF):
                return False
        else:
            return False
    return True


def _load_orjson() -> tuple[str, Callable[[Any], bytes] | None, Callable[[bytes], Any] | None]:
    try:
        import orjson
    except ImportError:
        return "json (stdlib)", None, None
    return f"orjson {orjson.__version__}", orjson.dumps, orjson.loads


ENCODER, _orjson_dumps, _orjson_loads = _load_orjson()
"""Which encoder :func:`encode` uses (``"orjson 3.x"`` or ``"json (stdlib)"``); the bench says."""


def encode_fast(obj: Any, dumps: Callable[[Any], bytes]) -> str:
    """``dumps`` (orjson's) where it matches :func:`encode_stdlib` byte for byte, else that."""
    if type(obj) in _NESTED and _plain(obj, 0):
        try:
            return dumps(obj).decode()
        except TypeError:  # non-string keys, ints beyond 64 bits, surrogates: stdlib's call
            pass
    return _STDLIB.encode(obj)


def encode(obj: Any) -> str:
    """Compact JSON text of ``obj``, identical whichever encoder is installed.

    Raises :class:`TypeError` or :class:`ValueError` exactly when :func:`json.dumps` would.
    """
    if _orjson_dumps is None:
        return _STDLIB.encode(obj)
    return encode_fast(obj, _orjson_dumps)


def encode_values(obj: Any) -> str:
    """Compact JSON of plain values that a parser reads back (PostgreSQL's ``json``), never
    compared as bytes: orjson as is when installed, several times faster than :func:`encode`
    with its proof. Floats must be finite; JSON has no number for the others.
    """
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(obj).decode()
        except TypeError:  # integers beyond 64 bits, surrogates, other types: stdlib's call
            pass
    return _STDLIB.encode(obj)


def _byte_class(byte: int) -> int:
    if byte in b"0123456789":
        return ord("0")
    if byte in b"{[":
        return ord("[")
    if byte in b",:- \t\r\n":  # what may stand right before a number
        return ord(" ")
    return ord("a")


# One C-speed pass over a body shows what orjson would read differently from the stdlib: with
# digits as "0" and "{" as "[", an integer of 19 digits or more (it may pass 64 bits) starts with
# one of _LONG_INTS, and "[" counts the nesting's upper bound.
_SHAPE = bytes(_byte_class(byte) for byte in range(256))
_LONG_DIGITS = b"0" * 19
_LONG_AFTER_SPACE = b" " + _LONG_DIGITS
_LONG_AFTER_BRACKET = b"[" + _LONG_DIGITS


def _orjson_reads_alike(raw: bytes) -> bool:
    """Whether orjson's value of ``raw`` (if it takes it) is the stdlib's.

    Where both parse a document they agree (both round floats correctly), except for an
    integer beyond 64 bits, which orjson reads as a float, and nesting: the stdlib gives up
    (RecursionError) a little below the recursion limit, orjson at 1024 levels. So a document
    with a long digit run outside a string, or with many brackets, is left to the stdlib. A
    digit run in a string (a tracking number) does not count: a quote or a letter precedes it.
    """
    shape = raw.translate(_SHAPE)
    if _LONG_AFTER_SPACE in shape or _LONG_AFTER_BRACKET in shape or shape.startswith(_LONG_DIGITS):
        return False
    return shape.count(b"[") <= sys.getrecursionlimit() // 2


def decode(raw: bytes) -> Any:
    """``json.loads(raw)``, by orjson where its value is the same: every webhook body is
    decoded, and orjson reads one about three times faster.

    What orjson refuses but the stdlib may take (``NaN``, lone surrogates, a BOM, UTF-16, a
    number beyond a float) is parsed by the stdlib, as is what orjson would read differently
    (:func:`_orjson_reads_alike`). So the value, or the :class:`ValueError` or
    :class:`RecursionError`, is always the stdlib's.
    """
    if _orjson_loads is not None and _orjson_reads_alike(raw):
        try:
            return _orjson_loads(raw)
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            pass
    return json.loads(raw)


__all__ = ["ENCODER", "decode", "encode", "encode_fast", "encode_stdlib", "encode_values"]
