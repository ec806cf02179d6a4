"""The one JSON encoder for payloads and request bodies: orjson when installed, else the stdlib.

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
"""

from __future__ import annotations

import json
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


def decode(raw: bytes) -> Any:
    """``json.loads(raw)``, by orjson where it can: an answer is decoded on every POST.

    Where orjson accepts a document, both parse it to the same value, with one exception: orjson
    reads an integer beyond 64 bits as a float. So a value with any float in it is parsed again
    by the stdlib (the usual answers have none), and so is what orjson refuses but the stdlib
    may take (``NaN``, lone surrogates, a BOM, UTF-16); the stdlib's value or
    :class:`ValueError` is then the answer.
    """
    if _orjson_loads is not None:
        try:
            value = _orjson_loads(raw)
        except ValueError:  # orjson.JSONDecodeError is a ValueError
            pass
        else:
            if not _has_float(value):
                return value
    return json.loads(raw)


def _has_float(value: Any) -> bool:
    """Whether a decoded tree holds a float anywhere (iterative: trees may be deep)."""
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is dict:
            stack.extend(node.values())
        elif kind is list:
            stack.extend(node)
        elif kind is float:
            return True
    return False


__all__ = ["ENCODER", "decode", "encode", "encode_fast", "encode_stdlib", "encode_values"]
