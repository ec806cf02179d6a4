"""Recharge's two signature schemes, both directions (platforms.md §6.1).

* **legacy** ``X-Recharge-Hmac-Sha256``: the hex SHA-256 (a plain hash, not an HMAC) of the
  API client secret followed by the raw body, with no separator.
* **timestamped** ``X-Recharge-Webhook-Signature: t=<unix seconds>,v1=<hex>``: the hex
  HMAC-SHA256 of ``"{t}." + raw body`` under the client secret; entries are read by key, so a
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

import attrs


def legacy_signature(raw_body: bytes, secret: str) -> str:
    """``X-Recharge-Hmac-Sha256`` for ``raw_body``."""
    return hashlib.sha256(secret.encode("utf-8") + raw_body).hexdigest()


def timestamped_signature(raw_body: bytes, secret: str, timestamp: int) -> str:
    """``X-Recharge-Webhook-Signature`` for ``raw_body`` sent at ``timestamp``."""
    return f"t={timestamp},v1={_timestamped_digest(raw_body, secret, timestamp).hex()}"


def _timestamped_digest(raw_body: bytes, secret: str, timestamp: int) -> bytes:
    message = str(timestamp).encode("ascii") + b"." + raw_body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


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


@attrs.frozen
class Timestamped:
    """A parsed ``X-Recharge-Webhook-Signature``: its time and its ``v1`` digests."""

    timestamp: int
    digests: tuple[bytes, ...]


def parse_timestamped(header: str) -> Timestamped | None:
    """The header's ``t`` and ``v1`` entries; ``None`` when it has no usable ``t`` or ``v1``."""
    timestamp: int | None = None
    digests: list[bytes] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit() and timestamp is None:
            timestamp = int(value)
        elif key == "v1":
            digest = _hex(value)
            if digest is not None:
                digests.append(digest)
    if timestamp is None or not digests:
        return None
    return Timestamped(timestamp, tuple(digests))


def timestamped_matches(raw_body: bytes, signed: Timestamped, secrets: Sequence[str]) -> bool:
    """Whether one of the header's ``v1`` digests is ``raw_body``'s under one of ``secrets``."""
    matched = False
    for secret in secrets:
        expected = _timestamped_digest(raw_body, secret, signed.timestamp)
        for sent in signed.digests:
            matched |= hmac.compare_digest(expected, sent)
    return matched


__all__ = [
    "Timestamped",
    "legacy_matches",
    "legacy_signature",
    "parse_timestamped",
    "timestamped_matches",
    "timestamped_signature",
]
