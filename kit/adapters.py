"""The adapter contract: what the kit asks of a platform adapter, and how it finds one.

An adapter knows one platform and nothing of eTrusted. A *push* adapter is handed each delivery
(headers and the raw body bytes) by the kit's intake and answers three questions, all without
I/O, so the intake can run them inside its request and tests need no server:

1. :meth:`PushAdapter.verify`: is this really from the platform, for this source's account?
   Raises :class:`~kit.errors.VerificationError` (the intake answers 401).
2. :meth:`PushAdapter.identify`: which transport ids make a redelivery recognisable? The journal
   is unique on them, so a retried webhook is recorded once.
3. :meth:`PushAdapter.parse`: what happened? Domain events, or a :class:`~kit.domain.Skip`
   with its reason for a delivery ignored on purpose. Raises :class:`~kit.errors.PayloadError`
   (the intake answers 400) for a verified body of the wrong shape.

These are :class:`typing.Protocol` classes: an adapter needs no base class from the kit, only the
methods. Adapters are found by name through the ``etrusted_kit.adapters`` entry-point group; the
built-in ones register the same way a third-party package does (``pyproject.toml``)::

    [project.entry-points."etrusted_kit.adapters"]
    myplatform = "my_package.adapter:plugin"

The entry point names an :class:`AdapterPlugin`: the adapter's config class (the kit's TOML loader
structures the source's adapter keys into it, so every error names its key path the same way)
and a factory that binds one configured source. Secrets are never part of that config object:
the intake passes them to :meth:`PushAdapter.verify`, so an adapter cannot log what it never
holds.

A plugin may also offer an order feed (``create_feed``, :class:`kit.feeds.FeedPlugin`): the pull
side, read by polling and backfill (:mod:`kit.feeds.contract`).

A plugin whose adapter takes no webhooks (the file importer) says ``takes_webhooks = False``: its
sources then need no secrets (:func:`takes_webhooks`).

Header names reach an adapter in lower case (:func:`normalise_headers`); the intake does this
once for every framework it serves.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

import attrs

from kit.domain import DomainEvent, Skip
from kit.errors import ConfigError, VerificationError

ENTRY_POINT_GROUP = "etrusted_kit.adapters"
CLOCK_SKEW = timedelta(minutes=5)
"""How far ahead of the receiving clock a signed timestamp may be: two machines' clocks drift,
but a signature from further in the future was not made by a platform whose clock is sane."""

Headers: TypeAlias = Mapping[str, str]
"""Request headers with lower-case names, as every adapter receives them."""

ParseResult: TypeAlias = Sequence[DomainEvent] | Skip
"""What a delivery became: domain events (possibly none) or a deliberate skip."""

C_contra = TypeVar("C_contra", contravariant=True)


@attrs.frozen
class DeliveryIdentity:
    """The platform's transport ids for one delivery.

    ``delivery_id`` is the same on every retry of one delivery (Shopify ``X-Shopify-Webhook-Id``);
    ``event_id`` is the same on every delivery of one platform event, such as one order change
    sent through two webhook subscriptions (``X-Shopify-Event-Id``). Either one seen before
    makes the delivery a duplicate.
    """

    delivery_id: str
    event_id: str | None = None


@runtime_checkable
class PushAdapter(Protocol):
    """One configured source of a push platform (webhooks); built by :class:`AdapterPlugin`."""

    @property
    def platform(self) -> str:
        """The adapter's name, which is also its entry-point name and the first part of keys."""
        ...

    @property
    def account(self) -> str:
        """The platform tenant this source serves (a shop domain, an account id)."""
        ...

    def verify(self, headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
        """Check the signature over the exact raw bytes against each secret, and the sender.

        Raises :class:`~kit.errors.VerificationError`; returns nothing when the delivery is
        authentic. Several secrets are valid at once during a rotation.
        """
        ...

    def identify(self, headers: Headers, raw_body: bytes) -> DeliveryIdentity:
        """The delivery's transport ids (only called after :meth:`verify` passed)."""
        ...

    def parse(self, headers: Headers, raw_body: bytes, *, received_at: datetime) -> ParseResult:
        """Domain events, or a skip with its reason (only called after :meth:`verify`).

        ``received_at`` (UTC) is when the intake took the delivery in: the adapter's stand-in
        for "when it happened" where the platform says nothing, so parsing needs no clock.
        """
        ...


@runtime_checkable
class AdapterPlugin(Protocol[C_contra]):
    """What an ``etrusted_kit.adapters`` entry point names."""

    @property
    def name(self) -> str: ...

    @property
    def config_type(self) -> type[Any]:
        """The frozen attrs class of the adapter's own keys in a ``[[sources]]`` table."""
        ...

    def create(self, *, source: str, config: C_contra) -> PushAdapter:
        """Bind one configured source; no I/O (the intake builds adapters at start-up)."""
        ...


class _Normalised(dict[str, str]):
    """Headers :func:`normalise_headers` made, so that normalising them again is free: the
    HTTP intake needs them lower-cased before it hands them to :meth:`Intake.ingest_raw`,
    which takes headers from any caller."""

    __slots__ = ()


def normalise_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """Lower-case header names; of a repeated header the first value is kept.

    Frameworks hand headers over as case-insensitive multidicts, plain dicts or pairs; adapters
    then look names up one way. A repeated signature header gains an attacker nothing: the value
    kept must still verify.
    """
    if type(headers) is _Normalised:
        return headers
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out = _Normalised()
    for name, value in pairs:
        out.setdefault(name.lower(), value)
    return out


def hmac_sha256_base64_matches(raw_body: bytes, signature: str, secrets: Sequence[str]) -> bool:
    """Whether ``signature`` is the base64 HMAC-SHA256 of ``raw_body`` under one of ``secrets``.

    The digests are compared as bytes with :func:`hmac.compare_digest`, and every secret is
    tried, so timing does not tell which part of a forged signature was right. A signature that
    is not base64 of 32 bytes simply does not match.
    """
    try:
        sent = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode("utf-8"), raw_body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, sent)
    return matched


