"""The one error tree of etrusted-kit.

Every error the public API raises is a :class:`KitError`. Driver errors (aiohttp, sqlite3 /
aiosqlite, asyncpg) are translated where they occur and chained with ``raise ... from``, so the
original is always reachable through ``__cause__`` but never escapes on its own::

    KitError
    ├── ConfigError                  bad configuration, unknown URL scheme, missing extra
    ├── ValidationError              an event or request body breaks the documented rules
    ├── ETrustedError                anything that went wrong talking to eTrusted
    │   ├── AuthenticationError      the token endpoint refused or failed
    │   ├── UnauthorizedError        the API answered 401 even with a fresh token
    │   ├── PermanentAPIError        4xx other than 401/429: sending again cannot help
    │   │   ├── NotFoundError        404
    │   │   └── ConflictError        409 (e.g. an event type name that exists)
    │   ├── RetryableAPIError        5xx: try again later
    │   │   └── RateLimitedError     429, with ``retry_after`` when the server gave one
    │   └── NetworkError             no usable HTTP answer
    │       ├── ConnectError         refused / unreachable before anything was sent
    │       └── InDoubtError         a POST may have reached the server (timeout, disconnect)
    ├── StorageError                 the outbox database failed
    │   ├── StorageUnavailableError  cannot open or reach the database
    │   └── MigrationError           the schema cannot be brought to the expected version
    └── OutboxError                  a refused outbox operation (e.g. unknown key)
        └── OutboxMovedError         the outbox was moved to another database (migrate-outbox)

Each :class:`ETrustedError` carries a :class:`FailureKind`, which is all the flusher needs to
decide between dead-lettering, retrying, reconciling and pausing the whole account.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

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


class FailureKind(enum.Enum):
    """How a failed call should be treated by a caller that wants exactly-once delivery."""

    PERMANENT = "permanent"  # the request is wrong; sending it again cannot succeed
    RETRYABLE = "retryable"  # nothing was created; try again later
    IN_DOUBT = "in_doubt"  # the server may have acted; reconcile before any resend
    UNAUTHORIZED = "unauthorized"  # credentials do not work: pause everything, not one entry


class ETrustedError(KitError):
    """A call to eTrusted (or the token endpoint) failed."""

    kind: FailureKind = FailureKind.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        url: str | None = None,
        retry_after: float | None = None,
        kind: FailureKind | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.method = method
        self.url = url
        self.retry_after = retry_after
        if kind is not None:
            self.kind = kind
        where = f"{method} {url}" if method and url else (url or "")
        status_part = f"HTTP {status}" if status is not None else ""
        prefix = ": ".join(p for p in (where, status_part) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class AuthenticationError(ETrustedError):
    """The token endpoint refused the client credentials or could not be used."""

    kind = FailureKind.UNAUTHORIZED


class UnauthorizedError(ETrustedError):
    """The API answered 401 although the token was just refreshed."""

    kind = FailureKind.UNAUTHORIZED


class PermanentAPIError(ETrustedError):
    """The API rejected the request (4xx); repeating it unchanged cannot succeed."""

    kind = FailureKind.PERMANENT


class NotFoundError(PermanentAPIError):
    """The API answered 404."""


class ConflictError(PermanentAPIError):
    """The API answered 409."""


class RetryableAPIError(ETrustedError):
    """The API failed on its side (5xx); the request can be repeated later."""

    kind = FailureKind.RETRYABLE


class RateLimitedError(RetryableAPIError):
    """The API answered 429; ``retry_after`` holds the seconds it asked for, if any."""


class NetworkError(ETrustedError):
    """No usable HTTP answer arrived (timeout, disconnect, malformed response)."""

    kind = FailureKind.RETRYABLE


class ConnectError(NetworkError):
    """The connection could not be made; nothing reached the server."""

    kind = FailureKind.RETRYABLE


class InDoubtError(NetworkError):
    """A non-idempotent request may have reached the server; its outcome is unknown."""

    kind = FailureKind.IN_DOUBT


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


__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConflictError",
    "ConnectError",
    "ETrustedError",
    "FailureKind",
    "FieldError",
    "InDoubtError",
    "KitError",
    "MigrationError",
    "NetworkError",
    "NotFoundError",
    "OutboxError",
    "OutboxMovedError",
    "PermanentAPIError",
    "RateLimitedError",
    "RetryableAPIError",
    "StorageError",
    "StorageUnavailableError",
    "UnauthorizedError",
    "ValidationError",
]
