"""What a check finds: ok, problems (each in plain words, with how to fix it), or skipped.

A check is a small async function from :class:`~kit.doctor.context.Context` to one
:class:`CheckResult`; adding a check is writing one and listing it in
:data:`kit.doctor.checks.CHECKS`.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from kit.doctor.context import Context
    from kit.doctor.fixes import Fix


class Status(enum.StrEnum):
    OK = "ok"
    PROBLEM = "problem"
    SKIPPED = "skipped"


@attrs.frozen(kw_only=True)
class Problem:
    """One thing that is wrong; ``fix`` is what ``--fix`` can do about it, if anything."""

    message: str
    hint: str
    fix: Fix | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "hint": self.hint,
            "fix": None if self.fix is None else self.fix.describe(),
        }


@attrs.frozen(kw_only=True)
class CheckResult:
    """A check's verdict. ``message`` says what was found (or why the check was skipped)."""

    name: str
    status: Status
    message: str
    problems: tuple[Problem, ...] = ()

    @classmethod
    def ok(cls, name: str, message: str) -> CheckResult:
        return cls(name=name, status=Status.OK, message=message)

    @classmethod
    def skipped(cls, name: str, reason: str) -> CheckResult:
        return cls(name=name, status=Status.SKIPPED, message=reason)

    @classmethod
    def problem(cls, name: str, message: str, problems: Sequence[Problem]) -> CheckResult:
        return cls(name=name, status=Status.PROBLEM, message=message, problems=tuple(problems))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "problems": [p.to_json() for p in self.problems],
        }


@attrs.frozen
class Check:
    """A named check; ``run`` never raises a :class:`~kit.errors.KitError` (it reports it)."""

    name: str
    run: Callable[[Context], Awaitable[CheckResult]]


def all_ok(results: Sequence[CheckResult]) -> bool:
    """Everything would work: no check found a problem. A skipped check is not a problem on
    its own: whatever made it skip is reported by the check it depends on."""
    return not any(r.status is Status.PROBLEM for r in results)


__all__ = ["Check", "CheckResult", "Problem", "Status", "all_ok"]
