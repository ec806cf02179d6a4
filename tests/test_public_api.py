"""The package's public surface stays deliberate: every re-export exists and nothing leaks."""

from __future__ import annotations

import importlib

import pytest

import kit


def test_all_names_resolve_and_are_sorted() -> None:
    public = [n for n in kit.__all__ if n != "__version__"]
    assert public == sorted(public)
    for name in kit.__all__:
        assert hasattr(kit, name), name


@pytest.mark.parametrize(
    "module",
    ["kit.testing", "kit.errors", "kit.sandbox", "kit.configfile", "kit.webhooks", "kit.serve"],
)
def test_module_all_names_resolve(module: str) -> None:
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name}"


def test_every_error_is_a_kit_error() -> None:
    import kit.errors as errors

    for name in errors.__all__:
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, errors.KitError), name
