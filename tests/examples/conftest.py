"""The example packages beside these tests (``stay_adapter/``), installed the way pip lays a
package out.

A ``*.dist-info`` directory whose ``entry_points.txt`` is written from the package's own
``pyproject.toml``, next to the package's source directory on ``sys.path`` (or a subprocess's
``PYTHONPATH``): ``importlib.metadata`` finds the entry point for real, as after
``pip install``, without building a wheel or changing the test environment. The pyproject stays
the one place the registration is written.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAY = Path(__file__).resolve().parent / "stay_adapter"

# The example is a package of its own with its own suite, run through pytester
# (test_stay_package.py) as its author would run it, not collected as part of the kit's.
collect_ignore = ["stay_adapter"]


def lay_out_dist(site: Path, project: Path) -> None:
    """Write ``project``'s dist-info (metadata and every entry-point group) into ``site``."""
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n",
        encoding="utf-8",
    )
    groups = "".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in entries.items())
        for group, entries in meta.get("entry-points", {}).items()
    )
    (info / "entry_points.txt").write_text(groups, encoding="utf-8")


@pytest.fixture(scope="session")
def stay_paths(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    """The import path entries of the installed example: its dist-info and its source."""
    site = tmp_path_factory.mktemp("site")
    lay_out_dist(site, STAY)
    return (str(site), str(STAY))


@pytest.fixture
def stay_installed(stay_paths: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """The example installed in this process for the test."""
    for path in reversed(stay_paths):
        monkeypatch.syspath_prepend(path)
