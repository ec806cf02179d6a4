"""One rule for a test whose precondition is missing: skip with the reason, but fail in CI.

A developer without PostgreSQL or without the OpenAPI copies still gets a green run of the rest;
CI (``CI=true``) can never pass by skipping what it is meant to check.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(problem: str, *, what: str) -> NoReturn:
    """Skip the test because of ``problem``; with ``CI=true``, fail it instead."""
    if in_ci():
        pytest.fail(f"CI=true but {problem}; {what} may not skip in CI")
    pytest.skip(problem)
