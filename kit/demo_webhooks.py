"""The demo's adapter path: signed sample Shopify deliveries through the real intake over HTTP.

Before the flush, the demo serves :class:`~kit.webhooks.Webhooks` on loopback and posts, with a
real HTTP client, what a shop sends in a day: fulfilled orders, a retry of one of them (the same
webhook id), one whose body was changed after it was signed, a test order, and an order
cancelled within the hold-back. What each became is read back from the journal, not from the
HTTP answer; the outbox entries they made are then delivered by the demo's flusher with the
rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import attrs
from aiohttp import web

from adapters.shopify import ShopifyAdapter, ShopifyConfig, samples
from kit.journal import DecisionRow, Intake, IntakeSource
from kit.loopback import serving
from kit.outbox import Outbox
from kit.policy import PolicyConfig, Trigger
from kit.webhooks import Webhooks

SOURCE = "demo-shop"
SHOP_DOMAIN = "demo-shop.myshopify.com"
SECRET = "shpss_demo_secret_not_a_real_one"  # noqa: S105 (signs the demo's own deliveries)
EVENT_TYPE = "order_shipped"
HOLD_BACK = timedelta(seconds=2)
"""The demo's hold-back: seconds instead of days, so the run still ends in seconds."""
FIRST_ORDER = 1001


@attrs.frozen(kw_only=True)
class WebhookOutcome:
    """One delivery of the demo: what was sent, what HTTP answered, what the journal holds."""

    label: str
    topic: str
    webhook_id: str
    status: int
    answer: str  # the answer's status or error word
    journal: tuple[str, ...]  # the decisions it added: "kind -> outcome (reason)"
    keys: tuple[str, ...]  # the outbox keys those decisions concern


@attrs.frozen(kw_only=True)
class _Send:
    label: str
    topic: str
    stream: str
    webhook_id: str
    headers: dict[str, str]
    body: bytes


def demo_source(channel_id: str) -> IntakeSource:
    """The demo's Shopify shop: one ``order_shipped`` per fulfilled order, after the hold-back."""
    return IntakeSource(
        name=SOURCE,
        adapter=ShopifyAdapter(source=SOURCE, config=ShopifyConfig(shop_domain=SHOP_DOMAIN)),
        policy=PolicyConfig(
            channel_id=channel_id,
            triggers=(Trigger(on="order_fulfilled", event_type=EVENT_TYPE, delay=HOLD_BACK),),
        ),
        secrets=(SECRET,),
    )


def demo_deliveries(now: datetime) -> list[_Send]:
    """The day's deliveries, in the order they are sent."""
    sends: list[_Send] = []

    def add(label: str, topic: str, order: dict[str, Any], webhook_id: str) -> _Send:
        headers, raw = samples.signed_delivery(
            order,
            topic,
            secret=SECRET,
            shop_domain=SHOP_DOMAIN,
            webhook_id=webhook_id,
            event_id=f"event-{webhook_id}",
            triggered_at=samples.shopify_time(now),
        )
        send = _Send(
            label=label,
            topic=topic,
            stream=str(order["id"]),
            webhook_id=webhook_id,
            headers=headers,
            body=raw,
        )
        sends.append(send)
        return send

    def order(n: int, **changes: Any) -> dict[str, Any]:
        return samples.fulfilled_order(n, shipped_at=now, email=f"buyer.{n}@example.org", **changes)

    first = add(f"#{FIRST_ORDER} fulfilled", "orders/fulfilled", order(FIRST_ORDER), "w-1")
    add(f"#{FIRST_ORDER + 1} fulfilled", "orders/fulfilled", order(FIRST_ORDER + 1), "w-2")
    add(f"#{FIRST_ORDER + 2} fulfilled", "orders/fulfilled", order(FIRST_ORDER + 2), "w-3")
    sends.append(attrs.evolve(first, label=f"#{FIRST_ORDER} again (a retry)"))
    tampered = add(
        f"#{FIRST_ORDER + 3} altered after signing",
        "orders/fulfilled",
        order(FIRST_ORDER + 3),
        "w-4",
    )
    sends[-1] = attrs.evolve(tampered, body=tampered.body.replace(b"buyer.", b"other.", 1))
    add(
        f"#{FIRST_ORDER + 4} fulfilled, a test order",
        "orders/fulfilled",
        order(FIRST_ORDER + 4, test=True),
        "w-5",
    )
    cancelled = order(FIRST_ORDER + 5)
    add(f"#{FIRST_ORDER + 5} fulfilled", "orders/fulfilled", cancelled, "w-6")
    add(
        f"#{FIRST_ORDER + 5} cancelled in the hold-back",
        "orders/cancelled",
        samples.cancelled(cancelled, at=now),
        "w-7",
    )
    return sends


async def send_demo_webhooks(outbox: Outbox, channel_id: str) -> list[WebhookOutcome]:
    """Post the demo's deliveries to the intake over loopback HTTP, one after the other."""
    intake = Intake(outbox)
    webhooks = Webhooks(intake, [demo_source(channel_id)])
    app = web.Application()
    webhooks.install(app)
    outcomes = []
    async with serving(app) as base, aiohttp.ClientSession() as session:
        url = base + webhooks.route(SOURCE)
        for send in demo_deliveries(datetime.now(UTC)):
            before = await intake.journal.history(SOURCE, send.stream)
            async with session.post(url, data=send.body, headers=send.headers) as response:
                answer = await response.json()
                status = response.status
            after = await intake.journal.history(SOURCE, send.stream)
            added = after.decisions[len(before.decisions) :]
            outcomes.append(
                WebhookOutcome(
                    label=send.label,
                    topic=send.topic,
                    webhook_id=send.webhook_id,
                    status=status,
                    answer=str(answer.get("status") or answer.get("error")),
                    journal=tuple(_describe(row) for row in added),
                    keys=tuple(row.key for row in added if row.key is not None),
                )
            )
    return outcomes


def _describe(row: DecisionRow) -> str:
    """``kind -> outcome``, with the reason of a skip or cancel: ``skipped -> recorded
    (test_order)``."""
    reason = getattr(row.decision, "reason", None)
    text = f"{row.kind} -> {row.outcome.value}"
    return f"{text} ({reason.value})" if reason is not None else text


def describe(outcome: WebhookOutcome, states: dict[str, str]) -> str:
    """One line of the demo's summary for a delivery; ``states`` are the outbox entries' states
    now (a key that never got an entry, such as a skipped test order's, has none)."""
    journal = ", ".join(outcome.journal) or "nothing new in the journal"
    entries = ", ".join(f"entry {states[k]}" for k in outcome.keys if k in states)
    return f"{outcome.status} {outcome.answer:<13}  {journal}{'; ' + entries if entries else ''}"


def webhook_keys(outcomes: Sequence[WebhookOutcome]) -> list[str]:
    """Every outbox key the demo's deliveries concern, once each, in order."""
    return list(dict.fromkeys(k for o in outcomes for k in o.keys))


__all__ = [
    "HOLD_BACK",
    "SHOP_DOMAIN",
    "SOURCE",
    "WebhookOutcome",
    "demo_deliveries",
    "demo_source",
    "describe",
    "send_demo_webhooks",
    "webhook_keys",
]