@attrs.frozen
class SignedHeader:
    """A ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` signature header, the scheme Stripe's
    ``Stripe-Signature`` and Recharge's ``X-Recharge-Webhook-Signature`` share: the signed time
    and every ``v1`` digest (several during a secret roll), as bytes."""

    timestamp: int
    digests: tuple[bytes, ...]


def parse_signed_header(value: str, header: str) -> SignedHeader:
    """The header's ``t`` and ``v1`` entries, read by key: other keys (``v0``, a later ``v2``)
    are ignored, and a ``v1`` that is not hex is skipped (it cannot match; another may).

    Raises :class:`~kit.errors.VerificationError` (``bad_signature``, naming ``header``) when
    ``t`` is missing, given twice or not ASCII digits, or no ``v1`` is hex: whatever an unsigned
    sender writes here is refused, never a crash.
    """
    timestamp: int | None = None
    digests: list[bytes] = []
    for part in value.split(","):
        key, _, item = part.strip().partition("=")
        item = item.strip()
        if key == "t":
            if not item.isascii() or not item.isdigit() or timestamp is not None:
                raise VerificationError("bad_signature", f"{header} has a malformed t=")
            timestamp = int(item)
        elif key == "v1":
            try:
                digests.append(bytes.fromhex(item))
            except ValueError:
                continue
    if timestamp is None:
        raise VerificationError("bad_signature", f"{header} has no t= timestamp")
    if not digests:
        raise VerificationError("bad_signature", f"{header} has no v1= signature")
    return SignedHeader(timestamp, tuple(digests))


def _signed_header_digest(raw_body: bytes, secret: str, timestamp: int) -> bytes:
    message = f"{timestamp}.".encode("ascii") + raw_body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def signed_header_matches(signed: SignedHeader, raw_body: bytes, secrets: Sequence[str]) -> bool:
    """Whether one ``v1`` is the HMAC-SHA256 of ``"{t}." + raw_body`` under one of ``secrets``.

    Every pair is compared in constant time over bytes and all of them are tried, so timing
    does not tell which part of a forged signature was right.
    """
    matched = False
    for secret in secrets:
        expected = _signed_header_digest(raw_body, secret, signed.timestamp)
        for sent in signed.digests:
            matched |= hmac.compare_digest(expected, sent)
    return matched


def check_signed_header(
    value: str, header: str, raw_body: bytes, secrets: Sequence[str]
) -> SignedHeader:
    """Refuse (``bad_signature``) a ``t=,v1=`` header named ``header`` that is malformed or
    signs ``raw_body`` under none of ``secrets``; the parsed header, for its signed time."""
    signed = parse_signed_header(value, header)
    if not signed_header_matches(signed, raw_body, secrets):
        raise VerificationError(
            "bad_signature", f"{header} matches none of the {len(secrets)} configured secrets"
        )
    return signed


def sign_header(raw_body: bytes, secret: str, timestamp: int) -> str:
    """A ``t=...,v1=...`` value for ``raw_body``, as the platform would send it (for tests and
    samples; the kit never signs what it receives)."""
    return f"t={timestamp},v1={_signed_header_digest(raw_body, secret, timestamp).hex()}"


