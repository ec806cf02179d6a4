"""How each HTTP outcome becomes a :mod:`kit.errors` class: the one place for that rule.

docs/etrusted-api.md tabulates every outcome; ``tests/test_errors.py`` checks that table against
these functions by driving the real client.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from kit.codec import error_message
from kit.errors import (
    AuthenticationError,
    ConflictError,
    ConnectError,
    ETrustedError,
    EventConflictError,
    GatewayError,
    InDoubtError,
    NetworkError,
    NotFoundError,
    PermanentAPIError,
    RateLimitedError,
    RetryableAPIError,
    ServerError,
    TokenUnavailableError,
    UnauthorizedError,
)

# A gateway or CDN gave up waiting for an upstream that may have acted (502/504, and the
# 52x origin errors CDNs such as Cloudflare answer with).
GATEWAY_STATUSES = frozenset({502, 504, 520, 521, 522, 523, 524, 525, 526, 527})
# The server itself failed unexpectedly: it may have stored a POST before failing, so a 500 to a
# POST is looked up before any resend (a 503 says "not now" and is retried).
SERVER_FAILED = 500
# The server gave up reading the request (408) or asked us to slow down (429): it did not act.
_TOKEN_RETRYABLE_STATUSES = frozenset({408, 429})
# What an OAuth2 token endpoint answers to a bad request or bad client credentials.
_CREDENTIALS_REFUSED = frozenset({400, 401, 403})
# "Repeat this request at another URI": the only answers below 400 that say it was not acted on.
# Any other (a 303 See Other above all) is how a server points at what a POST created.
_NOT_ACTED_REDIRECTS = frozenset({307, 308})
CONNECT_ERRORS = (
    aiohttp.ClientConnectorError,  # refused, DNS, TLS handshake, proxy connect
    aiohttp.ConnectionTimeoutError,  # sock_connect timeout
    aiohttp.ServerFingerprintMismatch,
)
EXCHANGE_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


def may_have_acted(method: str) -> bool:
    """A POST that may have reached the server cannot be told apart from one that did not."""
    return method == "POST"


def transport_error(exc: BaseException, *, method: str, url: str) -> ETrustedError:
    """No HTTP answer: ``exc`` is one of :data:`EXCHANGE_ERRORS`."""
    what = type(exc).__name__
    if isinstance(exc, CONNECT_ERRORS):
        return ConnectError(f"could not connect ({what}); nothing was sent", method=method, url=url)
    if may_have_acted(method):
        return InDoubtError(
            f"no answer after the request may have been sent ({what}); "
            "the server may have acted on it",
            method=method,
            url=url,
        )
    return NetworkError(f"no usable answer ({what})", method=method, url=url)


def status_error(
    status: int,
    raw: bytes,
    *,
    method: str,
    url: str,
    path: str,
    retry_after: float | None,
) -> ETrustedError:
    """A non-2xx answer from the API; a 401 here came after the one refresh of the token."""
    message = error_message(raw)
    where: dict[str, Any] = {"status": status, "method": method, "url": url}
    if status == 401:
        return UnauthorizedError(f"rejected a freshly fetched token: {message}", **where)
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after, **where)
    if status == 404:
        return NotFoundError(message, **where)
    if status == 409:
        if may_have_acted(method) and path == "/events":
            # Undocumented for POST /events; if it ever means "already have it", the event
            # exists: reconcile and adopt it rather than parking a delivered event as dead.
            return EventConflictError(message, **where)
        return ConflictError(message, **where)
    if status == 408:  # the server gave up reading the request: it did not act on it
        return RetryableAPIError(message, retry_after=retry_after, **where)
    if 400 <= status < 500:
        return PermanentAPIError(message, **where)
    if status >= 500:
        if may_have_acted(method) and status == SERVER_FAILED:
            return ServerError(
                f"server failed; the request may have been acted on: {message}",
                retry_after=retry_after,
                **where,
            )
        if may_have_acted(method) and status in GATEWAY_STATUSES:
            return GatewayError(
                f"gateway gave up waiting; the request may have been acted on: {message}",
                retry_after=retry_after,
                **where,
            )
        return RetryableAPIError(message, retry_after=retry_after, **where)
    if may_have_acted(method) and status not in _NOT_ACTED_REDIRECTS:
        return InDoubtError(
            f"unexpected answer; the request may have been acted on: {message}", **where
        )
    return PermanentAPIError(f"unexpected answer: {message}", **where)


def malformed_error(status: int, detail: str, *, method: str, url: str) -> ETrustedError:
    """A 2xx whose body cannot be used: after a POST, it may still have been acted on."""
    message = f"malformed HTTP {status} body: {detail}"
    if may_have_acted(method):
        return InDoubtError(
            message + "; the request may have been acted on", status=status, method=method, url=url
        )
    return NetworkError(message, status=status, method=method, url=url)


def token_status_error(
    status: int, raw: bytes, *, url: str, retry_after: float | None
) -> ETrustedError:
    """A non-2xx answer from the token endpoint: an outage, or refused credentials."""
    message = error_message(raw)
    if status >= 500 or status in _TOKEN_RETRYABLE_STATUSES:
        return TokenUnavailableError(
            f"token endpoint failed; retryable: {message}",
            status=status,
            method="POST",
            url=url,
            retry_after=retry_after,
        )
    if status in _CREDENTIALS_REFUSED:
        what = f"client credentials refused: {message}"
    else:  # a redirect or a missing path: the URL is wrong, whatever the credentials
        what = f"not a token endpoint's answer; check token_url: {message}"
    return AuthenticationError(what, status=status, method="POST", url=url)


def token_unavailable(message: str, *, url: str, status: int | None = None) -> ETrustedError:
    """The token endpoint could not be reached or sent no usable token."""
    return TokenUnavailableError(message, status=status, method="POST", url=url)
