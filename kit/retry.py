"""Backoff for retryable failures: exponential with full jitter, Retry-After honoured.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads a burst of failures
over the whole window, so a recovering eTrusted is not hit by every flusher at the same instant.
A server's ``Retry-After`` is a floor: it is never shortened by jitter, only spread a little
upwards so that many entries paused by one 429 do not all return in the same millisecond.
"""

from __future__ import annotations

import math
import random

import attrs

from kit.errors import ConfigError


@attrs.frozen(kw_only=True)
class Backoff:
    base: float = 1.0  # ceiling of the first retry's delay, seconds
    cap: float = 300.0  # the ceiling never grows past this
    retry_after_spread: float = 0.1  # up to +10 % on top of a server's Retry-After

    def __attrs_post_init__(self) -> None:
        for name in ("base", "cap", "retry_after_spread"):
            value = getattr(self, name)
            # NaN compares false both ways: only isfinite tells it apart.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"backoff {name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"backoff {name} must be a finite number >= 0, got {value!r}")
        if self.base <= 0 or self.cap < self.base:
            raise ConfigError(f"backoff needs 0 < base <= cap, got base={self.base} cap={self.cap}")

    def ceiling(self, failures: int) -> float:
        """The largest delay after ``failures`` consecutive failures (1 = first failure)."""
        exponent = max(0, failures - 1)
        # 2**exponent overflows float for absurd counts; the cap is reached long before.
        if exponent >= 64:
            return self.cap
        return min(self.cap, self.base * (2.0**exponent))

    def delay(
        self,
        failures: int,
        *,
        retry_after: float | None = None,
        rng: random.Random | None = None,
    ) -> float:
        draw = (rng or random).random()
        if retry_after is not None and retry_after > 0:
            return retry_after * (1.0 + self.retry_after_spread * draw)
        return self.ceiling(failures) * draw
