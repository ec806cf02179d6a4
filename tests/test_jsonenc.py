"""The payload encoder: orjson and the stdlib store the same bytes, or refuse the same bodies."""

from __future__ import annotations

import builtins
import enum
import importlib
import json
import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from etrusted_examples import documented_event
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kit import jsonenc
from kit.errors import ValidationError
from kit.outbox import Outbox

orjson = pytest.importorskip("orjson")

# Any text: non-ASCII, control characters, quotes and backslashes, U+2028, astral characters.
_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
_FLOATS = st.floats() | st.sampled_from([1e-5, 1e-4, 9.99e-5, 1e16, 1e22, -0.0, 5e-324])
_INTS = st.integers() | st.sampled_from([2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1])
_SCALARS = st.none() | st.booleans() | _INTS | _FLOATS | _TEXT
_TREES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(_TEXT, inner, max_size=4)
    ),
    max_leaves=25,
)


class Colour(enum.Enum):
    RED = "red"


class Size(enum.IntEnum):
    M = 2


class Tag(str):
    pass


_ODD = st.sampled_from(
    [
        Colour.RED,
        Size.M,
        Tag("t"),
        uuid.UUID(int=7),
        datetime(2026, 1, 1, tzinfo=UTC),
        "\ud800",  # a lone surrogate
        {1: "int key"},
        {True: "bool key"},
        {None: "null key"},
        {1.5: "float key"},
        {(1, 2): "tuple key"},
        {"set": {1, 2}},
        b"bytes",
        math.nan,
        math.inf,
    ]
)


def _outcome(encode: Any, value: Any) -> str:
    try:
        return "ok:" + encode(value)
    except (TypeError, ValueError) as exc:
        return f"error:{type(exc).__name__}"


def _fast(value: Any) -> Any:
    return jsonenc.encode_fast(value, orjson.dumps)


def _same(value: Any) -> None:
    assert _outcome(_fast, value) == _outcome(jsonenc.encode_stdlib, value)


@st.composite
def event_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """The documented event with generated text, extra fields and nested metadata-like trees."""
    body = documented_event()
    body["customer"]["firstName"] = draw(_TEXT)
    body["customer"]["address"] = draw(_TEXT)
    body["products"][0]["name"] = draw(_TEXT)
    body["metadata"] = draw(st.dictionaries(_TEXT, _TEXT, max_size=5))
    body["transaction"]["extra"] = draw(_TREES)
    body["products"].append(draw(st.dictionaries(_TEXT, _TREES | _ODD, max_size=4)))
    return body


@given(_TREES)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@example({"a": [1e-05, "é\x00\x1f\x7f\u2028", {"b": None}], "c": (1, 2.5)})
def test_orjson_writes_what_the_stdlib_writes(value: Any) -> None:
    _same(value)
    _same({"wrapped": value})


@given(event_bodies())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_realistic_bodies_encode_identically(body: dict[str, Any]) -> None:
    _same(body)


@given(_ODD)
def test_what_orjson_spells_differently_goes_to_the_stdlib(value: Any) -> None:
    _same({"x": [value]})
    _same(value)


def test_circular_and_deep_structures_are_the_stdlib_s_call() -> None:
    loop: list[Any] = []
    loop.append(loop)
    _same(loop)
    deep: Any = "leaf"
    for _ in range(300):
        deep = {"d": [deep]}
    _same(deep)


def test_the_installed_encoder_is_orjson_and_still_matches() -> None:
    assert jsonenc.ENCODER.startswith("orjson ")
    body = documented_event()
    assert jsonenc.encode(body) == jsonenc.encode_stdlib(body)


def test_prepare_stores_the_same_payload_without_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    outbox = Outbox(storage=None)  # type: ignore[arg-type]  # prepare never touches storage
    body = documented_event()
    body["customer"]["firstName"] = 'Zoë \u2028 \x01 "quoted" 😀'
    with_orjson = outbox.prepare(body)
    monkeypatch.setattr(jsonenc, "_orjson_dumps", None)
    without = outbox.prepare(body)
    assert with_orjson == without
    body["transaction"]["when"] = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="not JSON-serialisable"):
        outbox.prepare(body)


