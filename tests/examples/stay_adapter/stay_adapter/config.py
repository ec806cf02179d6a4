"""The adapter's own keys in a ``[[sources]]`` table.

The kit reads the keys every source has (``name``, ``adapter``, ``webhook_secrets``,
``channel_id``, the policy) and structures the rest into this class, so a typo or a wrong
value is reported with its key path like every other key (a converter raises
``ConfigError``). Secrets never land here: the intake hands them to ``verify`` only.
"""

from __future__ import annotations

import attrs
from kit.errors import ConfigError

REFERENCES = ("confirmation_code", "booking_id")


def _reference(value: str) -> str:
    if value not in REFERENCES:
        raise ConfigError(f"reference must be one of {', '.join(REFERENCES)}, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class StayConfig:
    property_id: str  # the Staybook property this source serves, e.g. "prop-4711"
    # Which booking field becomes the transaction reference the guest sees in the invite.
    reference: str = attrs.field(default="confirmation_code", converter=_reference)
