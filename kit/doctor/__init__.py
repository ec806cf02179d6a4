"""``etrusted-kit doctor``: the whole setup checked against the live account, in plain words.

Each check (:data:`CHECKS`) is a small async function from a :class:`Context` to a
:class:`CheckResult`: ok, a problem with what is wrong and how to fix it (and, where it can, a
:class:`Fix` that ``--fix`` applies), or skipped with the reason. Reference: ``docs/doctor.md``.
"""

from __future__ import annotations

from kit.doctor.checks import CHECKS, run_checks
from kit.doctor.clock import TOLERANCE
from kit.doctor.context import Context
from kit.doctor.fixes import Fix, Outcome, apply, plan
from kit.doctor.result import Check, CheckResult, Problem, Status, all_ok
from kit.doctor.setup import LoadedFile, Setup, load_file

__all__ = [
    "CHECKS",
    "TOLERANCE",
    "Check",
    "CheckResult",
    "Context",
    "Fix",
    "LoadedFile",
    "Outcome",
    "Problem",
    "Setup",
    "Status",
    "all_ok",
    "apply",
    "load_file",
    "plan",
    "run_checks",
]
