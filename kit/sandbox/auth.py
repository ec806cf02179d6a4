"""Bearer tokens shaped like the login service's: signed JWTs with a lifetime.

eTrusted's specs declare ``bearerFormat: JWT``, and some clients decode the token (to read
``exp`` or the account). So the sandbox issues JWTs with the claims the login service's samples
carry, signed with HMAC-SHA256 under a key of this sandbox alone. A token is checked by its
signature and ``exp``; revoking every token swaps the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from kit.sandbox.config import SandboxConfig

SCOPE = "profile email"  # what the login service grants a client-credentials token
REALM_PATH = "/auth/realms/business"  # the login service's realm, named in its token URLs
_HEADER = {"alg": "HS256", "typ": "JWT"}
# Verified tokens remembered with their expiry: checking a signature costs tens of microseconds,
# a dict lookup almost nothing, and the benchmark sends tens of thousands of requests per token.
_VERIFIED_MAX = 1024


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(value: dict[str, Any]) -> str:
    return _b64encode(json.dumps(value, separators=(",", ":")).encode())


class TokenStore:
    """Issues tokens and says whether one still works at the sandbox clock's ``now``."""

    def __init__(self, *, config: SandboxConfig, clock: Callable[[], float]) -> None:
        self._config = config
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._header = _segment(_HEADER)
        self._verified: dict[str, int] = {}  # token -> exp, only ever under the current key

    @property
    def expires_in(self) -> int:
        return self._config.token_expires_in

    def issue(self, *, issuer: str) -> str:
        """A token for the configured client, valid for ``expires_in`` seconds from now.

        ``iat`` and ``exp`` are whole seconds, as in the login service's tokens, with
        ``exp - iat == expires_in``.
        """
        config = self._config
        issued_at = int(self._clock())
        claims = {
            "exp": issued_at + config.token_expires_in,
            "iat": issued_at,
            "jti": str(uuid.UUID(bytes=secrets.token_bytes(16), version=4)),
            "iss": issuer,
            "aud": config.audience,
            "sub": config.client_id,
            "typ": "Bearer",
            "azp": config.client_id,
            "clientId": config.client_id,
            "scope": SCOPE,
            "realm_access": {"roles": ["b2b_user"]},
            # The account is implied by the token: no API call names one.
            "https://etrusted.com": {
                "accountRef": config.account_ref,
                "role": "owner",
                "permissions": {"urn": "urn:etrusted:*"},
            },
        }
        signed = f"{self._header}.{_segment(claims)}"
        return f"{signed}.{self._sign(signed)}"

    def valid(self, token: str) -> bool:
        """Signed by this sandbox under its current key, and ``now`` is before ``exp``."""
        expiry = self._verified.get(token)
        if expiry is None:
            expiry = self._verify(token)
            if expiry is None:
                return False
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = expiry
        return self._clock() < expiry

    def _verify(self, token: str) -> int | None:
        """The ``exp`` of a token this sandbox signed under its current key, else None."""
        signed, _, signature = token.rpartition(".")
        if signed.count(".") != 1 or not hmac.compare_digest(
            signature.encode(), self._sign(signed).encode()
        ):
            return None
        try:
            claims = json.loads(_b64decode(signed.partition(".")[2]))
        except (ValueError, binascii.Error):
            return None  # unreachable for a signed token, but a parse must never raise
        expiry = claims.get("exp") if isinstance(claims, dict) else None
        return expiry if isinstance(expiry, int) else None

    def expire_all(self) -> None:
        """Every token issued so far stops working: a new key signs from now on."""
        self._key = secrets.token_bytes(32)
        self._verified.clear()

    def _sign(self, signed: str) -> str:
        return _b64encode(hmac.digest(self._key, signed.encode(), hashlib.sha256))


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
