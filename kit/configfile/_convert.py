"""The cattrs converter that turns a parsed TOML document into the config classes.

Strict where cattrs is lenient: TOML already types every value, so ``"5"`` for a number or
``1`` for a string is a mistake to report, not a value to coerce. Every attrs class refuses
unknown keys. A field with an attrs converter (``delay = "3d"``, ``order_tags``) has it tried on
the value at the field, so the class's own rule decides and a failure is reported at that
field's key path; validators and ``__attrs_post_init__`` checks run when the
object is built and are reported at the table's path.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, get_args, get_origin

import attrs
from cattrs import Converter
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.gen import make_dict_structure_fn, override

from kit.configfile.model import Secret
from kit.errors import ConfigError

_TOML_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "a table",
}


def toml_type(value: object) -> str:
    """What a TOML value is, in the file's words (never the value: it may be a secret)."""
    for cls, name in _TOML_TYPES.items():
        if type(value) is cls:
            return name
    return type(value).__name__


class WrongType(TypeError):
    """A value of the wrong TOML type; the message never quotes the value."""

    def __init__(self, expected: str, value: object) -> None:
        super().__init__(f"expected {expected}, got {toml_type(value)}")


def _strict(cls: type, expected: str) -> Callable[[object, type], Any]:
    def structure(value: object, _: type) -> Any:
        if type(value) is not cls:
            raise WrongType(expected, value)
        return value

    return structure


def _float(value: object, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WrongType("a number", value)
    return float(value)


def _enum(value: object, cls: type[enum.Enum]) -> enum.Enum:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in cls)
        raise ConfigError(f"{value!r} is not one of {choices}") from None


def _involves_attrs(t: Any) -> bool:
    return attrs.has(t) or any(_involves_attrs(arg) for arg in get_args(t))


def _is_sequence(t: Any) -> bool:
    return get_origin(t) is tuple and len(get_args(t)) == 2 and get_args(t)[1] is Ellipsis


def _plain(t: Any) -> bool:
    """A type the strict hooks check before a field's own converter sees the value."""
    args = get_args(t)
    return t in (str, int, float, bool) or (
        type(None) in args and all(_plain(a) for a in args if a is not type(None))
    )


def make_converter(environ: Mapping[str, str]) -> Converter:
    """A converter for one load; ``{ env = "NAME" }`` secrets resolve against ``environ``."""
    converter = Converter(forbid_extra_keys=True, detailed_validation=True)
    converter.register_structure_hook(str, _strict(str, "a string"))
    converter.register_structure_hook(int, _strict(int, "an integer"))
    converter.register_structure_hook(bool, _strict(bool, "true or false"))
    converter.register_structure_hook(float, _float)
    converter.register_structure_hook(Secret, _secret_hook(environ))
    converter.register_structure_hook_factory(
        lambda t: isinstance(t, type) and issubclass(t, enum.Enum), lambda t: _enum
    )
    converter.register_structure_hook_factory(_is_sequence, lambda t: _sequence_hook(t, converter))
    converter.register_structure_hook_factory(attrs.has, lambda t: table_hook(t, converter))
    return converter


def _secret_hook(environ: Mapping[str, str]) -> Callable[[object, type], Secret]:
    def structure(value: object, _: type) -> Secret:
        if isinstance(value, str):
            if not value:
                raise ConfigError("must not be empty")
            return Secret(value)
        if (
            not isinstance(value, dict)
            or set(value) != {"env"}
            or not isinstance(value["env"], str)
        ):
            raise ConfigError('expected a string or { env = "VARIABLE" }')
        name = value["env"]
        found = environ.get(name)
        if not found:
            raise ConfigError(f"the environment variable {name} is not set (or empty)")
        return Secret(found, env=name)

    return structure


def _sequence_hook(t: Any, converter: Converter) -> Callable[[object, type], Any]:
    inner = homogenous_tuple_structure_factory(t, converter)

    def structure(value: object, _: type) -> Any:
        if not isinstance(value, list):
            raise WrongType("an array", value)
        return inner(value, t)

    return structure


def field_hook(
    a: attrs.Attribute[Any], converter: Converter
) -> Callable[[object, type], Any] | None:
    """The structure hook of a field that has an attrs converter, or None for the default.

    The hook runs the converter only to report its failure at this field's path, and hands
    ``__init__`` the value the converter saw, so the converter runs there on the same input:
    the raw value (after the strict type check for plain types) or, for a field of attrs
    classes (``triggers``), the structured objects.
    """
    convert: Any = a.converter
    # attrs.Converter objects may want the instance or the field: leave them to __init__.
    if convert is None or isinstance(convert, attrs.Converter):
        return None
    t = a.type
    before: Callable[[object, Any], Any] = (
        converter.get_structure_hook(t) if _involves_attrs(t) or _plain(t) else _as_is
    )

    def structure(value: object, _: type) -> Any:
        ready = before(value, t)
        convert(ready)
        return ready

    return structure


def _as_is(value: object, _: Any) -> object:
    return value


def table_hook(cl: type, converter: Converter, **overrides: Any) -> Callable[[object, type], Any]:
    """The structure hook of an attrs class: a TOML table, unknown keys refused."""
    fields: dict[str, Any] = {}
    for a in attrs.fields(attrs.resolve_types(cl)):
        hook = field_hook(a, converter)
        if hook is not None:
            fields[a.name] = override(struct_hook=hook)
    fields.update(overrides)
    inner: Callable[[Mapping[str, Any], Any], Any] = make_dict_structure_fn(
        cl,
        converter,
        **fields,
    )

    def structure(value: object, _: type) -> Any:
        if not isinstance(value, dict):
            raise WrongType("a table", value)
        return inner(value, cl)

    return structure
