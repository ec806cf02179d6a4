"""The Shopify order-webhook adapter: verify, identify and parse one delivery.

Verification follows Shopify's documentation: the base64 HMAC-SHA256 of the raw body in
``X-Shopify-Hmac-Sha256``, tried against every configured secret (an app secret rotation takes
up to an hour to reach every delivery), and ``X-Shopify-Shop-Domain`` must be this source's
shop, because one app secret signs the webhooks of every shop that installed the app. The
un-prefixed ``shopify-*`` headers of Shopify's newer delivery mechanism are read as well.

Topics map to domain events as platforms.md §3.4 describes; a subscription renewal's order
(:func:`kit.renewals.is_renewal_order`) and a successful subscription billing attempt are also
reported as :class:`~kit.domain.SubscriptionRenewed` on the order's stream. What a policy does
with them is not this module's business. Which moment an event ``occurred_at`` is the one it
names: an order's creation or cancellation, a fulfilment's creation (when the parcel left), a
refund's creation; ``X-Shopify-Triggered-At`` (then the time the intake received the delivery)
stands in where the payload has no such time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from adapters.shopify._order import order_facts, refund, shipment
from adapters.shopify.config import ShopifyConfig
from kit.adapters import (
    AdapterPlugin,
    DeliveryIdentity,
    Headers,
    ParseResult,
    hmac_sha256_base64_matches,
)
from kit.codec import parse_datetime
from kit.domain import (
    CustomerErasureRequested,
    DomainEvent,
    ErasureScope,
    OrderCancelled,
    OrderDelivered,
    OrderFacts,
    OrderFulfilled,
    OrderPaid,
    OrderPlaced,
    OrderRefunded,
    OrderUpdated,
    Skip,
    SkipReason,
    SubscriptionRenewed,
)
from kit.errors import PayloadError, VerificationError
from kit.feeds.contract import FeedPlugin
from kit.payload import Node, json_object
from kit.renewals import SHOPIFY, is_renewal_order, shopify_order_stream

if TYPE_CHECKING:
    from adapters.shopify.feed import ShopifyFeed

PLATFORM = SHOPIFY
SHIPPED = "success"  # a fulfilment's status once the parcel is on its way
DELIVERED = "delivered"  # a fulfilment's shipment_status once the carrier delivered it


def header(headers: Headers, name: str) -> str | None:
    """``X-Shopify-<name>``, or the newer mechanism's ``shopify-<name>``; blank is absent."""
    value = headers.get(f"x-shopify-{name}") or headers.get(f"shopify-{name}")
    return value.strip() or None if value is not None else None


@attrs.frozen
class _Delivery:
    """What every topic handler gets: the parsed body and the delivery's context."""

    body: Node
    topic: str
    identity: DeliveryIdentity
    triggered_at: datetime | None
    received_at: datetime


