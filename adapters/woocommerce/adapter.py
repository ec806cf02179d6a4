"""The WooCommerce push adapter: the store's order webhooks -> domain events.

WooCommerce signs each delivery with the webhook's secret: ``X-WC-Webhook-Signature`` is the
base64 HMAC-SHA256 of the raw body (platforms.md §7.1). ``X-WC-Webhook-Topic`` (with
``-Resource`` and ``-Event``), ``-ID`` and ``-Delivery-ID`` say what the delivery is.

Two WooCommerce habits shape :meth:`WooCommerceAdapter.identify`:

* ``X-WC-Webhook-Delivery-ID`` is a hash of the webhook id and the current *second*, so two
  different deliveries of one webhook within a second share it. The body's hash is part of the
  delivery id, so they stay two deliveries while a byte-identical replay is still one.
* Two webhooks on one topic (a merchant who set it up twice) send the same body; the topic and
  the body's hash are the event id, so the journal records that order change once.

When a webhook is created (or re-activated) WooCommerce first sends a **ping**: a POST whose
body is ``webhook_id=<n>``, form-encoded, with no ``X-WC-*`` header and no signature. It must
be answered with a 2xx (WooCommerce wants exactly 200) or the webhook is not activated, so it is
let through :meth:`~WooCommerceAdapter.verify` and skipped with ``webhook_ping``. It carries
nothing to act on, which is why letting an unsigned one in is safe.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs

from adapters.woocommerce._order import order_events
from adapters.woocommerce.config import WooCommerceConfig
from kit.adapters import (
    AdapterPlugin,
    DeliveryIdentity,
    Headers,
    ParseResult,
    hmac_sha256_base64_matches,
)
from kit.domain import Skip, SkipReason
from kit.errors import PayloadError, VerificationError
from kit.feeds import FeedAdapter, FeedPlugin
from kit.payload import Node, json_object

PLATFORM = "woocommerce"
ORDER_CREATED = "order.created"
ORDER_UPDATED = "order.updated"
TOPICS: frozenset[str] = frozenset({ORDER_CREATED, ORDER_UPDATED})
"""Every topic this adapter reads; any other is skipped with ``unsupported_topic``."""

_PING = re.compile(rb"webhook_id=(\d{1,20})\Z")


def header(headers: Headers, name: str) -> str | None:
    """``X-WC-Webhook-<name>``; blank is absent."""
    value = headers.get(f"x-wc-webhook-{name}")
    return value.strip() or None if value is not None else None


def ping_webhook_id(headers: Headers, raw_body: bytes) -> str | None:
    """The webhook id of a creation ping, or ``None`` for any other delivery.

    A ping has exactly the body ``webhook_id=<digits>`` and none of the headers a real delivery
    carries; a body that merely looks like one but comes with a topic or signature is verified
    like any other delivery.
    """
    if header(headers, "signature") is not None or header(headers, "topic") is not None:
        return None
    match = _PING.match(raw_body.strip())
    return match.group(1).decode() if match else None


def topic_of(headers: Headers) -> str | None:
    """``X-WC-Webhook-Topic``, else ``<Resource>.<Event>``; lower case."""
    topic = header(headers, "topic")
    if topic is None:
        resource, event = header(headers, "resource"), header(headers, "event")
        topic = f"{resource}.{event}" if resource and event else None
    return topic.lower() if topic else None


@attrs.frozen(kw_only=True)
class WooCommerceAdapter:
    """One configured WooCommerce store (see :class:`kit.adapters.PushAdapter`)."""

    source: str
    config: WooCommerceConfig

    @property
    def platform(self) -> str:
        return PLATFORM

    @property
    def account(self) -> str:
        return self.config.store_host

    def verify(self, headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
        if ping_webhook_id(headers, raw_body) is not None:
            return
        if not raw_body:
            raise VerificationError("empty_body", "the delivery has no body to verify")
        signature = header(headers, "signature")
        if signature is None:
            raise VerificationError("missing_signature", "no X-WC-Webhook-Signature header")
        if not hmac_sha256_base64_matches(raw_body, signature, secrets):
            raise VerificationError(
                "bad_signature",
                f"X-WC-Webhook-Signature matches none of the {len(secrets)} configured secrets",
            )
        # Sent since WooCommerce 2.6: the site's home URL. Older stores send none.
        sender = header(headers, "source")
        if sender is not None and (urlsplit(sender).hostname or "").lower() != self.account:
            raise VerificationError(
                "wrong_store", "X-WC-Webhook-Source names another store than store_url"
            )

    def identify(self, headers: Headers, raw_body: bytes) -> DeliveryIdentity:
        """``<webhook id>:<delivery id>:<body hash>`` and ``<topic>:sha256:<body hash>`` (see
        the module docstring); a ping is ``ping:<webhook id>``."""
        ping = ping_webhook_id(headers, raw_body)
        if ping is not None:
            return DeliveryIdentity(f"ping:{ping}")
        digest = hashlib.sha256(raw_body).hexdigest()
        webhook = header(headers, "id") or "-"
        delivery = header(headers, "delivery-id") or "-"
        topic = topic_of(headers) or "-"
        return DeliveryIdentity(
            f"{webhook}:{delivery}:{digest[:32]}", event_id=f"{topic}:sha256:{digest}"
        )

    def parse(self, headers: Headers, raw_body: bytes, *, received_at: datetime) -> ParseResult:
        ping = ping_webhook_id(headers, raw_body)
        if ping is not None:
            return Skip(SkipReason.WEBHOOK_PING, f"webhook {ping} created")
        topic = topic_of(headers)
        if topic is None:
            raise PayloadError("no X-WC-Webhook-Topic header")
        if topic not in TOPICS:
            return Skip(SkipReason.UNSUPPORTED_TOPIC, f"topic {topic!r}")
        identity = self.identify(headers, raw_body)
        envelope = self.envelope(identity, topic=topic)
        return order_events(
            Node(json_object(raw_body), ""),
            self.config,
            envelope=envelope,
            placed=topic == ORDER_CREATED,
        )

    def envelope(self, identity: DeliveryIdentity, *, topic: str) -> dict[str, Any]:
        """The event fields every event of one delivery (or one feed read) shares."""
        return {
            "source": self.source,
            "platform": PLATFORM,
            "account": self.account,
            "delivery_id": identity.delivery_id,
            "event_id": identity.event_id,
            "topic": topic,
        }


@attrs.frozen
class WooCommercePlugin:
    """The ``woocommerce`` entry point (see :class:`kit.adapters.AdapterPlugin`)."""

    name: str = PLATFORM
    config_type: type[WooCommerceConfig] = WooCommerceConfig

    def create(self, *, source: str, config: WooCommerceConfig) -> WooCommerceAdapter:
        return WooCommerceAdapter(source=source, config=config)

    def create_feed(self, *, source: str, config: WooCommerceConfig) -> FeedAdapter:
        """The store's REST orders feed; it reads only with the REST API key
        (``consumer_key``/``_secret``), and is off without it."""
        from adapters.woocommerce.feed import WooCommerceFeed

        return WooCommerceFeed.from_config(source=source, config=config)


# Annotated with the contracts, so mypy checks the plugin, its adapter and its feed against the
# Protocols of both sides.
plugin: AdapterPlugin[WooCommerceConfig] = WooCommercePlugin()
_feed_plugin: FeedPlugin[WooCommerceConfig] = WooCommercePlugin()


__all__ = [
    "ORDER_CREATED",
    "ORDER_UPDATED",
    "PLATFORM",
    "TOPICS",
    "WooCommerceAdapter",
    "WooCommercePlugin",
    "header",
    "ping_webhook_id",
    "plugin",
    "topic_of",
]
