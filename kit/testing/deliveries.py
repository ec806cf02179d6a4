"""Signed deliveries for adapter tests: the headers and raw body a platform would send.

A platform signs the exact bytes it sends, so tests must too: :func:`signed_delivery` encodes
the body once and hands those bytes to a *signer*, which answers with the headers that carry
the signature. The signer is the only platform-specific part, so one builder serves every
scheme: a digest in one header (:func:`header_signer`), or a timestamp and a digest over
``"{t}.{body}"`` in one header, as a signer of the test's own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import attrs

Signer: TypeAlias = Callable[[bytes], Mapping[str, str]]
"""Raw body in, the headers that sign it out."""

Digest: TypeAlias = Callable[[bytes], str]
"""Raw body in, its signature as the platform writes it out."""


def _headers(headers: Mapping[str, str]) -> dict[str, str]:
    return dict(headers)


@attrs.frozen
class SignedDelivery:
    """One delivery as it leaves the platform: ``headers`` and the exact ``raw_body``.

    ``headers`` keep the platform's spelling; the intake lower-cases them, as it does for a
    real request. Post it with ``session.post(url, data=d.raw_body, headers=d.headers)`` or
    hand it to :meth:`kit.journal.Intake.ingest_raw` as ``(d.headers, d.raw_body)``.
    """

    headers: Mapping[str, str] = attrs.field(converter=_headers, hash=False)
    raw_body: bytes

    def with_headers(self, headers: Mapping[str, str]) -> SignedDelivery:
        """The same body with headers added or replaced (a header set to ``""`` is dropped)."""
        merged = {**self.headers, **headers}
        return SignedDelivery({k: v for k, v in merged.items() if v != ""}, self.raw_body)

    def tampered(self) -> SignedDelivery:
        """The headers unchanged and a blank added to the body: a signature must now fail.

        A trailing blank keeps a JSON body valid, so an adapter that skips the check is caught
        taking the delivery in, not failing later on a broken body.
        """
        return SignedDelivery(self.headers, self.raw_body + b" ")


def signed_delivery(
    body: bytes | str | Mapping[str, Any] | list[Any],
    *,
    signer: Signer,
    headers: Mapping[str, str] | None = None,
) -> SignedDelivery:
    """A delivery of ``body`` (JSON-encoded unless bytes or text) with ``headers`` and the
    signer's headers over the exact bytes."""
    if isinstance(body, bytes):
        raw = body
    elif isinstance(body, str):
        raw = body.encode("utf-8")
    else:
        raw = json.dumps(body).encode("utf-8")
    return SignedDelivery({**(headers or {}), **signer(raw)}, raw)


def header_signer(name: str, digest: Digest, *, prefix: str = "") -> Signer:
    """A signer that writes ``prefix + digest(raw_body)`` into header ``name``."""

    def sign(raw_body: bytes) -> Mapping[str, str]:
        return {name: prefix + digest(raw_body)}

    return sign


def hmac_sha256_hex(secret: str) -> Digest:
    """The hex HMAC-SHA256 of the body under ``secret`` (GitHub-style schemes)."""
    return lambda raw: hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).hexdigest()


def hmac_sha256_base64(secret: str) -> Digest:
    """The base64 HMAC-SHA256 of the body under ``secret`` (Shopify, WooCommerce)."""

    def digest(raw: bytes) -> str:
        mac = hmac.new(secret.encode("utf-8"), raw, hashlib.sha256).digest()
        return base64.b64encode(mac).decode("ascii")

    return digest


__all__ = [
    "Digest",
    "SignedDelivery",
    "Signer",
    "header_signer",
    "hmac_sha256_base64",
    "hmac_sha256_hex",
    "signed_delivery",
]
