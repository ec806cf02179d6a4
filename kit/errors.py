"""The one error tree of etrusted-kit.

Every error the public API raises is a :class:`KitError`. Driver errors (aiohttp, sqlite3 /
aiosqlite, asyncpg) are translated where they occur and chained with ``raise ... from``, so the
original is always reachable through ``__cause__`` but never escapes on its own.

Under :class:`ETrustedError` the tree follows the :class:`FailureKind`: each branch has one kind,
fixed by its class, so ``except InDoubtError`` catches every failure after which a ``POST`` may
have been acted on, whatever happened on the wire::

    KitError
    ├── ConfigError                  bad configuration, unknown URL scheme, missing extra
    │   └── ConfigFileError          a configuration file with problems, each at its key path
    ├── ValidationError              an event or request body breaks the documented rules
    ├── ETrustedError                a call to eTrusted failed (only its subclasses are raised)
    │   ├── PermanentAPIError        PERMANENT: the API refused the request; resending cannot help
    │   │   ├── NotFoundError        404
    │   │   └── ConflictError        409 (e.g. an event type name that exists)
    │   ├── RetryableError           RETRYABLE: nothing was created; try again later
    │   │   ├── RetryableAPIError    503 and other 5xx (500 only to a non-POST), 408
    │   │   ├── NetworkError         no usable answer to a GET, PUT, PATCH or DELETE
    │   │   └── TurnedAwayError      turned away before anything could be created
    │   │       ├── RateLimitedError       429, with ``retry_after`` when the server gave one
    │   │       ├── ConnectError           no connection: nothing was sent
    │   │       └── TokenUnavailableError  the token endpoint failed or sent no usable token
    │   ├── InDoubtError             IN_DOUBT: a POST may have been acted on (timeout, disconnect)
    │   │   ├── ServerError          500 answering a POST: it failed, maybe after it acted
    │   │   ├── GatewayError         502, 504 or a CDN's 52x answering a POST
    │   │   └── EventConflictError   409 answering POST /events
    │   └── UnauthorizedError        UNAUTHORIZED: the API refused even a fresh token (401)
    │       └── AuthenticationError  the token endpoint refused us (credentials, wrong URL)
    ├── StorageError                 the outbox database failed
    │   ├── StorageUnavailableError  cannot open or reach the database
    │   └── MigrationError           the schema cannot be brought to the expected version
    ├── OutboxError                  a refused outbox operation (e.g. unknown key)
    │   ├── OutboxMovedError         the outbox was moved to another database (migrate-outbox)
    │   └── ErasureInFlightError     an erasure found entries being sent: nothing was erased
    ├── AdapterError                 a platform delivery cannot be taken in
    │   ├── VerificationError        missing or wrong signature, foreign sender (answer 401)
    │   ├── PayloadError             a verified body that is not what the platform sends (400)
    │   └── FeedError                reading a platform's order feed failed
    │       ├── FeedUnavailableError     5xx, a broken answer, no connection: back off, retry
    │       ├── FeedThrottledError       the platform's rate limit: wait ``retry_after``, retry
    │       └── FeedAuthError            401/403: the token is wrong or expired; stop
    └── ServiceError                 a part of ``serve`` failed, so the whole service stopped

:class:`TurnedAwayError` marks the retryable failures that are no fault of the request (rate
limit, no connection, no token): the flusher retries them without counting them against the
entry's attempt budget, so an outage of any length parks nothing. A 5xx from the API itself is
counted: a request that keeps breaking the server must end somewhere.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs


class KitError(Exception):
    """Base of every error raised by etrusted-kit."""


class ConfigError(KitError):
    """The configuration is invalid or names something that is not installed."""


@attrs.frozen
class FieldError:
    """One offending field: a dotted path such as ``products[0].url`` and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ValidationError(KitError):
    """Input breaks the documented eTrusted rules; ``errors`` names every offending field."""

    def __init__(self, errors: Sequence[FieldError], *, subject: str = "event") -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.subject = subject
        joined = "; ".join(str(e) for e in self.errors) or "invalid"
        super().__init__(f"invalid {subject}: {joined}")

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(e.path for e in self.errors)


class ConfigFileError(ConfigError):
    """A configuration file is invalid; ``problems`` names every offending key path
    (``sources[0].triggers[1].delay``), so one run shows them all."""

    def __init__(self, problems: Sequence[FieldError], *, origin: str = "configuration") -> None:
        self.problems: tuple[FieldError, ...] = tuple(problems)
        self.origin = origin
        count = len(self.problems)
        lines = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(f"{origin}: {count} problem{'s' * (count != 1)}:{lines}")


