"""Opaque bearer tokens with a lifetime, checked in O(1) per request."""

from __future__ import annotations

import secrets
from collections.abc import Callable

_PRUNE_EVERY = 256  # issue calls between sweeps of expired tokens


class TokenStore:
    """Issues tokens and says whether one still works at the sandbox clock's ``now``."""

    def __init__(self, *, expires_in: int, clock: Callable[[], float]) -> None:
        self._expires_in = expires_in
        self._clock = clock
        self._tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.issued = 0

    @property
    def expires_in(self) -> int:
        return self._expires_in

    def issue(self) -> str:
        now = self._clock()
        token = secrets.token_urlsafe(32)
        self._tokens[token] = now + self._expires_in
        self.issued += 1
        if self.issued % _PRUNE_EVERY == 0:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        return token

    def valid(self, token: str) -> bool:
        expiry = self._tokens.get(token)
        return expiry is not None and self._clock() < expiry

    def expire_all(self) -> None:
        self._tokens.clear()


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
