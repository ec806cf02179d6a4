"""Staybook's signature: ``X-Staybook-Signature: sha256=<hex HMAC-SHA256 of the raw body>``.

The digest is taken over the exact bytes received, never over re-encoded JSON. Both digests
are compared as bytes in constant time, and every configured secret is tried (two are valid
while a secret is rotated), so the timing says nothing about which part was right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from kit.adapters import Headers
from kit.errors import VerificationError

SIGNATURE_HEADER = "x-staybook-signature"
PREFIX = "sha256="


def verify_signature(headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
    """Raise VerificationError unless the signature matches one of ``secrets``."""
    value = headers.get(SIGNATURE_HEADER)
    if value is None:
        raise VerificationError("missing_signature", "no X-Staybook-Signature header")
    try:
        if not value.startswith(PREFIX):
            raise ValueError(value)
        sent = bytes.fromhex(value.removeprefix(PREFIX))
    except ValueError:
        raise VerificationError("bad_signature", "not sha256=<hex>") from None
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, sent)
    if not matched:
        raise VerificationError(
            "bad_signature", f"X-Staybook-Signature matches none of {len(secrets)} secrets"
        )
