"""Fault injection: what can go wrong between a client and eTrusted, on demand.

Faults are matched in the order they were added; the first one that matches the request and
wins its probability roll fires and is counted against ``times``. The RNG is the sandbox's seeded
one, so a seeded run fires the same faults on the same requests every time.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from typing import Any

import attrs

from kit.errors import ConfigError

TOKEN_PATH = "/oauth/token"  # noqa: S105 (a path)
# The login service's older Keycloak path, still named by events.public.yaml; served alike.
LEGACY_TOKEN_PATH = "/auth/realms/business/protocol/openid-connect/token"  # noqa: S105
TOKEN_PATHS = frozenset({TOKEN_PATH, LEGACY_TOKEN_PATH})


class FaultKind(enum.StrEnum):
    STATUS = "status"  # answer `status` with the service's documented body shape, do nothing
    RATE_LIMIT = "rate_limit"  # 429, with Retry-After: <retry_after> if not None
    DROP_AFTER_ACCEPT = "drop_after_accept"  # process fully, then abort with no response
    FAIL_AFTER_ACCEPT = "fail_after_accept"  # process fully, then answer `status` (500, 502...)
    DROP_BEFORE_ACCEPT = "drop_before_accept"  # abort the connection without processing
    LATE_ANSWER = "late_answer"  # process, then wait `delay` seconds before answering


def _check_status(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise ConfigError(f"status must be an HTTP status code, got {value!r}")


def _check_probability(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"probability must be between 0 and 1, got {value!r}")


def _check_non_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and value < 0:
        raise ConfigError(f"{attribute.name} must be >= 0, got {value!r}")


def _normalise_method(value: str | None) -> str | None:
    return None if value is None else value.upper()


def _check_path(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and not value.startswith("/"):
        raise ConfigError(f"path must start with '/', got {value!r}")


@attrs.frozen(kw_only=True)
class Fault:
    """One injected failure.

    ``path`` is an exact path or a prefix ending in ``*`` (``"/events*"``). ``None`` matches every
    path of the API base, but not the token endpoint, which lives on another host in production:
    name ``"/oauth/token"`` (or the older Keycloak path) to fault it.
    """

    kind: FaultKind = attrs.field(converter=FaultKind)
    method: str | None = attrs.field(default=None, converter=_normalise_method)
    path: str | None = attrs.field(default=None, validator=_check_path)
    status: int = attrs.field(default=503, validator=_check_status)
    retry_after: float | None = attrs.field(default=None, validator=_check_non_negative)
    delay: float = attrs.field(default=0.0, validator=_check_non_negative)
    times: int | None = attrs.field(default=None, validator=_check_non_negative)
    probability: float = attrs.field(default=1.0, validator=_check_probability)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if self.path is None:
            return path not in TOKEN_PATHS
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "retry_after": self.retry_after,
            "delay": self.delay,
            "times": self.times,
            "probability": self.probability,
        }


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,),
    "method": (str, type(None)),
    "path": (str, type(None)),
    "status": (int,),
    "retry_after": (int, float, type(None)),
    "delay": (int, float),
    "times": (int, type(None)),
    "probability": (int, float),
}


def fault_from_json(data: Any) -> Fault:
    """Build a :class:`Fault` from its JSON form (the field names of the class)."""
    if not isinstance(data, Mapping):
        raise ConfigError("a fault must be a JSON object")
    unknown = sorted(set(data) - set(_FIELD_TYPES))
    if unknown:
        raise ConfigError(f"unknown fault field(s): {', '.join(unknown)}")
    if "kind" not in data:
        raise ConfigError("a fault needs a 'kind'")
    for name, value in data.items():
        if isinstance(value, bool) or not isinstance(value, _FIELD_TYPES[name]):
            raise ConfigError(f"fault field {name!r} has the wrong type: {value!r}")
    try:
        kind = FaultKind(data["kind"])
    except ValueError as exc:
        choices = ", ".join(k.value for k in FaultKind)
        raise ConfigError(f"unknown fault kind {data['kind']!r} (one of {choices})") from exc
    kwargs = {name: value for name, value in data.items() if name != "kind"}
    return Fault(kind=kind, **kwargs)


@attrs.define
class _Armed:
    id: str
    fault: Fault
    fired: int = 0

    @property
    def exhausted(self) -> bool:
        return self.fault.times is not None and self.fired >= self.fault.times


class FaultRegistry:
    """The sandbox's faults, in order; ``pick`` is the only call on the hot path."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._armed: list[_Armed] = []
        self._next_id = 1

    def add(self, fault: Fault) -> str:
        fault_id = f"flt-{self._next_id}"
        self._next_id += 1
        self._armed.append(_Armed(fault_id, fault))
        return fault_id

    def remove(self, fault_id: str) -> bool:
        before = len(self._armed)
        self._armed = [a for a in self._armed if a.id != fault_id]
        return len(self._armed) != before

    def clear(self) -> None:
        self._armed.clear()

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault to fire for this request, already counted, or None."""
        if not self._armed:
            return None
        for armed in self._armed:
            if armed.exhausted or not armed.fault.matches(method, path):
                continue
            probability = armed.fault.probability
            if probability < 1.0 and self._rng.random() >= probability:
                continue
            armed.fired += 1
            return armed.fault
        return None

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"id": a.id, **a.fault.to_json(), "fired": a.fired, "exhausted": a.exhausted}
            for a in self._armed
        ]

    def fired(self) -> int:
        return sum(a.fired for a in self._armed)
