"""The adapter-writing guide shows the Staybook example package as it is: each block marked
``<!-- file: PATH -->`` is that file byte for byte (less a leading ``# test:`` marker, which
tells tests/test_docs.py how to check the block), every file of the package is shown once, and
the sample body shown is the one the package's samples sign."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from test_docs import MARKER, Block, extract

from .conftest import ROOT, STAY

GUIDE = ROOT / "docs" / "adapters" / "writing-an-adapter.md"
LABEL = re.compile(r"^<!-- (?P<kind>file|sample): (?P<what>\S+) -->$")


def labelled() -> list[tuple[str, str, Block]]:
    """``(kind, what, block)`` for every block whose fence follows a label line."""
    lines = GUIDE.read_text(encoding="utf-8").splitlines()
    found = []
    for block in extract(GUIDE):
        match = LABEL.match(lines[block.line - 2]) if block.line >= 2 else None
        if match is not None:
            found.append((match["kind"], match["what"], block))
    return found


def shown(block: Block) -> str:
    first, _, rest = block.code.partition("\n")
    return rest if MARKER.match(first) else block.code


def package_files() -> list[str]:
    """The package's files as git tracks them (no caches, no build output)."""
    listed = subprocess.run(
        ["git", "ls-files", "--", str(STAY.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(listed.stdout.split())


FILES = [(what, block) for kind, what, block in labelled() if kind == "file"]


@pytest.mark.parametrize(("path", "block"), FILES, ids=[path for path, _ in FILES])
def test_a_block_is_its_file(path: str, block: Block) -> None:
    """Fix the file or the guide: a difference means the guide would teach stale code."""
    assert shown(block) == (ROOT / path).read_text(encoding="utf-8"), f"{block.id} != {path}"


def test_every_file_of_the_package_is_shown_once() -> None:
    assert sorted(path for path, _ in FILES) == package_files()


def test_the_sample_body_is_the_one_the_samples_sign(stay_installed: None) -> None:
    from stay_adapter.samples import stay_completed

    (body,) = [
        block for kind, what, block in labelled() if (kind, what) == ("sample", "stay_completed")
    ]
    assert json.loads(body.code) == json.loads(stay_completed("d-1").raw_body)
