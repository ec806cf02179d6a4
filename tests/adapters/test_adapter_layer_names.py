"""The adapter layer's public names are deliberate: each ``__all__`` resolves, once each.

(ruff's RUF022 keeps them sorted.)
"""

from __future__ import annotations

import importlib

import pytest

MODULES = [
    "adapters.shopify",
    "adapters.woocommerce",
    "kit.adapters",
    "kit.domain",
    "kit.locale",
    "kit.mapping",
    "kit.payload",
    "kit.policy",
]


@pytest.mark.parametrize("module", MODULES)
def test_all_names_resolve(module: str) -> None:
    mod = importlib.import_module(module)
    names = list(mod.__all__)
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"
