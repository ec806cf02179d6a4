"""Recharge's two signature schemes, both directions (platforms.md §6.1).

* **legacy** ``X-Recharge-Hmac-Sha256``: the hex SHA-256 (a plain hash, not an HMAC) of the
  API client secret followed by the raw body, with no separator.
* **timestamped** ``X-Recharge-Webhook-Signature: t=<unix seconds>,v1=<hex>``: the hex
  HMAC-SHA256 of ``"{t}." + raw body`` under the client secret, Stripe's scheme, read by the
  kit's one check of it (:func:`kit.adapters.check_signed_header`): entries by key, so a
  later ``v2`` is ignored rather than misread, and several ``v1`` may be sent.

The sending side (:func:`legacy_signature`, :func:`timestamped_signature`) is what tests and
samples sign with; the receiving side compares digests as bytes with
:func:`hmac.compare_digest` and tries every secret and every ``v1``, so timing does not tell
which part of a forged signature was right.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from kit.adapters import SignedHeader, parse_signed_header, sign_header

TIMESTAMPED_NAME = "X-Recharge-Webhook-Signature"


def legacy_signature(raw_body: bytes, secret: str) -> str:
    """``X-Recharge-Hmac-Sha256`` for ``raw_body``."""
    return hashlib.sha256(secret.encode("utf-8") + raw_body).hexdigest()


def timestamped_signature(raw_body: bytes, secret: str, timestamp: int) -> str:
    """``X-Recharge-Webhook-Signature`` for ``raw_body`` sent at ``timestamp``."""
    return sign_header(raw_body, secret, timestamp)


def _hex(value: str) -> bytes | None:
    try:
        return bytes.fromhex(value.strip())
    except ValueError:
        return None


def legacy_matches(raw_body: bytes, signature: str, secrets: Sequence[str]) -> bool:
    """Whether ``signature`` is the legacy digest of ``raw_body`` under one of ``secrets``."""
    sent = _hex(signature)
    matched = False
    for secret in secrets:
        expected = hashlib.sha256(secret.encode("utf-8") + raw_body).digest()
        matched |= sent is not None and hmac.compare_digest(expected, sent)
    return matched


def parse_timestamped(header: str) -> SignedHeader:
    """The header's ``t`` and ``v1`` entries; refused (``bad_signature``) when it has no usable
    ``t`` or ``v1``."""
    return parse_signed_header(header, TIMESTAMPED_NAME)


__all__ = [
    "TIMESTAMPED_NAME",
    "legacy_matches",
    "legacy_signature",
    "parse_timestamped",
    "timestamped_signature",
]