class FailureKind(enum.Enum):
    """How a failed call should be treated by a caller that wants exactly-once delivery."""

    PERMANENT = "permanent"  # the request is wrong; sending it again cannot succeed
    RETRYABLE = "retryable"  # nothing was created; try again later
    IN_DOUBT = "in_doubt"  # the server may have acted; reconcile before any resend
    UNAUTHORIZED = "unauthorized"  # credentials do not work: pause everything, not one entry


class ETrustedError(KitError):
    """A call to eTrusted (or to its token endpoint) failed; raise one of the subclasses.

    ``kind`` is fixed by the class: each direct subclass names its :class:`FailureKind`
    (``class X(ETrustedError, kind=...)``) and every class below it inherits it unchanged, so
    ``isinstance`` against a branch tells the kind. It cannot be set on an instance.
    """

    kind: ClassVar[FailureKind]

    def __init_subclass__(cls, *, kind: FailureKind | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in vars(cls):
            raise TypeError(f"{cls.__name__}: pass kind= in the class statement")
        inherited = {
            b.kind for b in cls.__mro__[1:] if issubclass(b, ETrustedError) and "kind" in vars(b)
        }
        if kind is not None:
            inherited.add(kind)
        if len(inherited) != 1:
            kinds = ", ".join(sorted(k.value for k in inherited)) or "none"
            raise TypeError(f"{cls.__name__} must have exactly one FailureKind, not: {kinds}")
        cls.kind = inherited.pop()

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        if type(self) is ETrustedError:
            raise TypeError("raise a subclass of ETrustedError: its class is its classification")
        self.message = message
        self.status = status
        self.method = method
        self.url = url
        self.retry_after = retry_after
        where = f"{method} {url}" if method and url else (url or "")
        status_part = f"HTTP {status}" if status is not None else ""
        prefix = ": ".join(p for p in (where, status_part) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "kind":
            raise AttributeError(f"kind is fixed by the class {type(self).__name__}")
        super().__setattr__(name, value)


class PermanentAPIError(ETrustedError, kind=FailureKind.PERMANENT):
    """The API refused the request (4xx other than 401/408/429; 307/308, or any 1xx/3xx to a
    request other than a POST); repeating it unchanged cannot succeed."""


class NotFoundError(PermanentAPIError):
    """The API answered 404."""


class ConflictError(PermanentAPIError):
    """The API answered 409 (e.g. an event type name that exists), except to POST /events."""


class RetryableError(ETrustedError, kind=FailureKind.RETRYABLE):
    """Nothing was created; the same request can be sent again later."""


class RetryableAPIError(RetryableError):
    """The API failed on its own side (5xx, or 408): nothing was created."""


class NetworkError(RetryableError):
    """No usable answer to a GET, PUT, PATCH or DELETE (timeout, disconnect, malformed body);
    these can be repeated safely."""


class TurnedAwayError(RetryableError):
    """Turned away before anything could be created, through no fault of the request.

    A caller with a retry budget per request (the flusher) does not charge these to it.
    """


class RateLimitedError(TurnedAwayError):
    """The API answered 429; ``retry_after`` holds the seconds it asked for, if any."""


class ConnectError(TurnedAwayError):
    """The connection could not be made (refused, DNS, TLS, connect timeout): nothing was sent."""


class TokenUnavailableError(TurnedAwayError):
    """No token could be had: the token endpoint failed (5xx, 408, 429), could not be reached,
    or answered without a usable token."""


class InDoubtError(ETrustedError, kind=FailureKind.IN_DOUBT):
    """A POST may have reached the server and been acted on; its outcome is unknown."""


class ServerError(InDoubtError):
    """The API answered a POST with 500: it failed unexpectedly, possibly after it stored the
    request, so a plain resend could make a second event (the reference warns of this)."""


class GatewayError(InDoubtError):
    """A gateway or CDN answered a POST with 502, 504 or 52x: it gave up waiting for an upstream
    that may have acted."""


class EventConflictError(InDoubtError):
    """The API answered 409 to ``POST /events``. Undocumented there; if it means "already have
    it", the event exists, so it is reconciled rather than parked."""


class UnauthorizedError(ETrustedError, kind=FailureKind.UNAUTHORIZED):
    """The credentials do not work: the API answered 401 although the token was just fetched."""


class AuthenticationError(UnauthorizedError):
    """The token endpoint refused the client credentials, or ``token_url`` is no token endpoint
    (a redirect, a missing path): either way no token comes until the configuration changes."""


class StorageError(KitError):
    """The outbox database failed."""


class StorageUnavailableError(StorageError):
    """The outbox database cannot be opened or reached."""


class MigrationError(StorageError):
    """The outbox schema cannot be brought to the version this kit expects."""


class OutboxError(KitError):
    """An outbox operation was refused (unknown key, wrong state for the operation)."""


class OutboxMovedError(OutboxError):
    """The outbox was moved to another database (``migrate-outbox``): it takes no new entries
    and hands none out, since nothing accepted or sent here would be seen by the new one's
    flushers. ``url`` is this outbox, ``moved_to`` where its entries live now."""

    def __init__(self, url: str, moved_to: str) -> None:
        self.url = url
        self.moved_to = moved_to
        super().__init__(
            f"the outbox at {url} was moved to {moved_to}: enqueue into that outbox and run"
            " flushers against it"
        )

    def __reduce__(self) -> tuple[type[OutboxMovedError], tuple[str, str]]:
        return (type(self), (self.url, self.moved_to))


class ErasureInFlightError(OutboxError):
    """An erasure request found ``in_flight`` of its outbox entries being sent, whose payloads
    must outlive their POST: so nothing of it was carried out (its transaction rolled back),
    rather than an erasure that leaves those payloads behind. Ask again once the sends have
    ended (a platform retries the webhook). ``delivery_id`` is the delivery that carried the
    request, if one did; the message never names the customer."""

    def __init__(self, source: str, delivery_id: str | None, in_flight: int) -> None:
        self.source = source
        self.delivery_id = delivery_id
        self.in_flight = in_flight
        carried = f" (delivery {delivery_id})" if delivery_id is not None else ""
        super().__init__(
            f"erasure for {source}{carried} not carried out: {in_flight} of its outbox entries"
            " are being sent; ask again once they have finished"
        )

    def __reduce__(self) -> tuple[type[ErasureInFlightError], tuple[str, str | None, int]]:
        return (type(self), (self.source, self.delivery_id, self.in_flight))


class AdapterError(KitError):
    """A platform delivery cannot be taken in."""


class VerificationError(AdapterError):
    """The delivery's signature or sender does not check out; ``reason`` is a fixed word.

    The message says what was wrong (``missing_signature``, ``bad_signature``, ...), never a
    secret, a computed digest or the signature that was sent.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}")


class PayloadError(AdapterError):
    """A verified delivery whose body or headers are not what the platform sends."""


class FeedError(AdapterError):
    """Reading a platform's order feed (polling, backfill) failed."""


class FeedUnavailableError(FeedError):
    """A failure that passes: a 5xx, a connection error, an answer cut short. The feed loop
    backs off with jitter and reads the same page again."""


class FeedThrottledError(FeedError):
    """The platform's rate limit (a 429, Shopify's ``THROTTLED``): nothing is wrong with the
    request. ``retry_after`` (seconds) is how long the platform asked to wait, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FeedAuthError(FeedError):
    """The platform refused the credentials (401, 403): retrying cannot help, so the feed stops
    and says which key to fix."""


class ServiceError(KitError):
    """A part of a running service (``serve``: the flusher, the listener) failed, and the
    service stopped as a whole rather than go on half alive. ``part`` names it; its own
    error is ``__cause__``."""

    def __init__(self, part: str, message: str) -> None:
        self.part = part
        super().__init__(message)

    def __reduce__(self) -> tuple[type[ServiceError], tuple[str, str]]:
        return (type(self), (self.part, str(self)))


__all__ = [
    "AdapterError",
    "AuthenticationError",
    "ConfigError",
    "ConfigFileError",
    "ConflictError",
    "ConnectError",
    "ETrustedError",
    "ErasureInFlightError",
    "EventConflictError",
    "FailureKind",
    "FeedAuthError",
    "FeedError",
    "FeedThrottledError",
    "FeedUnavailableError",
    "FieldError",
    "GatewayError",
    "InDoubtError",
    "KitError",
    "MigrationError",
    "NetworkError",
    "NotFoundError",
    "OutboxError",
    "OutboxMovedError",
    "PayloadError",
    "PermanentAPIError",
    "RateLimitedError",
    "RetryableAPIError",
    "RetryableError",
    "ServerError",
    "ServiceError",
    "StorageError",
    "StorageUnavailableError",
    "TokenUnavailableError",
    "TurnedAwayError",
    "UnauthorizedError",
    "ValidationError",
    "VerificationError",
]
