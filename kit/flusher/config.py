"""A flusher's configuration (every field checked on construction) and its counters."""

from __future__ import annotations

import enum
import logging
import math
import os
import socket
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any, Protocol

import attrs

from kit.errors import ConfigError
from kit.retry import Backoff

logger = logging.getLogger("kit.flusher")


class InDoubtPolicy(enum.StrEnum):
    """What to do when reconciliation found nothing for a whole window."""

    RESEND = "resend"  # send again (counted as a blind resend)
    PARK = "park"  # move to ``dead`` for an operator to decide


class HasRequestTimeout(Protocol):
    """The part of a client's configuration the lease rule reads (``ClientConfig`` has it)."""

    @property
    def request_timeout(self) -> float: ...


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _number(value: object, name: str) -> float:
    # bool is an int to Python, but never a sensible count or duration.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    return float(value)


def _above_zero(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    # NaN compares false both ways, so only an explicit range test refuses it.
    if not 0 < _number(value, attribute.name) < math.inf:
        raise ConfigError(f"{attribute.name} must be a finite number > 0, got {value!r}")


def _at_least_zero(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= _number(value, attribute.name) < math.inf:
        raise ConfigError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _count(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{attribute.name} must be a whole number >= 1, got {value!r}")


def _of_type(kind: type) -> Any:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, kind):
            raise ConfigError(f"{attribute.name} must be a {kind.__name__}, got {value!r}")

    return check


def _owner(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError(f"owner must be a non-empty string or None, got {value!r}")


@attrs.frozen(kw_only=True)
class FlusherConfig:
    """Tuning of one flusher. Defaults suit production; tests shorten the windows.

    Every field is checked here, so a wrong value fails at construction with a
    :class:`~kit.errors.ConfigError` naming it, not hours later inside the loop.
    """

    owner: str | None = attrs.field(default=None, validator=_owner)  # default host:pid:random
    concurrency: int = attrs.field(default=8, validator=_count)
    # A POST only starts while at least half of its lease is left, so the client's
    # request_timeout must be below lease_seconds / 2 (see check_client).
    lease_seconds: float = attrs.field(default=60.0, validator=_above_zero)
    poll_interval: float = attrs.field(default=1.0, validator=_above_zero)
    max_sends: int = attrs.field(default=10, validator=_count)  # attempt budget per entry
    backoff: Backoff = attrs.field(factory=Backoff, validator=_of_type(Backoff))
    # first look, this long after a send went in doubt
    reconcile_delay: float = attrs.field(default=2.0, validator=_at_least_zero)
    reconcile_interval: float = attrs.field(default=15.0, validator=_above_zero)
    # how long to keep looking before resending / parking
    reconcile_window: float = attrs.field(default=300.0, validator=_at_least_zero)
    # tolerance comparing eTrusted's createdAt with our clock
    clock_skew: float = attrs.field(default=120.0, validator=_at_least_zero)
    in_doubt_policy: InDoubtPolicy = attrs.field(
        default=InDoubtPolicy.RESEND, validator=_of_type(InDoubtPolicy)
    )
    # this flusher's own pause after its credentials were refused (401 after a refresh)
    auth_pause: float = attrs.field(default=30.0, validator=_above_zero)
    # fleet-wide pause after a 429 without Retry-After; doubles while repeated, up to pace_max
    pace_default: float = attrs.field(default=1.0, validator=_above_zero)
    pace_max: float = attrs.field(default=120.0, validator=_above_zero)
    # A server's Retry-After is honoured up to this; a larger one (a misconfigured proxy, a
    # daily quota) would otherwise pause the whole fleet through the stored hold for as long.
    retry_after_max: float = attrs.field(default=3600.0, validator=_above_zero)
    # how stale our view of fleet-wide holds may be
    hold_check_interval: float = attrs.field(default=0.5, validator=_above_zero)
    # on stop: how long in-flight POSTs may take to finish
    grace_period: float = attrs.field(default=10.0, validator=_at_least_zero)
    # park events whose type is unknown/inactive in eTrusted
    check_event_types: bool = attrs.field(default=True, validator=_of_type(bool))
    event_types_ttl: float = attrs.field(default=300.0, validator=_above_zero)

    def __attrs_post_init__(self) -> None:
        if self.pace_max < self.pace_default:
            raise ConfigError(
                f"pace_max ({self.pace_max:g}) must be >= pace_default ({self.pace_default:g})"
            )

    def check_client(self, client: HasRequestTimeout) -> None:
        """Refuse a client whose requests may outlive half a lease.

        A POST starts only in the first half of its lease; if its request may take longer than
        that, another flusher can take the entry over as in doubt while the POST is still on the
        wire. (The flusher cuts such a POST off at its lease budget, so the entry goes in doubt
        rather than twice to eTrusted, but every slow answer then costs a reconciliation.)
        """
        timeout = _number(client.request_timeout, "request_timeout")
        if not timeout < self.lease_seconds / 2:  # NaN included
            raise ConfigError(
                f"lease_seconds ({self.lease_seconds:g}) must be more than twice the request "
                f"timeout ({timeout:g} s): a POST must end inside its lease"
            )


class Count(enum.StrEnum):
    """A counter a decision adds one to; each value is a :class:`FlusherStats` field."""

    DELIVERED = "delivered"
    ADOPTED = "adopted"
    RETRIED = "retried"
    IN_DOUBT = "in_doubt"
    BLIND_RESENDS = "blind_resends"
    DEAD = "dead"
    RATE_LIMITED = "rate_limited"
    AUTH_PAUSES = "auth_pauses"
    RELEASED = "released"


def warn_if_lease_too_short(config: FlusherConfig, client: object) -> None:
    """The lease rule (:meth:`FlusherConfig.check_client`) for a client exposing its config.

    Only a warning: the flusher cuts a POST off at its lease budget all the same, so such a
    setup is slow (in-doubt answers), not unsafe. ``etrusted-kit flush`` refuses it.
    """
    client_config = getattr(client, "config", None)
    if client_config is None or not hasattr(client_config, "request_timeout"):
        return
    try:
        config.check_client(client_config)
    except ConfigError as exc:
        logger.warning("%s", exc, extra={"action": "lease_too_short"})


@attrs.define
class FlusherStats:
    """Counters since this flusher started (the demo and ``status`` show them)."""

    claimed: int = 0
    posts: int = 0
    delivered: int = 0
    adopted: int = 0
    retried: int = 0
    in_doubt: int = 0
    reconcile_checks: int = 0
    blind_resends: int = 0
    dead: int = 0
    rate_limited: int = 0
    auth_pauses: int = 0
    fenced: int = 0
    released: int = 0
    post_ms: deque[float] = attrs.field(factory=lambda: deque(maxlen=100_000))

    def count(self, counts: Iterable[Count]) -> None:
        """Add one to each named counter (each decision names its own)."""
        for name in counts:  # a Count is its field's name (``.value`` is slow on Python 3.11)
            setattr(self, name, getattr(self, name) + 1)

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self, filter=lambda a, _: a.name != "post_ms")
        ms = sorted(self.post_ms)
        if ms:
            data["post_ms_p50"] = round(ms[len(ms) // 2], 2)
            data["post_ms_p99"] = round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 2)
        return data
