"""The bench's backfill figure measures a real backfill through the stand-in's bucket: every
order read and enqueued, no request throttled, and the allowed rate derived from the points
spent (the ratio itself is a speed figure, not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kit.bench.backfill import figure_backfill


async def test_the_backfill_figure_reports_rate_against_the_bucket(tmp_path: Path) -> None:
    # A bucket that restores fast, so the figure takes a moment, not a minute.
    figure = await figure_backfill(tmp_path, orders=120, maximum=2000, restore_rate=5000)
    assert figure.id == "backfill"
    assert figure.details["orders"] == figure.details["enqueued"] == 120
    assert figure.details["throttled"] == 0
    assert figure.details["points_spent"] > 2000
    assert figure.kit is not None
    assert figure.baseline is not None
    # fastest_seconds is rounded to milliseconds in the details
    assert figure.baseline == pytest.approx(120 / figure.details["fastest_seconds"], rel=1e-2)
