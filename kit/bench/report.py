"""What a run hands back: each figure beside its baseline, as a table and as JSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import attrs

from kit.bench.config import Sizes


@attrs.frozen(kw_only=True)
class Figure:
    """One line of the results table (and one object of the JSON)."""

    id: str
    title: str
    unit: str
    kit: float | None = None
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None
    skipped: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.kit is None or not self.baseline:
            return None
        return self.kit / self.baseline

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "kit": _rounded(self.kit),
            "baseline": _rounded(self.baseline),
            "baseline_label": self.baseline_label,
            "ratio": _rounded(self.ratio, 3),
            "target": self.target,
            "met": self.met,
            "skipped": self.skipped,
            "details": self.details,
        }


FIGURE_IDS = (
    "enqueue_one",
    "enqueue_bulk",
    "delivery",
    "backlog_rate",
    "backlog_rss",
    "latency_same_process",
    "latency_cross_process",
    "scale_out",
    "intake",
    "backfill",
)

FIGURE_GROUPS: dict[str, tuple[str, ...]] = {
    "enqueue": ("enqueue_one", "enqueue_bulk"),
    "delivery": ("delivery",),
    "backlog": ("backlog_rate", "backlog_rss"),
    "latency": ("latency_same_process", "latency_cross_process"),
    "scale_out": ("scale_out",),
    "intake": ("intake",),
    "backfill": ("backfill",),
}
"""What ``etrusted-kit bench GROUP`` measures: the figures that run together."""


@attrs.frozen(kw_only=True)
class BenchReport:
    backend: str
    quick: bool
    sizes: Sizes
    machine: dict[str, Any]
    elapsed: float
    figures: tuple[Figure, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "backend": self.backend,
            "quick": self.quick,
            "sizes": attrs.asdict(self.sizes),
            "machine": self.machine,
            "elapsed_s": round(self.elapsed, 1),
            "figures": [f.to_json() for f in self.figures],
        }

    def table(self) -> str:
        return format_table(self)


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "orders/s":  # a bucket-bound rate of a few per second
        return f"{value:.2f}/s"
    return f"{value:,.0f}/s"


def format_table(report: BenchReport) -> str:
    header = ("figure", "kit", "baseline", "ratio", "target", "met?")
    rows = [header]
    for f in report.figures:
        kit = _number(f.kit, f.unit)
        if f.unit == "ms" and "p99_ms" in f.details:
            kit = f"p50 {f.kit:.2f} / p99 {f.details['p99_ms']:.2f} ms"
        met = "skipped" if f.skipped else {True: "yes", False: "NO", None: "-"}[f.met]
        ratio = "-" if f.ratio is None else f"{f.ratio:.2f}x"
        rows.append((f.title, kit, _number(f.baseline, f.unit), ratio, f.target or "-", met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        f"etrusted-kit bench: {report.backend}{' (--quick)' if report.quick else ''},"
        f" {report.machine.get('cpus')} CPUs, Python {report.machine.get('python')},"
        f" JSON encoder {report.machine.get('json_encoder', '?')},"
        f" load average {report.machine.get('loadavg_start')}, {report.elapsed:.0f} s",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    for row in rows[1:]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for f in report.figures:
        if f.skipped:
            lines.append(f"  {f.id}: skipped, {f.skipped}")
        if f.details.get("note"):
            lines.append(f"  {f.id}: {f.details['note']}")
    return "\n".join(lines)
