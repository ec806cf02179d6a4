"""The Stripe Billing adapter: verify, identify and parse one webhook delivery.

Only what a review invite needs is read: ``invoice.paid`` (the subscription's charges) and the
events that take a charge back (``charge.refunded``, ``credit_note.created``,
``charge.dispute.created``). Each paid subscription invoice is its own stream, keyed by the
invoice id, so a refund or dispute of that invoice lands where its invite waits: one that names
only the charge or payment intent (a dispute; a refund from API ``2025-03-31.basil`` on) links
to it through those ids, which the paid invoice recorded as the stream's ``aliases``; which of the
charges becomes an invite is the renewal policy's business (:mod:`kit.policy.renewals`):

* ``billing_reason = "subscription_cycle"``: a renewal (the journal counts which one);
* ``billing_reason = "subscription_create"``: the first purchase, renewal 0, which only an
  ``on = "subscription_created"`` trigger turns into an invite;
* any other reason (a manual invoice, a mid-period plan change, a usage threshold) and an
  invoice nobody paid anything for (a trial, a 100 % coupon) are skipped with their reason.

The signature is checked in :meth:`StripeAdapter.verify`; the signed timestamp in
:meth:`StripeAdapter.parse`, against the intake's ``received_at`` (the adapter has no clock),
before anything of the body is read. Either failure refuses the delivery with 401 and stores
nothing. Redeliveries of one event repeat its ``evt_`` id, which is the delivery id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import attrs

from adapters.stripe import signature
from adapters.stripe._invoice import order_facts, paid_at, payment_ids, subscription_id
from adapters.stripe._json import Obj
from adapters.stripe.config import StripeConfig
from kit.adapters import AdapterPlugin, DeliveryIdentity, Headers, ParseResult, check_signed_at
from kit.domain import (
    OrderRefunded,
    Refund,
    RefundedLine,
    Skip,
    SkipReason,
    SubscriptionRenewed,
)
from kit.errors import PayloadError
from kit.payload import decode, json_object

PLATFORM = "stripe"
RENEWAL = "subscription_cycle"
FIRST_PURCHASE = "subscription_create"


@attrs.frozen
class _Event:
    """A verified Stripe event: its envelope and ``data.object``."""

    event: Obj
    data: Obj
    identity: DeliveryIdentity
    topic: str
    created: datetime | None
    received_at: datetime


@attrs.frozen(kw_only=True)
class StripeAdapter:
    """One configured Stripe account (see :class:`kit.adapters.PushAdapter`)."""

    source: str
    config: StripeConfig

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def account(self) -> str:
        return self.config.account or self.source

    def verify(self, headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
        signature.check_signature(headers.get(signature.HEADER), raw_body, secrets)

    def identify(self, headers: Headers, raw_body: bytes) -> DeliveryIdentity:
        """The event's ``evt_`` id, which every redelivery repeats; the body's hash when a
        body has none, so a byte-identical replay is still recognised."""
        try:
            body = decode(raw_body)
        except (ValueError, RecursionError):
            body = None
        event_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(event_id, str) and event_id.strip():
            return DeliveryIdentity(event_id.strip())
        return DeliveryIdentity("sha256:" + hashlib.sha256(raw_body).hexdigest())

    def parse(self, headers: Headers, raw_body: bytes, *, received_at: datetime) -> ParseResult:
        check_signed_at(
            signature.parse_header(headers.get(signature.HEADER)).timestamp,
            now=received_at.timestamp(),
            max_age=self.config.tolerance,
        )
        event = Obj(json_object(raw_body))
        kind = event.text("object")
        if kind != "event":
            raise PayloadError(f"object must be 'event' (a snapshot event), got {kind!r}")
        topic = event.required_text("type")
        handler = _TOPICS.get(topic)
        if handler is None:
            return Skip(SkipReason.UNSUPPORTED_TOPIC, f"event type {topic!r}")
        data = event.node("data")
        obj = data.node("object") if data is not None else None
        if obj is None:
            raise PayloadError("data.object is required")
        delivered = _Event(
            event=event,
            data=obj,
            identity=self.identify(headers, raw_body),
            topic=topic,
            created=event.unix_time("created"),
            received_at=received_at,
        )
        return handler(self, delivered)

    # -- building events ------------------------------------------------------------------

    def _charge_envelope(
        self,
        delivered: _Event,
        invoice: str | None,
        charge_id: str,
        *payment_intents: str | None,
        when: datetime | None = None,
    ) -> dict[str, Any]:
        """The envelope of an event about one charge: on its invoice's stream when it names
        the invoice; else on the charge's own, linked by the charge and payment intent ids to
        the invoice stream that recorded them as aliases (see :func:`payment_ids`)."""
        if invoice is not None:
            return self._envelope(delivered, invoice, when)
        link = tuple(dict.fromkeys(i for i in (charge_id, *payment_intents) if i))
        return self._envelope(delivered, charge_id, when) | {"link": link}

    def _envelope(self, delivered: _Event, stream: str, *when: datetime | None) -> dict[str, Any]:
        occurred_at = next(
            (t for t in (*when, delivered.created) if t is not None), delivered.received_at
        )
        return {
            "source": self.source,
            "platform": PLATFORM,
            "account": self.account,
            "stream": stream,
            "occurred_at": occurred_at,
            "delivery_id": delivered.identity.delivery_id,
            "event_id": delivered.identity.event_id,
            "topic": delivered.topic,
        }

    def _invoice_paid(self, delivered: _Event) -> ParseResult:
        invoice = delivered.data
        reason = invoice.text("billing_reason")
        if reason not in (RENEWAL, FIRST_PURCHASE):
            return Skip(SkipReason.NOT_A_SUBSCRIPTION_CHARGE, f"billing_reason {reason!r}")
        subscription = subscription_id(invoice)
        if subscription is None:
            return Skip(SkipReason.NOT_A_SUBSCRIPTION_CHARGE, "the invoice names no subscription")
        if not invoice.integer("amount_paid"):
            return Skip(SkipReason.NOTHING_PAID, f"{reason}: amount_paid 0")
        facts = order_facts(
            invoice,
            self.config,
            livemode=delivered.event.flag("livemode"),
            updated_at=delivered.created,
        )
        envelope = self._envelope(delivered, invoice.required_text("id"), paid_at(invoice))
        return [
            SubscriptionRenewed(
                **envelope,
                order=facts,
                renewal=0 if reason == FIRST_PURCHASE else None,
                subscription=subscription,
                aliases=payment_ids(invoice),
            )
        ]

    def _charge_refunded(self, delivered: _Event) -> ParseResult:
        """A refund of the charge that paid an invoice; full when the charge says so."""
        charge = delivered.data
        charge_id = charge.required_text("id")
        refunded = charge.integer("amount_refunded") or 0
        full = charge.flag("refunded")
        envelope = self._charge_envelope(
            delivered, charge.ident("invoice"), charge_id, charge.ident("payment_intent")
        )
        refund = Refund(refund_id=charge_id if full else f"{charge_id}:{refunded}")
        return [OrderRefunded(**envelope, refund=refund, full=full)]

    def _credit_note(self, delivered: _Event) -> ParseResult:
        """A credit note takes units of an invoice's lines back; all of them is a full refund.

        A line credited by amount alone has no ``quantity`` (Stripe's credit note line item:
        nullable), so how much of the invoice line it gave back is unknown: it refunds no units,
        and a partial credit does not withdraw the invite. (A credit note that pays the money
        back refunds the charge too, and ``charge.refunded`` says whether in full.)
        """
        note = delivered.data
        invoice = note.ident("invoice")
        if invoice is None:
            return Skip(SkipReason.UNLINKED, "the credit note names no invoice")
        lines = tuple(
            RefundedLine(line_id=line_id, quantity=quantity)
            for line in note.items("lines")
            if (line_id := line.ident("invoice_line_item")) is not None
            and (quantity := line.integer("quantity") or 0) > 0
        )
        envelope = self._envelope(delivered, invoice, note.unix_time("created"))
        return [
            OrderRefunded(
                **envelope, refund=Refund(refund_id=note.required_text("id"), lines=lines)
            )
        ]

    def _dispute(self, delivered: _Event) -> ParseResult:
        """A dispute withdraws the money: the invoice counts as refunded in full, and the
        journal names the dispute as the reason. Stripe's dispute names its charge and payment
        intent, not the invoice (unless the charge comes expanded and names it)."""
        dispute = delivered.data
        charge_id = dispute.ident("charge")
        if charge_id is None:
            return Skip(SkipReason.UNLINKED, "the dispute names no charge")
        charge = dispute.node("charge")  # an id, or the charge object when expanded
        envelope = self._charge_envelope(
            delivered,
            charge.ident("invoice") if charge is not None else None,
            charge_id,
            dispute.ident("payment_intent"),
            charge.ident("payment_intent") if charge is not None else None,
            when=dispute.unix_time("created"),
        )
        refund = Refund(refund_id=dispute.required_text("id"))
        return [OrderRefunded(**envelope, refund=refund, full=True, disputed=True)]


_Handler = Callable[[StripeAdapter, _Event], ParseResult]

_TOPICS: dict[str, _Handler] = {
    "invoice.paid": StripeAdapter._invoice_paid,
    "charge.refunded": StripeAdapter._charge_refunded,
    "credit_note.created": StripeAdapter._credit_note,
    "charge.dispute.created": StripeAdapter._dispute,
}
TOPICS: frozenset[str] = frozenset(_TOPICS)
"""The event types to select for the endpoint; any other is skipped (``unsupported_topic``)."""


@attrs.frozen
class StripePlugin:
    """The ``stripe`` entry point (see :class:`kit.adapters.AdapterPlugin`)."""

    name: str = PLATFORM
    config_type: type[StripeConfig] = StripeConfig

    def create(self, *, source: str, config: StripeConfig) -> StripeAdapter:
        return StripeAdapter(source=source, config=config)


# Annotated with the contract, so mypy checks the plugin and its adapter against the Protocols.
plugin: AdapterPlugin[StripeConfig] = StripePlugin()


__all__ = ["PLATFORM", "TOPICS", "StripeAdapter", "StripePlugin", "plugin"]
