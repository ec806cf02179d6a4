"""This machine's clock against eTrusted's, read from the ``Date`` header of its answers.

The kit schedules hold-backs and reads ``Retry-After`` dates by the wall clock, and eTrusted
dates invites by its own; a clock that is minutes off moves every one of them. An NTP-synced
host is within a second. :data:`TOLERANCE` allows for the header's one-second resolution and
a slow answer, and still catches a clock that is not synchronised at all (drift of minutes) or
set in the wrong time zone (hours).
"""

from __future__ import annotations

import statistics

from kit.doctor.context import Context
from kit.doctor.result import CheckResult, Problem

TOLERANCE = 60.0  # seconds


async def check_clock(ctx: Context) -> CheckResult:
    name = "clock"
    client = ctx.setup.client
    # Only eTrusted's answers: a shop's server (a feed) keeps its own time.
    bases = () if client is None else (client.api_url.rstrip("/"), client.token_url)
    samples = [s for s in ctx.dates if s.url.startswith(bases)]
    if not samples:
        return CheckResult.skipped(
            name, "no answer from eTrusted carried a Date header (see credentials)"
        )
    # A Date header is truncated to the second: the server's time was up to 1 s later.
    offset = statistics.median(s.local - (s.server + 0.5) for s in samples)
    if abs(offset) <= TOLERANCE:
        return CheckResult.ok(
            name, f"within {TOLERANCE:g} s of eTrusted's (off by about {abs(offset):.0f} s)"
        )
    direction = "ahead of" if offset > 0 else "behind"
    return CheckResult.problem(
        name,
        f"this machine's clock is {abs(offset):.0f} s {direction} eTrusted's",
        [
            Problem(
                message=f"the clock is off by more than {TOLERANCE:g} s: hold-backs, retries"
                " and invite dates would be off by as much",
                hint="synchronise the clock with NTP (e.g. `timedatectl set-ntp true`, chrony)",
            )
        ],
    )


__all__ = ["TOLERANCE", "check_clock"]
