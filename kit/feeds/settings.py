"""The feed keys every order platform's source shares (``poll_interval``, ``max_age``), and
their one rule, so that an adapter's config declares them with these field factories and
never restates a default.

``poll_interval``: how often ``serve`` polls the source. Polling needs the feed's credentials
(an access token, an API key); a source with credentials polls every five minutes unless it
says otherwise, and ``0`` turns polling off. A source without credentials takes webhooks only,
and a ``poll_interval`` above 0 there is refused, because it would promise a reconciliation
that never runs.

``max_age``: orders the feed finds that were placed longer ago are skipped ``too_old`` (an
invite for a purchase half a year back only annoys); 180 days unless set.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from kit.errors import ConfigError
from kit.policy.config import duration

DEFAULT_POLL_INTERVAL = timedelta(minutes=5)
DEFAULT_MAX_AGE = timedelta(days=180)


def _optional_duration(value: timedelta | str | int | None) -> timedelta | None:
    return None if value is None else duration(value)


def poll_interval_field() -> Any:
    """``poll_interval``: ``None`` when the key is absent (the default applies, see
    :func:`polling`), else the duration given (``0`` turns polling off)."""
    return attrs.field(default=None, converter=_optional_duration)


def max_age_field() -> Any:
    """``max_age``, 180 days unless set."""
    return attrs.field(default=DEFAULT_MAX_AGE, converter=duration)


def polling(poll_interval: timedelta | None, *, credentials: bool) -> timedelta | None:
    """How often ``serve`` polls: ``None`` (off) without credentials or at ``0``, else the
    configured interval or :data:`DEFAULT_POLL_INTERVAL`."""
    if not credentials:
        return None
    interval = DEFAULT_POLL_INTERVAL if poll_interval is None else poll_interval
    return interval if interval > timedelta(0) else None


def check_polling(poll_interval: timedelta | None, *, credentials: bool, needs: str) -> None:
    """Refuse a ``poll_interval`` above 0 on a source without its feed's credentials
    (``needs`` names them, for the message)."""
    if not credentials and poll_interval:
        raise ConfigError(
            f"poll_interval needs {needs}: the order feed reads the platform's API with it "
            "(remove poll_interval for a source that takes webhooks only)"
        )


__all__ = [
    "DEFAULT_MAX_AGE",
    "DEFAULT_POLL_INTERVAL",
    "check_polling",
    "max_age_field",
    "poll_interval_field",
    "polling",
]