@attrs.frozen(kw_only=True)
class ShopifyAdapter:
    """One configured Shopify shop (see :class:`kit.adapters.PushAdapter`)."""

    source: str
    config: ShopifyConfig

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def account(self) -> str:
        return self.config.shop_domain

    def verify(self, headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
        if not raw_body:
            raise VerificationError("empty_body", "the delivery has no body to verify")
        signature = header(headers, "hmac-sha256")
        if signature is None:
            raise VerificationError("missing_signature", "no X-Shopify-Hmac-Sha256 header")
        if not hmac_sha256_base64_matches(raw_body, signature, secrets):
            raise VerificationError(
                "bad_signature",
                f"X-Shopify-Hmac-Sha256 matches none of the {len(secrets)} configured secrets",
            )
        shop = header(headers, "shop-domain")
        if shop is None:
            raise VerificationError("missing_shop", "no X-Shopify-Shop-Domain header")
        if shop.lower() != self.config.shop_domain:
            raise VerificationError(
                "wrong_shop", f"signed for shop {shop!r}, not for this source's shop"
            )

    def identify(self, headers: Headers, raw_body: bytes) -> DeliveryIdentity:
        """``X-Shopify-Webhook-Id`` and ``X-Shopify-Event-Id``; without a webhook id the body's
        hash stands in, so a byte-identical replay is still recognised."""
        delivery_id = header(headers, "webhook-id")
        if delivery_id is None:
            delivery_id = "sha256:" + hashlib.sha256(raw_body).hexdigest()
        return DeliveryIdentity(delivery_id, header(headers, "event-id"))

    def parse(self, headers: Headers, raw_body: bytes, *, received_at: datetime) -> ParseResult:
        topic = header(headers, "topic")
        if topic is None:
            raise PayloadError("no X-Shopify-Topic header")
        handler = _TOPICS.get(topic.lower())
        if handler is None:
            return Skip(SkipReason.UNSUPPORTED_TOPIC, f"topic {topic!r}")
        triggered = header(headers, "triggered-at")
        try:
            triggered_at = parse_datetime(triggered) if triggered is not None else None
        except ValueError:
            raise PayloadError("X-Shopify-Triggered-At is not an ISO 8601 date-time") from None
        delivery = _Delivery(
            body=Node(json_object(raw_body)),
            topic=topic.lower(),
            identity=self.identify(headers, raw_body),
            triggered_at=triggered_at,
            received_at=received_at,
        )
        return handler(self, delivery)

    # -- building events ------------------------------------------------------------------

    def _envelope(self, delivery: _Delivery, stream: str, *when: datetime | None) -> dict[str, Any]:
        occurred_at = delivery.received_at
        for candidate in (*when, delivery.triggered_at):
            if candidate is not None:
                occurred_at = candidate
                break
        return {
            "source": self.source,
            "platform": PLATFORM,
            "account": self.config.shop_domain,
            "stream": stream,
            "occurred_at": occurred_at,
            "delivery_id": delivery.identity.delivery_id,
            "event_id": delivery.identity.event_id,
            "topic": delivery.topic,
        }

    def _order_created(self, delivery: _Delivery) -> ParseResult:
        order = delivery.body
        stream = order.required_ident("id")
        facts = order_facts(order, self.config)
        envelope = self._envelope(delivery, stream, order.when("created_at"))
        return [*self._renewal(delivery, stream, facts), OrderPlaced(**envelope, order=facts)]

    def _order_paid(self, delivery: _Delivery) -> ParseResult:
        # No payment time in the payload: the trigger time is the best there is.
        order = delivery.body
        stream = order.required_ident("id")
        facts = order_facts(order, self.config)
        envelope = self._envelope(delivery, stream, delivery.triggered_at, order.when("updated_at"))
        return [*self._renewal(delivery, stream, facts), OrderPaid(**envelope, order=facts)]

    def _order_updated(self, delivery: _Delivery) -> ParseResult:
        order = delivery.body
        stream = order.required_ident("id")
        facts = order_facts(order, self.config)
        envelope = self._envelope(delivery, stream, order.when("updated_at"))
        return [*self._renewal(delivery, stream, facts), OrderUpdated(**envelope, order=facts)]

    def _order_cancelled(self, delivery: _Delivery) -> ParseResult:
        order = delivery.body
        envelope = self._envelope(
            delivery,
            order.required_ident("id"),
            order.when("cancelled_at"),
            order.when("updated_at"),
        )
        facts = order_facts(order, self.config)
        return [OrderCancelled(**envelope, order=facts, reason=order.text("cancel_reason"))]

    def _order_fulfilled(self, delivery: _Delivery) -> ParseResult:
        """One event per shipped fulfilment the order lists (one, if it lists none)."""
        order = delivery.body
        stream = order.required_ident("id")
        facts = order_facts(order, self.config)
        shipped = [f for f in order.nodes("fulfillments") if f.text("status") == SHIPPED]
        renewal = self._renewal(delivery, stream, facts)
        # The facts hold the order's updated_at already.
        if not shipped:
            envelope = self._envelope(delivery, stream, facts.updated_at)
            return [*renewal, OrderFulfilled(**envelope, order=facts)]
        events: list[DomainEvent] = list(renewal)
        for fulfilment in shipped:
            shipped_at = fulfilment.when("created_at")
            envelope = self._envelope(delivery, stream, shipped_at, facts.updated_at)
            parcel = shipment(fulfilment, self.config)
            events.append(OrderFulfilled(**envelope, order=facts, shipment=parcel))
        return events

    def _renewal(
        self, delivery: _Delivery, stream: str, facts: OrderFacts
    ) -> list[SubscriptionRenewed]:
        """The renewal an order payload reports when it is a subscription renewal's order:
        it happened when the order was placed, whichever topic carries it. It goes before the
        order's own event, so the policy decides on the renewal's time, not on the status
        change's, and a later renewal report never has to move the invite."""
        config = self.config
        if not is_renewal_order(
            facts.tags,
            facts.sales_channel,
            renewal_tags=config.renewal_tags,
            source_names=config.renewal_source_names,
        ):
            return []
        envelope = self._envelope(delivery, stream, facts.placed_at)
        return [SubscriptionRenewed(**envelope, order=facts, order_stream=stream)]

    def _billing_attempt(self, delivery: _Delivery) -> ParseResult:
        """``subscription_billing_attempts/success``: a contract renewed and created an order.

        The payload names only the order, so the event carries no order facts: the order's
        own webhooks describe it, on the same stream.
        """
        body = delivery.body
        stream = body.ident("order_id")
        gid = body.text("admin_graphql_api_order_id")
        if stream is None and gid is not None:
            stream = shopify_order_stream(gid)
        if stream is None:
            return Skip(SkipReason.NO_ORDER, "the billing attempt names no order yet")
        envelope = self._envelope(delivery, stream)
        contract = body.ident("subscription_contract_id")
        return [SubscriptionRenewed(**envelope, order_stream=stream, subscription=contract)]

    def _fulfilment(self, delivery: _Delivery) -> ParseResult:
        """``fulfillments/create`` and ``/update``: shipped, delivered, or nothing to act on."""
        fulfilment = delivery.body
        status = fulfilment.text("status")
        if status != SHIPPED:
            return Skip(SkipReason.NOT_SHIPPED, f"fulfilment status {status!r}")
        stream = fulfilment.required_ident("order_id")
        parcel = shipment(fulfilment, self.config)
        shipment_status = fulfilment.text("shipment_status")
        if shipment_status is not None and shipment_status.lower() == DELIVERED:
            envelope = self._envelope(delivery, stream, fulfilment.when("updated_at"))
            return [OrderDelivered(**envelope, shipment=parcel)]
        envelope = self._envelope(delivery, stream, fulfilment.when("created_at"))
        return [OrderFulfilled(**envelope, shipment=parcel)]

    def _refund(self, delivery: _Delivery) -> ParseResult:
        body = delivery.body
        envelope = self._envelope(
            delivery,
            body.required_ident("order_id"),
            body.when("created_at"),
            body.when("processed_at"),
        )
        return [OrderRefunded(**envelope, refund=refund(body))]

    def _customer_redact(self, delivery: _Delivery) -> ParseResult:
        body = delivery.body
        customer = body.node("customer")
        customer_id = customer.ident("id") if customer is not None else None
        envelope = self._envelope(delivery, customer_id or self.config.shop_domain)
        orders = _idents(body, "orders_to_redact")
        return [
            CustomerErasureRequested(
                **envelope,
                scope=ErasureScope.CUSTOMER,
                customer_id=customer_id,
                email=customer.text("email") if customer is not None else None,
                order_streams=orders,
            )
        ]

    def _shop_redact(self, delivery: _Delivery) -> ParseResult:
        envelope = self._envelope(delivery, self.config.shop_domain)
        return [CustomerErasureRequested(**envelope, scope=ErasureScope.ACCOUNT)]

    def _data_request(self, delivery: _Delivery) -> ParseResult:
        # The kit stores only what eTrusted needs; the merchant answers the request from the
        # journal (``explain``) and the shop itself. Acknowledged, so Shopify does not retry.
        return Skip(SkipReason.DATA_REQUEST, "customer data request acknowledged")


def _idents(node: Node, key: str) -> tuple[str, ...]:
    raw = node.raw(key)
    if raw is None:
        return ()
    if not isinstance(raw, list) or any(
        isinstance(v, bool) or not isinstance(v, int | str) for v in raw
    ):
        raise PayloadError(f"{key} must be an array of ids")
    return tuple(str(v) for v in raw)


_Handler = Callable[[ShopifyAdapter, _Delivery], ParseResult]

_TOPICS: dict[str, _Handler] = {
    "orders/create": ShopifyAdapter._order_created,
    "orders/paid": ShopifyAdapter._order_paid,
    "orders/updated": ShopifyAdapter._order_updated,
    "orders/fulfilled": ShopifyAdapter._order_fulfilled,
    "orders/partially_fulfilled": ShopifyAdapter._order_fulfilled,
    "orders/cancelled": ShopifyAdapter._order_cancelled,
    "fulfillments/create": ShopifyAdapter._fulfilment,
    "fulfillments/update": ShopifyAdapter._fulfilment,
    "refunds/create": ShopifyAdapter._refund,
    "subscription_billing_attempts/success": ShopifyAdapter._billing_attempt,
    "customers/redact": ShopifyAdapter._customer_redact,
    "shop/redact": ShopifyAdapter._shop_redact,
    "customers/data_request": ShopifyAdapter._data_request,
}
TOPICS: frozenset[str] = frozenset(_TOPICS)
"""Every topic this adapter reads; any other is skipped with ``unsupported_topic``."""


@attrs.frozen
class ShopifyPlugin:
    """The ``shopify`` entry point (see :class:`kit.adapters.AdapterPlugin`)."""

    name: str = PLATFORM
    config_type: type[ShopifyConfig] = ShopifyConfig

    def create(self, *, source: str, config: ShopifyConfig) -> ShopifyAdapter:
        return ShopifyAdapter(source=source, config=config)

    def create_feed(self, *, source: str, config: ShopifyConfig) -> ShopifyFeed:
        """The GraphQL order feed (:mod:`adapters.shopify.feed`); needs ``admin_access_token``."""
        # Imported here: the feed builds its events with this module's topic handlers.
        from adapters.shopify.feed import ShopifyFeed

        return ShopifyFeed(source=source, config=config)


# Annotated with the contracts, so mypy checks the plugin, its adapter and its feed against the
# Protocols.
plugin: AdapterPlugin[ShopifyConfig] = ShopifyPlugin()
_feed_plugin: FeedPlugin[ShopifyConfig] = ShopifyPlugin()


__all__ = ["PLATFORM", "TOPICS", "ShopifyAdapter", "ShopifyPlugin", "header", "plugin"]
