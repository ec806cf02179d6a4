"""FlusherConfig refuses every out-of-range value at construction, naming the field."""

from __future__ import annotations

import math
from typing import Any

import pytest

from kit.config import ClientConfig
from kit.errors import ConfigError
from kit.flusher import FlusherConfig, InDoubtPolicy
from kit.retry import Backoff

# field -> values that must be refused (every number: NaN and infinity too)
REFUSED: dict[str, list[Any]] = {
    "concurrency": [0, -1, 1.5, True, "8"],
    "lease_seconds": [0, -1, math.nan, math.inf],
    "poll_interval": [0, -0.1, math.nan, math.inf],
    "max_sends": [0, -3, 2.5, math.nan],
    "reconcile_delay": [-1, math.nan, math.inf],
    "reconcile_interval": [0, -1, math.nan, math.inf],
    "reconcile_window": [-1, math.nan, math.inf],
    "clock_skew": [-1, math.nan, math.inf],
    "auth_pause": [0, -1, math.nan, math.inf],
    "pace_default": [0, -1, math.nan, math.inf],
    "pace_max": [0, -1, math.nan, math.inf, 0.5],  # 0.5 < pace_default
    "retry_after_max": [0, -1, math.nan, math.inf],
    "hold_check_interval": [0, -1, math.nan, math.inf],
    "grace_period": [-1, math.nan, math.inf],
    "event_types_ttl": [0, -1, math.nan, math.inf],
    "in_doubt_policy": ["maybe", None],
    "check_event_types": ["yes", None],
    "backoff": [None, 1.0],
    "owner": ["", "   ", 3],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, values in REFUSED.items() for value in values],
    ids=lambda v: repr(v),
)
def test_every_field_refuses_what_is_out_of_range(field: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=field):
        FlusherConfig(**{field: value})


def test_every_field_is_checked() -> None:
    """A field added without a check would be missing from REFUSED."""
    import attrs

    assert {f.name for f in attrs.fields(FlusherConfig)} == set(REFUSED)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("reconcile_delay", 0),
        ("reconcile_window", 0),
        ("grace_period", 0),
        ("clock_skew", 0),
        ("concurrency", 1),
        ("in_doubt_policy", InDoubtPolicy.PARK),
        ("owner", "worker-1"),
    ],
)
def test_boundary_values_are_accepted(field: str, value: Any) -> None:
    assert getattr(FlusherConfig(**{field: value}), field) == value


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": math.nan},
        {"cap": math.inf},
        {"base": 0},
        {"base": 2, "cap": 1},
        {"retry_after_spread": -1},
    ],
)
def test_backoff_refuses_what_is_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match="backoff"):
        Backoff(**kwargs)


def client(request_timeout: float) -> ClientConfig:
    return ClientConfig(client_id="id", client_secret="secret", request_timeout=request_timeout)


def test_a_request_must_end_inside_half_a_lease() -> None:
    config = FlusherConfig(lease_seconds=30.0)
    config.check_client(client(14.9))
    for timeout in (15.0, 20.0):
        with pytest.raises(ConfigError, match=r"lease_seconds \(30\).*twice the request timeout"):
            config.check_client(client(timeout))
