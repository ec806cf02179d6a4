"""The bench's backfill figure measures a real backfill through the stand-in's bucket: every
order read and enqueued, no request throttled, and the allowed rate derived from the points
spent (the ratio itself is a speed figure, not asserted)."""

from __future__ import annotations

from pathlib import Path

from kit.bench.backfill import figure_backfill


async def test_the_backfill_figure_reports_rate_against_the_bucket(tmp_path: Path) -> None:
    # A small bucket that restores fast: the reader waits for points after the first page,
    # and the figure takes a moment, not a minute.
    figure = await figure_backfill(tmp_path, orders=120, maximum=1000, restore_rate=5000)
    assert figure.id == "backfill"
    assert figure.skipped is None
    assert figure.details["orders"] == figure.details["enqueued"] == 120
    assert figure.details["throttled"] == 0
    assert 0 < figure.details["steady_orders"] < 120
    assert figure.kit is not None
    assert figure.baseline is not None
    # the allowed rate: 5000 points/s over the points per order (29 for these orders, and
    # 2 per page)
    assert 5000 / 31 < figure.baseline < 5000 / 29