@pytest.fixture
def stdlib_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """kit.jsonenc imported as on a machine without the speedups extra."""
    real_import = builtins.__import__

    def blocked(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "orjson":
            raise ImportError("No module named 'orjson'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", blocked)
    try:
        yield importlib.reload(jsonenc)
    finally:
        monkeypatch.undo()
        importlib.reload(jsonenc)


def test_without_orjson_the_stdlib_encodes(stdlib_only: Any) -> None:
    assert stdlib_only.ENCODER == "json (stdlib)"
    assert stdlib_only._orjson_dumps is None
    body = documented_event()
    assert stdlib_only.encode(body) == jsonenc.encode_stdlib(body)
    with pytest.raises(TypeError):
        stdlib_only.encode({"x": Colour.RED})


def _same_decoded(raw: bytes) -> None:
    try:
        expected = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)):  # the stdlib's own error, from the stdlib
            jsonenc.decode(raw)
        return
    # repr: NaN is not equal to itself, and -0.0 must stay -0.0.
    assert repr(jsonenc.decode(raw)) == repr(expected)


@given(_TREES)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_decode_reads_what_the_stdlib_reads(value: Any) -> None:
    _same_decoded(json.dumps(value).encode())
    _same_decoded(json.dumps(value, ensure_ascii=False).encode())


@pytest.mark.parametrize(
    "raw",
    [
        b'{"EventRef": "ref-1", "Message": null}',
        b"[18446744073709551616, -9223372036854775809, 1e400, -0.0, -0, 1.0e-400]",
        b"[18446744073709551615, -9223372036854775808, 123456789012345678901.5]",
        b'{"n": 99999999999999999999999}',
        b'{"deep": ' + b"[" * 600 + b"1.5" + b"]" * 600 + b"}",
        b'{"x": NaN, "y": -Infinity}',
        b'"\\ud800 lone surrogate"',
        b'\xef\xbb\xbf{"bom": true}',
        '{"utf16": 1}'.encode("utf-16"),
        b'{"dup": 1, "dup": 2}',
        b"12345678901234567890",
        b"-12345678901234567890",
        b"[12345678901234567890]",
        b'{"n":-12345678901234567890}',
        b'{"n":\t[1,\n12345678901234567890]}',
        b'{"tracking": "00340000000000000001", "n": 1234567890123456789}',
        b"[" * 1000 + b"]" * 1000,
        b"[" * 1024 + b"]" * 1024,
        b"[" * 1025 + b"]" * 1025,
        b"",
        b"{",
        b'{"a": 1} trailing',
        b"\xff\xfe\xfd",
    ],
)
def test_decode_takes_and_refuses_what_the_stdlib_does(raw: bytes) -> None:
    _same_decoded(raw)


_NUMBER = st.from_regex(
    r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
)


@given(st.lists(_NUMBER, min_size=1, max_size=5))
@example(["18446744073709551616", "-9223372036854775809", "1e400", "2.4703282292062328e-324"])
@settings(max_examples=500)
def test_decode_reads_numbers_as_the_stdlib_does(numbers: list[str]) -> None:
    """Every number as written, long ones and huge or tiny exponents too, is read to the
    stdlib's int or float, bit for bit."""
    _same_decoded(("[" + ", ".join(numbers) + "]").encode())
    _same_decoded(('{"n":' + numbers[0] + "}").encode())


def test_without_orjson_the_stdlib_decodes(stdlib_only: Any) -> None:
    assert stdlib_only._orjson_loads is None
    assert stdlib_only.decode(b'{"EventRef": "r"}') == {"EventRef": "r"}


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | _FLOATS.filter(math.isfinite) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(_VALUES)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_values_for_a_parser_read_back_equal(value: Any) -> None:
    """What ``encode_values`` writes (orjson's spelling, not the stdlib's) parses back to the
    same values, floats bit for bit."""
    assert json.loads(jsonenc.encode_values(value)) == json.loads(jsonenc.encode_stdlib(value))
