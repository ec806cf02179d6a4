"""Stripe's webhook signature: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``.

The signed message is ``"{t}." + raw body``, its HMAC-SHA256 under the endpoint's signing
secret is hex in ``v1``. During a secret roll Stripe sends one ``v1`` per active secret, and the
kit may hold several secrets too: any pair that matches is enough. Recharge's timestamped
header is the same scheme, so both check it with :func:`kit.adapters.check_signed_header`.
``v0`` (test mode's old scheme) and unknown keys are ignored.

The timestamp is checked against the moment the intake took the delivery in, in both
directions (Stripe's own libraries only refuse old ones): a signed delivery replayed later is
refused, and so is one from a sender whose clock runs ahead.
"""

from __future__ import annotations

from collections.abc import Sequence

from kit.adapters import SignedHeader, check_signed_header, parse_signed_header, sign_header
from kit.errors import VerificationError

HEADER = "stripe-signature"
_NAME = "Stripe-Signature"


def parse_header(value: str | None) -> SignedHeader:
    """The header's ``t`` and ``v1`` entries; refused when either is missing or malformed."""
    if value is None or not value.strip():
        raise VerificationError("missing_signature", f"no {_NAME} header")
    return parse_signed_header(value, _NAME)


def check_signature(headers_value: str | None, raw_body: bytes, secrets: Sequence[str]) -> None:
    """Refuse a delivery whose ``Stripe-Signature`` is missing or matches none of ``secrets``."""
    if headers_value is None or not headers_value.strip():
        raise VerificationError("missing_signature", f"no {_NAME} header")
    check_signed_header(headers_value, _NAME, raw_body, secrets)


def sign(raw_body: bytes, secret: str, timestamp: int) -> str:
    """A ``Stripe-Signature`` value for ``raw_body``, as Stripe would send it (for tests and
    the kit's own samples; the kit never signs what it receives)."""
    return sign_header(raw_body, secret, timestamp)


__all__ = ["HEADER", "check_signature", "parse_header", "sign"]
