"""OAuth2 client-credentials tokens for eTrusted, cached and refreshed before they expire.

The lifetime comes from each response's ``expires_in`` (the documented samples range from 300 s
to a day, so nothing is hard-coded). Concurrent callers share one refresh: a burst of flusher
workers after an expiry makes one token request, not one each.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import aiohttp
import attrs

from kit._classify import token_status_error, token_unavailable
from kit.codec import from_wire, parse_retry_after
from kit.config import ClientConfig
from kit.errors import ETrustedError, ValidationError
from kit.models import Token

logger = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class _Cached:
    access_token: str = attrs.field(repr=False)
    refresh_at: float | None  # None: lifetime unknown, keep it until the API answers 401


class TokenProvider:
    """Fetches, caches and refreshes the bearer token; never logs or shows it."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._clock = clock
        self._wall_clock = wall_clock
        self._timeout = aiohttp.ClientTimeout(
            total=config.request_timeout, sock_connect=config.connect_timeout
        )
        self._cached: _Cached | None = None
        self._inflight: asyncio.Task[str] | None = None
        self.requests = 0  # token requests started (successful or not)

    def __repr__(self) -> str:
        return f"TokenProvider(token_url={self._config.token_url!r})"

    @property
    def has_token(self) -> bool:
        return self._cached is not None

    def current(self) -> str | None:
        """The cached token unless it is due for refresh; None: :meth:`token` must fetch one.

        Plain, not a coroutine: every request asks, and almost always gets the cached token.
        """
        cached = self._cached
        if cached is not None and (cached.refresh_at is None or self._clock() < cached.refresh_at):
            return cached.access_token
        return None

    async def token(self, session: aiohttp.ClientSession) -> str:
        """A token that is not due for refresh; fetches one (shared by all waiters) if needed."""
        current = self.current()
        if current is not None:
            return current
        task = self._inflight
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(session))
            self._inflight = task
            task.add_done_callback(self._fetch_done)
        # shield: one cancelled caller must not cancel the refresh the others are waiting for.
        return await asyncio.shield(task)

    def invalidate(self, token: str) -> None:
        """Drop the cached token, but only if it is still ``token``.

        A 401 answered to a request that carried an old token must not throw away the fresh
        token another request has fetched in the meantime.
        """
        cached = self._cached
        if cached is not None and cached.access_token == token:
            self._cached = None  # the client logs the 401 that led here: no second line

    async def aclose(self) -> None:
        """Cancel a refresh in flight (the session it uses is about to close)."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _fetch_done(self, task: asyncio.Task[str]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # mark retrieved: every waiter may have gone away

    async def _fetch(self, session: aiohttp.ClientSession) -> str:
        config = self._config
        started = self._clock()
        self.requests += 1
        form = {
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "grant_type": "client_credentials",
            "audience": config.audience,
        }
        try:
            async with session.post(
                config.token_url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                allow_redirects=False,
                raise_for_status=False,
            ) as response:
                status = response.status
                raw = await response.read()
                retry_after_header = response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            what = type(exc).__name__
            raise self._failed(
                token_unavailable(
                    f"token endpoint unreachable or timed out ({what}); retryable",
                    url=config.token_url,
                )
            ) from exc

        if not 200 <= status < 300:
            retry_after = parse_retry_after(retry_after_header, now=self._wall_clock())
            raise self._failed(
                token_status_error(status, raw, url=config.token_url, retry_after=retry_after)
            )

        try:
            token = from_wire(Token, json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise self._failed(
                token_unavailable(
                    "token endpoint answered with a malformed body; retryable",
                    url=config.token_url,
                    status=status,
                )
            ) from exc
        if not token.access_token.strip():
            raise self._failed(
                token_unavailable(
                    "token endpoint answered with an empty access_token; retryable",
                    url=config.token_url,
                    status=status,
                )
            )

        self._cached = _Cached(
            access_token=token.access_token, refresh_at=self._refresh_at(started, token)
        )
        logger.debug(
            "access token fetched",
            extra={"action": "token_fetched", "expires_in": token.expires_in},
        )
        return token.access_token

    def _refresh_at(self, started: float, token: Token) -> float | None:
        lifetime = token.expires_in
        if lifetime is None:
            return None
        margin = max(self._config.token_refresh_margin, 0.0)
        if lifetime > margin:
            return started + lifetime - margin
        return started + lifetime / 2

    def _failed(self, error: ETrustedError) -> ETrustedError:
        """Log the one line for a failed token request, however many callers wait on it."""
        logger.warning(
            "token request failed: %s",
            error.message,
            extra={
                "action": "token_request_failed",
                "status": error.status,
                "kind": error.kind.value,
                "error": type(error).__name__,
            },
        )
        return error


__all__ = ["TokenProvider"]
