"""Every table of the file and the keys it accepts, read from the classes the loader uses.

The reference (``docs/configuration.md``) is checked against this, so a field added to a
config class without its row in the reference fails a test.
"""

from __future__ import annotations

from typing import Any, get_args

import attrs

from kit.adapters import installed_adapters, load_adapter
from kit.configfile.model import NESTED_SOURCE_FIELDS, KitConfig, Secret, SourceConfig
from kit.policy import PolicyConfig


def _element(t: Any) -> Any:
    """``tuple[X, ...]`` -> X for a table array of attrs classes, else None."""
    args = get_args(t)
    if len(args) == 2 and args[1] is Ellipsis and attrs.has(args[0]) and args[0] is not Secret:
        return args[0]
    return None


def _table(t: Any) -> Any:
    """The attrs class of a table, also of an optional one (``AdminSettings | None``)."""
    if attrs.has(t) and t is not Secret:
        return t
    args = [a for a in get_args(t) if a is not type(None)]
    if len(args) == 1 and attrs.has(args[0]) and args[0] is not Secret:
        return args[0]
    return None


def _walk(cl: type, prefix: str, header: str, out: dict[str, list[str]]) -> None:
    keys = out.setdefault(header, [])
    for a in attrs.fields(attrs.resolve_types(cl)):
        if cl is SourceConfig and a.name in NESTED_SOURCE_FIELDS:
            if a.name == "policy":
                _walk_into(PolicyConfig, prefix, header, out)
            continue
        element = _element(a.type)
        if element is not None:
            _walk(element, f"{prefix}{a.name}.", f"[[{prefix}{a.name}]]", out)
        elif (table := _table(a.type)) is not None:
            _walk(table, f"{prefix}{a.name}.", f"[{prefix}{a.name}]", out)
        else:
            keys.append(a.name)


def _walk_into(cl: type, prefix: str, header: str, out: dict[str, list[str]]) -> None:
    """``cl``'s keys sit in the table ``header`` itself (the policy keys of a source)."""
    inner: dict[str, list[str]] = {}
    _walk(cl, prefix, header, inner)
    for name, keys in inner.items():
        out.setdefault(name, []).extend(keys)


def tables() -> dict[str, list[str]]:
    """``{"[outbox]": ["url"], "[[sources]]": [...], 'adapter = "shopify"': [...], ...}``.

    Each installed adapter's own keys are listed under ``adapter = "NAME"``: they sit in the
    ``[[sources]]`` table of a source that uses it.
    """
    out: dict[str, list[str]] = {}
    _walk(KitConfig, "", "(top level)", out)
    for name in installed_adapters():
        config_type = load_adapter(name).config_type
        out[f'adapter = "{name}"'] = [a.name for a in attrs.fields(config_type)]
    return {header: keys for header, keys in out.items() if keys}


__all__ = ["tables"]
