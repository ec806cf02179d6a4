"""The checks in the order they run, and running them.

Order matters only where a check reads what an earlier one found: the credentials check marks
the account as usable for the account checks, and the clock check reads the ``Date`` headers
of the answers before it.
"""

from __future__ import annotations

from kit.doctor.account import (
    check_channels,
    check_credentials,
    check_event_types,
    check_invite_settings,
)
from kit.doctor.clock import check_clock
from kit.doctor.context import Context
from kit.doctor.database import check_database
from kit.doctor.feeds import check_feeds
from kit.doctor.result import Check, CheckResult
from kit.doctor.sources import check_configuration, check_source_secrets

CHECKS: tuple[Check, ...] = (
    Check("configuration", check_configuration),
    Check("credentials", check_credentials),
    Check("channels", check_channels),
    Check("event types", check_event_types),
    Check("invite settings", check_invite_settings),
    Check("database", check_database),
    Check("source secrets", check_source_secrets),
    Check("feeds", check_feeds),
    Check("clock", check_clock),
)


async def run_checks(ctx: Context, checks: tuple[Check, ...] = CHECKS) -> list[CheckResult]:
    """Every check's result, in order. ``ctx`` must be open (``async with``)."""
    ctx.account_usable = False
    ctx.dates.clear()
    return [await check.run(ctx) for check in checks]


__all__ = ["CHECKS", "run_checks"]
