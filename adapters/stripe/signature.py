"""Stripe's webhook signature: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``.

The signed message is ``"{t}." + raw body``, its HMAC-SHA256 under the endpoint's signing
secret is hex in ``v1``. During a secret roll Stripe sends one ``v1`` per active secret, and the
kit may hold several secrets too: any pair that matches is enough. Every pair is compared in
constant time over bytes, and all of them are tried, so timing tells nothing about which part
of a forged signature was right. ``v0`` (test mode's old scheme) and unknown keys are ignored.

The timestamp is checked against the moment the intake took the delivery in, in both
directions (Stripe's own libraries only refuse old ones): a signed delivery replayed later is
refused, and so is one from a sender whose clock runs ahead.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import attrs

from kit.errors import VerificationError

HEADER = "stripe-signature"


@attrs.frozen
class StripeSignature:
    """The parsed header: the signed timestamp and every ``v1`` digest (as bytes)."""

    timestamp: int
    digests: tuple[bytes, ...]


def parse_header(value: str | None) -> StripeSignature:
    """The header's ``t`` and ``v1`` entries; refused when either is missing or malformed."""
    if value is None or not value.strip():
        raise VerificationError("missing_signature", "no Stripe-Signature header")
    timestamp: int | None = None
    digests: list[bytes] = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        item = item.strip()
        if key == "t":
            if not item.isascii() or not item.isdigit() or timestamp is not None:
                raise VerificationError("bad_signature", "Stripe-Signature has a malformed t=")
            timestamp = int(item)
        elif key == "v1":
            try:
                digests.append(bytes.fromhex(item))
            except ValueError:
                continue  # not hex: it cannot match, and another v1 still may
    if timestamp is None:
        raise VerificationError("bad_signature", "Stripe-Signature has no t= timestamp")
    if not digests:
        raise VerificationError("bad_signature", "Stripe-Signature has no v1= signature")
    return StripeSignature(timestamp, tuple(digests))


def signs(signature: StripeSignature, raw_body: bytes, secrets: Sequence[str]) -> bool:
    """Whether one ``v1`` is the HMAC of ``"{t}.{raw body}"`` under one of ``secrets``."""
    message = f"{signature.timestamp}.".encode("ascii") + raw_body
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
        for sent in signature.digests:
            matched |= hmac.compare_digest(expected, sent)
    return matched


def check_signature(headers_value: str | None, raw_body: bytes, secrets: Sequence[str]) -> None:
    """Refuse a delivery whose ``Stripe-Signature`` matches none of ``secrets``."""
    signature = parse_header(headers_value)
    if not signs(signature, raw_body, secrets):
        raise VerificationError(
            "bad_signature",
            f"Stripe-Signature matches none of the {len(secrets)} configured secrets",
        )


def sign(raw_body: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` value for ``raw_body``, as Stripe would send it (for tests and
    the kit's own samples; the kit never signs what it receives)."""
    message = f"{timestamp}.".encode("ascii") + raw_body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


__all__ = [
    "HEADER",
    "StripeSignature",
    "check_signature",
    "parse_header",
    "sign",
    "signs",
]