def check_signed_at(signed_at: float, *, now: float, max_age: timedelta) -> None:
    """Refuse a signature made more than ``max_age`` before ``now`` (a captured delivery replayed
    later: ``stale_timestamp``) or more than :data:`CLOCK_SKEW` after it (``future_timestamp``).

    Every adapter whose platform signs a timestamp judges it here, so the limits, the reasons and
    what the log says are the same whichever platform sent it; ``max_age`` is the source's.
    """
    age = now - signed_at
    if age > max_age.total_seconds():
        raise VerificationError(
            "stale_timestamp",
            f"signed {age:.0f} s before it arrived (tolerance {max_age.total_seconds():.0f} s)",
        )
    if -age > CLOCK_SKEW.total_seconds():
        raise VerificationError(
            "future_timestamp",
            f"signed {-age:.0f} s after it arrived (allowed clock skew "
            f"{CLOCK_SKEW.total_seconds():.0f} s)",
        )


def check_url_template(key: str, value: str | None, placeholders: Sequence[str]) -> None:
    """Refuse a product URL template that is not http(s) or uses another placeholder.

    Webhooks rarely carry a product's page; an adapter's config may build one from the line's
    ids. ``key`` names the config key in the :class:`~kit.errors.ConfigError`.
    """
    if value is None:
        return
    if not value.startswith(("https://", "http://")):
        raise ConfigError(f"{key} must be an http(s) URL template, got {value!r}")
    try:
        value.format(**dict.fromkeys(placeholders, "x"))
    except (KeyError, IndexError, ValueError) as exc:
        allowed = ", ".join(f"{{{name}}}" for name in placeholders)
        raise ConfigError(f"{key} may use only {allowed}: {exc}") from exc


def takes_webhooks(plugin: object | None) -> bool:
    """Whether the adapter verifies signed deliveries, so its sources need secrets: every push
    adapter does (and one that did not load is taken to be one); a plugin says otherwise with
    ``takes_webhooks = False`` (the file importer)."""
    return bool(getattr(plugin, "takes_webhooks", True))


def _adapter_entry_points() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(entry.name, []).append(entry)
    return found


def installed_adapters() -> tuple[str, ...]:
    """The names of every installed adapter, sorted."""
    return tuple(sorted(_adapter_entry_points()))


def load_plugin(name: str) -> object:
    """The object the installed adapter entry point ``name`` names, not yet checked against a
    contract (:func:`load_adapter` checks the push side, :func:`kit.feeds.load_feed` the feed).

    Raises :class:`~kit.errors.ConfigError` for an unknown name (listing the installed ones),
    for a name two packages claim, for an entry point that does not load, and for a plugin
    without ``name`` and ``config_type`` or whose ``name`` is not its entry point's.
    """
    found = _adapter_entry_points()
    candidates = found.get(name, [])
    if not candidates:
        installed = ", ".join(sorted(found)) or "none"
        raise ConfigError(f"unknown adapter {name!r}; installed adapters: {installed}")
    if len(candidates) > 1:
        values = ", ".join(sorted(entry.value for entry in candidates))
        raise ConfigError(f"adapter {name!r} is registered more than once: {values}")
    entry = candidates[0]
    try:
        plugin = entry.load()
    except Exception as exc:  # an import error of any kind in a third-party package
        raise ConfigError(f"adapter {name!r} ({entry.value}) failed to load: {exc}") from exc
    if not hasattr(plugin, "name") or not hasattr(plugin, "config_type"):
        raise ConfigError(
            f"adapter {name!r} ({entry.value}) is not an adapter plugin: it needs name, "
            "config_type and create() or create_feed()"
        )
    if plugin.name != name:
        raise ConfigError(
            f"adapter entry point {name!r} ({entry.value}) calls itself {plugin.name!r}"
        )
    return plugin


def load_adapter(name: str) -> AdapterPlugin[Any]:
    """The installed adapter called ``name``, with its push side.

    Raises :class:`~kit.errors.ConfigError` as :func:`load_plugin` does, and for a plugin that
    does not provide the push contract.
    """
    plugin = load_plugin(name)
    if not isinstance(plugin, AdapterPlugin):
        raise ConfigError(
            f"adapter {name!r} is not an adapter plugin: it needs name, config_type and create()"
        )
    return plugin


__all__ = [
    "CLOCK_SKEW",
    "ENTRY_POINT_GROUP",
    "AdapterPlugin",
    "DeliveryIdentity",
    "Headers",
    "ParseResult",
    "PushAdapter",
    "SignedHeader",
    "check_signed_at",
    "check_signed_header",
    "check_url_template",
    "hmac_sha256_base64_matches",
    "installed_adapters",
    "load_adapter",
    "load_plugin",
    "normalise_headers",
    "parse_signed_header",
    "sign_header",
    "signed_header_matches",
    "takes_webhooks",
]
