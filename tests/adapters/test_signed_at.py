"""A signed timestamp is judged by one rule for every platform that signs one
(:func:`kit.adapters.check_signed_at`): older than the source's tolerance is a replay, further
ahead than the allowed clock skew was not signed by a sane clock, and both are refusals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kit.adapters import CLOCK_SKEW, check_signed_at
from kit.errors import VerificationError

NOW = 1_790_000_000.0


@pytest.mark.parametrize(
    ("signed_at", "max_age", "reason"),
    [
        (NOW - 301, timedelta(minutes=5), "stale_timestamp"),
        (NOW - 48 * 3600 - 1, timedelta(hours=48), "stale_timestamp"),
        (NOW + CLOCK_SKEW.total_seconds() + 1, timedelta(hours=48), "future_timestamp"),
        (NOW + CLOCK_SKEW.total_seconds() + 1, timedelta(seconds=30), "future_timestamp"),
    ],
)
def test_a_signature_outside_the_window_is_refused_with_its_reason(
    signed_at: float, max_age: timedelta, reason: str
) -> None:
    with pytest.raises(VerificationError) as caught:
        check_signed_at(signed_at, now=NOW, max_age=max_age)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("signed_at", "max_age"),
    [
        (NOW - 300, timedelta(minutes=5)),
        (NOW, timedelta(seconds=1)),
        (NOW + CLOCK_SKEW.total_seconds(), timedelta(seconds=30)),
        (NOW - 48 * 3600, timedelta(hours=48)),
    ],
)
def test_a_signature_inside_the_window_passes_edges_included(
    signed_at: float, max_age: timedelta
) -> None:
    check_signed_at(signed_at, now=NOW, max_age=max_age)


def test_the_refusal_says_how_far_off_the_signature_was_and_the_limit() -> None:
    with pytest.raises(VerificationError) as caught:
        check_signed_at(NOW - 3 * 86400, now=NOW, max_age=timedelta(minutes=5))
    assert "259200 s before it arrived" in str(caught.value)
    assert "tolerance 300 s" in str(caught.value)
