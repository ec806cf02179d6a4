"""The doctor's output: one line per check with a mark, its problems and their fixes under
it; or one JSON document. Nothing here sees a secret: results carry only plain words."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kit.doctor.fixes import Fix, Outcome
from kit.doctor.result import CheckResult, Status, all_ok

_MARKS = {Status.OK: "✓", Status.PROBLEM: "✗", Status.SKIPPED: "-"}
_ASCII_MARKS = {Status.OK: "ok", Status.PROBLEM: "XX", Status.SKIPPED: "--"}


def marks_for(encoding: str | None) -> dict[Status, str]:
    """✓ and ✗ where the output can encode them, ASCII otherwise."""
    try:
        "✓✗".encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return _ASCII_MARKS
    return _MARKS


def render(results: Sequence[CheckResult], marks: dict[Status, str]) -> list[str]:
    lines: list[str] = []
    for result in results:
        lines.append(f"{marks[result.status]} {result.name}: {result.message}")
        for problem in result.problems:
            lines.append(f"    {problem.message}")
            lines.append(f"      fix: {problem.hint}")
    problems = sum(len(r.problems) for r in results)
    if all_ok(results):
        lines.append("everything is set up")
    else:
        fixable = sum(1 for r in results for p in r.problems if p.fix is not None)
        tail = f"; --fix can repair {fixable}" if fixable else ""
        lines.append(f"{problems} problem(s){tail}")
    return lines


def render_plan(fixes: Sequence[Fix]) -> list[str]:
    return ["--fix will:", *(f"  - {fix.describe()}" for fix in fixes)]


def render_outcomes(outcomes: Sequence[Outcome], marks: dict[Status, str]) -> list[str]:
    return [
        f"{marks[Status.OK if o.ok else Status.PROBLEM]} {o.action}: {o.message}" for o in outcomes
    ]


def document(
    results: Sequence[CheckResult],
    *,
    before: Sequence[CheckResult] | None = None,
    plan: Sequence[Fix] | None = None,
    applied: bool = False,
    outcomes: Sequence[Outcome] = (),
) -> dict[str, Any]:
    """The ``--json`` document: ``ok``, ``checks``; with ``--fix`` also ``fix`` (the plan,
    whether it was applied, each outcome) and ``before`` (the checks before fixing)."""
    doc: dict[str, Any] = {"ok": all_ok(results), "checks": [r.to_json() for r in results]}
    if plan is not None:
        doc["fix"] = {
            "plan": [fix.describe() for fix in plan],
            "applied": applied,
            "outcomes": [o.to_json() for o in outcomes],
        }
    if before is not None:
        doc["before"] = [r.to_json() for r in before]
    return doc


__all__ = ["document", "marks_for", "render", "render_outcomes", "render_plan"]
