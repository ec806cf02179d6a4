"""A million-row file imports with flat memory (run with ``-m soak``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .files import config_text, write_big_csv

_MEASURE = """
import resource, sys
from kit.cli import main
try:
    main(sys.argv[1:])
finally:
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print("PEAK_RSS_KIB", peak_kib, file=sys.stderr)
"""


def _import_peak(tmp_path: Path, rows: int) -> tuple[int, dict[str, object]]:
    """Import a fresh file of ``rows`` rows in a child process; its peak RSS (KiB), report."""
    folder = tmp_path / f"rows-{rows}"
    folder.mkdir()
    data = folder / "orders.csv"
    write_big_csv(data, rows)
    config = folder / "kit.toml"
    config.write_text(config_text(str(folder / "outbox.db")), encoding="utf-8")
    argv = ["import", str(data), "--source", "legacy", "--config", str(config), "--json"]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    peak = next(
        int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_RSS")
    )
    return peak, json.loads(done.stdout)


@pytest.mark.soak
def test_a_million_rows_import_in_flat_memory(tmp_path: Path) -> None:
    """Peak RSS of a 1,000,000-row import stays within a small margin of a 10,000-row one:
    the file is streamed and only one batch is held, whatever the file's length."""
    small_peak, small = _import_peak(tmp_path, 10_000)
    big_peak, big = _import_peak(tmp_path, 1_000_000)
    print(  # the figure for docs/adapters/import.md
        f"\npeak RSS: 10,000 rows {small_peak / 1024:.1f} MiB,"
        f" 1,000,000 rows {big_peak / 1024:.1f} MiB"
    )
    assert small["transactions"] == 5_000
    assert big["transactions"] == 500_000
    assert big["bad_rows"] == 0
    assert big["outcomes"] == {"enqueued": 500_000}
    assert big_peak < small_peak + 40 * 1024
