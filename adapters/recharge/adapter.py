"""The Recharge adapter: verify, identify and parse one webhook delivery.

Verification (:mod:`adapters.recharge.signing`): the timestamped header when the delivery has
one and the source allows it, else the legacy digest. A timestamped signature signed longer than
``tolerance`` before the intake received the delivery, or too far after, is refused in
:meth:`RechargeAdapter.parse` (:func:`kit.adapters.check_signed_at`, against ``received_at``, as
Stripe's is: the adapter has no clock), so a captured delivery cannot be replayed later.
Recharge sends no delivery id, so a delivery is known by the hash of its topic and raw body (a
retry repeats both), and the charge it reports is the platform event
(``charge/paid:{charge id}``: a charge is paid once).

``charge/paid`` (legacy name ``charge/success``) is read: a ``recurring`` charge is a
renewal, a ``checkout`` charge the subscription's first purchase (``renewal`` 0, which only an
``on = "subscription_created"`` trigger fires on). ``charge/refunded`` is a refund of that
charge on the same stream. Every other topic and charge type is skipped with its reason.
Recharge does not number renewals: the journal counts the earlier charges of the same
subscription (:func:`adapters.recharge._charge.subscription_id`). The renewal is
named by the Shopify order the charge created (:mod:`kit.renewals`), so the shop's own order
webhooks land on the same invite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from adapters.recharge._charge import order_facts, shopify_order_id, subscription_id, when
from adapters.recharge.config import RechargeConfig, SignatureScheme
from adapters.recharge.signing import (
    TIMESTAMPED_NAME,
    legacy_matches,
    parse_timestamped,
)
from kit.adapters import (
    AdapterPlugin,
    DeliveryIdentity,
    Headers,
    ParseResult,
    check_signed_at,
    check_signed_header,
)
from kit.domain import OrderRefunded, Refund, Skip, SkipReason, SubscriptionRenewed
from kit.errors import PayloadError, VerificationError
from kit.payload import Node, json_object
from kit.renewals import SHOPIFY

PLATFORM = "recharge"
PAID = "charge/paid"
REFUNDED = "charge/refunded"
FULLY_REFUNDED = "refunded"  # a charge's status once all of it went back
TOPIC_ALIASES = {"charge/success": PAID}  # Recharge's older name of the same topic
RECURRING = "recurring"  # a renewal
CHECKOUT = "checkout"  # the charge that started the subscription

LEGACY_HEADER = "x-recharge-hmac-sha256"
TIMESTAMPED_HEADER = "x-recharge-webhook-signature"
TOPIC_HEADER = "x-recharge-topic"


@attrs.frozen(kw_only=True)
class RechargeAdapter:
    """One configured Recharge store (see :class:`kit.adapters.PushAdapter`)."""

    source: str
    config: RechargeConfig

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def account(self) -> str:
        return self.config.shop_domain

    def verify(self, headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
        if not raw_body:
            raise VerificationError("empty_body", "the delivery has no body to verify")
        scheme = self.config.signature
        stamped = self._timestamped(headers)
        legacy = headers.get(LEGACY_HEADER)
        if stamped is not None:
            check_signed_header(stamped, TIMESTAMPED_NAME, raw_body, secrets)
        elif legacy is not None and scheme is not SignatureScheme.TIMESTAMPED:
            if not legacy_matches(raw_body, legacy, secrets):
                raise VerificationError(
                    "bad_signature",
                    f"X-Recharge-Hmac-Sha256 matches none of the {len(secrets)} configured secrets",
                )
        else:
            wanted = {
                SignatureScheme.AUTO: "X-Recharge-Webhook-Signature or X-Recharge-Hmac-Sha256",
                SignatureScheme.TIMESTAMPED: "X-Recharge-Webhook-Signature",
                SignatureScheme.LEGACY: "X-Recharge-Hmac-Sha256",
            }[scheme]
            raise VerificationError("missing_signature", f"no {wanted} header")

    def _timestamped(self, headers: Headers) -> str | None:
        """The timestamped header when it is the one verified (the source does not read only
        the legacy digest)."""
        if self.config.signature is SignatureScheme.LEGACY:
            return None
        return headers.get(TIMESTAMPED_HEADER)

    def identify(self, headers: Headers, raw_body: bytes) -> DeliveryIdentity:
        """The hash of topic and body (no delivery id is sent); the charge as the event."""
        body = _lenient_body(raw_body)
        topic = self._topic(headers, body) or ""
        digest = hashlib.sha256(topic.encode("utf-8") + b"\n" + raw_body).hexdigest()
        charge_id = _charge_id(body)
        # A charge is paid once; it may be refunded in parts, each its own event.
        event_id = f"{topic}:{charge_id}" if topic == PAID and charge_id else None
        return DeliveryIdentity(f"sha256:{digest}", event_id)

    def parse(self, headers: Headers, raw_body: bytes, *, received_at: datetime) -> ParseResult:
        stamped = self._timestamped(headers)
        if stamped is not None:
            check_signed_at(
                parse_timestamped(stamped).timestamp,
                now=received_at.timestamp(),
                max_age=self.config.tolerance,
            )
        body = _json_object(raw_body)
        topic = self._topic(headers, body)
        if topic is None:
            return Skip(SkipReason.UNSUPPORTED_TOPIC, "no X-Recharge-Topic and no topic configured")
        if topic not in (PAID, REFUNDED):
            return Skip(SkipReason.UNSUPPORTED_TOPIC, f"topic {topic!r}")
        charge = body.node("charge")
        if charge is None:
            raise PayloadError(f"a {topic} body must have a charge object")
        kind = (charge.text("type") or "").lower()
        if kind not in (RECURRING, CHECKOUT):
            return Skip(SkipReason.NOT_RENEWAL, f"charge type {kind or None!r}")
        order_id = shopify_order_id(charge)
        if order_id is not None:
            platform, stream = SHOPIFY, order_id
        else:  # no Shopify order (yet): the charge is the stream
            platform, stream = PLATFORM, f"charge:{charge.required_ident('id')}"
        identity = self.identify(headers, raw_body)
        envelope: dict[str, Any] = {
            "source": self.source,
            "platform": platform,
            "account": self.config.shop_domain,
            "stream": stream,
            "delivery_id": identity.delivery_id,
            "event_id": identity.event_id,
            "topic": topic,
        }
        if topic == REFUNDED:
            return [self._refund(charge, envelope, received_at)]
        return [
            SubscriptionRenewed(
                **envelope,
                occurred_at=when(charge, "processed_at", self.config) or received_at,
                order=order_facts(charge, self.config),
                order_stream=order_id,
                renewal=0 if kind == CHECKOUT else None,
                subscription=subscription_id(charge),
            )
        ]

    def _refund(
        self, charge: Node, envelope: dict[str, Any], received_at: datetime
    ) -> OrderRefunded:
        """A refund of the charge, on the renewal's stream, so it withdraws a waiting invite.

        Only ``status = "refunded"`` is a full refund; a partial one names no lines and leaves
        the invite alone, as a partial order refund does. Each refunded total is a refund of
        its own, so a partial refund followed by the rest counts twice, not once.
        """
        status = (charge.text("status") or "").lower()
        refunded = charge.decimal("total_refunds")
        refund_id = (
            f"charge:{charge.required_ident('id')}:{refunded if refunded is not None else status}"
        )
        return OrderRefunded(
            **envelope,
            occurred_at=when(charge, "updated_at", self.config) or received_at,
            refund=Refund(refund_id=refund_id),
            full=status == FULLY_REFUNDED,
        )

    def _topic(self, headers: Headers, body: Node | None) -> str | None:
        """The header, else the source's configured topic, else the charge's status."""
        sent = (headers.get(TOPIC_HEADER) or "").strip().lower() or self.config.topic
        if sent is None and body is not None:
            charge = body.raw("charge")
            status = str(charge.get("status", "")).lower() if isinstance(charge, dict) else ""
            sent = _BY_STATUS.get(status)
        return TOPIC_ALIASES.get(sent, sent) if sent is not None else None


_BY_STATUS = {"success": PAID, "refunded": REFUNDED, "partially_refunded": REFUNDED}


def _json_object(raw_body: bytes) -> Node:
    return Node(json_object(raw_body), "")


def _lenient_body(raw_body: bytes) -> Node | None:
    """The body for identification, which must not fail: ``None`` when it is not an object."""
    try:
        return _json_object(raw_body)
    except PayloadError:
        return None


def _charge_id(body: Node | None) -> str | None:
    charge = body.raw("charge") if body is not None else None
    value = charge.get("id") if isinstance(charge, dict) else None
    return str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None


@attrs.frozen
class RechargePlugin:
    """The ``recharge`` entry point (see :class:`kit.adapters.AdapterPlugin`)."""

    name: str = PLATFORM
    config_type: type[RechargeConfig] = RechargeConfig

    def create(self, *, source: str, config: RechargeConfig) -> RechargeAdapter:
        return RechargeAdapter(source=source, config=config)


plugin: AdapterPlugin[RechargeConfig] = RechargePlugin()


__all__ = ["PAID", "PLATFORM", "RechargeAdapter", "RechargePlugin", "plugin"]
