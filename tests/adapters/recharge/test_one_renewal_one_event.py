"""One renewal, one event: a Recharge renewal reported by Recharge (``charge/paid``) and again
by the shop's order webhook for the Shopify order Recharge created, to two sources, in either
order, makes one outbox entry and reaches the sandbox once, accepted. The journal keeps both
facts; of the two sources' decisions on the shared key, exactly one wrote the entry."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import CHANNEL, EVENT_TYPE, SHOP_SOURCE
from journal.deliveries import SECRET as SHOPIFY_SECRET
from recharge_deliveries import EMAIL, NOW, ORDER_ID, SHOP, SOURCE, charge, delivery
from webhooks.conftest import Reply, Served

from adapters.shopify import samples
from kit.client import ETrustedClient
from kit.domain import SkipReason
from kit.flusher import Flusher
from kit.journal.records import Outcome
from kit.outbox import State
from kit.sandbox import SandboxConfig
from kit.testing import running_sandbox

KEY = f"shopify:{SHOP}:{ORDER_ID}:{EVENT_TYPE}"
RECHARGE_TAGS = "Subscription, Subscription Recurring Order"
FLUSHED_AT = NOW + 2 * 86400  # after the one-day hold-back


def renewal_order() -> dict[str, Any]:
    """The Shopify order Recharge created for the charge (tagged as Recharge tags it)."""
    order = samples.sample("order_fulfilled")
    order.update(
        id=int(ORDER_ID),
        name="#1077",
        order_number=1077,
        email=EMAIL,
        contact_email=EMAIL,
        tags=RECHARGE_TAGS,
        source_name="subscription_contract",
        created_at="2025-03-10T09:00:07+01:00",
        processed_at="2025-03-10T09:00:07+01:00",
        updated_at="2025-03-10T09:00:08+01:00",
        fulfillment_status=None,
        fulfillments=[],
    )
    order["line_items"] = order["line_items"][:1]  # the socks, without the gift card
    return order


async def from_recharge(shop: Served) -> Reply:
    return await shop.post(*delivery(charge()), path=f"/webhooks/{SOURCE}")


async def from_shopify(shop: Served, topic: str = "orders/paid", n: int = 1) -> Reply:
    headers, raw = samples.signed_delivery(
        renewal_order(),
        topic,
        secret=SHOPIFY_SECRET,
        shop_domain=SHOP,
        webhook_id=f"webhook-{n}",
        event_id=f"event-{n}",
    )
    return await shop.post(headers, raw, path=f"/webhooks/{SHOP_SOURCE}")


@pytest.mark.parametrize("recharge_first", [True, False], ids=["recharge-first", "shopify-first"])
async def test_one_renewal_through_both_adapters_makes_one_accepted_event(
    shop: Served, recharge_first: bool
) -> None:
    senders = [from_recharge, from_shopify] if recharge_first else [from_shopify, from_recharge]
    replies = [await send(shop) for send in senders]
    assert [(r.status, r.body["status"]) for r in replies] == [(200, "accepted")] * 2

    # One outbox entry, under the Shopify order's key.
    assert await shop.counts() == {State.PENDING: 1}
    assert (await shop.outbox.get(KEY)).state is State.PENDING

    # The journal: both facts, each on its source's stream of the one order ...
    recharge = await shop.history(ORDER_ID, SOURCE)
    shopify = await shop.history(ORDER_ID, SHOP_SOURCE)
    assert [e.kind for e in recharge.events] == ["subscription_renewed"]
    assert [e.kind for e in shopify.events] == ["subscription_renewed", "order_paid"]
    # ... and on the shared key one decision that wrote the entry; the later source's enqueue
    # found it there and wrote nothing.
    on_key = [d for d in (*recharge.decisions, *shopify.decisions) if d.key == KEY]
    assert sorted((d.kind, d.outcome) for d in on_key) == [
        ("enqueue", Outcome.DUPLICATE),
        ("enqueue", Outcome.ENQUEUED),
    ]
    first_source = recharge if recharge_first else shopify
    assert [d.outcome for d in first_source.decisions if d.key == KEY] == [Outcome.ENQUEUED]
    # ``etrusted-kit explain KEY`` finds both streams through the key.
    found = await shop.kit.intake.journal.find_streams(KEY)
    assert found == sorted([(SHOP_SOURCE, ORDER_ID), (SOURCE, ORDER_ID)])

    # The flusher delivers exactly one event, and the sandbox accepts it.
    config = SandboxConfig(event_types=(EVENT_TYPE,))
    async with running_sandbox(config) as server, ETrustedClient(server.client_config()) as client:
        stats = await Flusher(shop.outbox, client, clock=lambda: FLUSHED_AT).run_once()
        again = await Flusher(shop.outbox, client, clock=lambda: FLUSHED_AT + 86400).run_once()
        accepted = server.sandbox.accepted_events()
    assert (stats.delivered, again.delivered) == (1, 0)
    [event] = accepted
    assert event.body["type"] == EVENT_TYPE
    assert event.body["channel"]["id"] == CHANNEL
    assert event.body["customer"]["email"] == EMAIL
    assert event.transaction_reference == (ORDER_ID if recharge_first else "#1077")
    assert event.body["metadata"]["stream"] == ORDER_ID
    assert (await shop.outbox.get(KEY)).state is State.DELIVERED


async def test_every_report_of_the_renewal_folds_into_the_one_entry(shop: Served) -> None:
    """The order's later webhooks (created, paid, fulfilled) and a Recharge retry add facts to
    the journal, never a second entry."""
    await from_shopify(shop, "orders/create", 1)
    await from_recharge(shop)
    await from_shopify(shop, "orders/paid", 2)
    await from_recharge(shop)  # Recharge's retry: a duplicate delivery
    await from_shopify(shop, "orders/updated", 3)
    assert await shop.counts() == {State.PENDING: 1}
    shopify = await shop.history(ORDER_ID, SHOP_SOURCE)
    assert [e.kind for e in shopify.events].count("subscription_renewed") == 3
    enqueues = [d for d in shopify.decisions if d.kind == "enqueue"]
    assert [d.outcome for d in enqueues] == [Outcome.ENQUEUED]
    assert len((await shop.history(ORDER_ID, SOURCE)).events) == 1


async def test_the_shop_cancelling_the_order_withdraws_the_invite_recharge_enqueued(
    shop: Served,
) -> None:
    """The shop source journaled its own decision on the shared key, so its cancellation
    reaches the entry Recharge's delivery wrote."""
    await from_recharge(shop)
    await from_shopify(shop, "orders/paid", 1)
    cancelled = renewal_order()
    cancelled.update(
        cancelled_at="2025-03-10T12:00:00+01:00",
        updated_at="2025-03-10T12:00:00+01:00",
        cancel_reason="customer",
        financial_status="voided",
    )
    headers, raw = samples.signed_delivery(
        cancelled,
        "orders/cancelled",
        secret=SHOPIFY_SECRET,
        shop_domain=SHOP,
        webhook_id="webhook-cancel",
        event_id="event-cancel",
    )
    reply = await shop.post(headers, raw, path=f"/webhooks/{SHOP_SOURCE}")
    assert reply.status == 200
    assert (await shop.outbox.get(KEY)).state is State.CANCELLED


async def test_a_shopify_billing_attempt_and_its_order_make_one_decision(shop: Served) -> None:
    """Shopify's own subscriptions: the billing attempt names only the order, so the invite
    waits for the order's facts; the order's webhook then enqueues it, once, on one stream."""
    attempt = {
        "id": 9100001,
        "order_id": int(ORDER_ID),
        "admin_graphql_api_order_id": f"gid://shopify/Order/{ORDER_ID}",
        "subscription_contract_id": 7700001,
        "ready": True,
    }
    headers, raw = samples.signed_delivery(
        attempt,
        "subscription_billing_attempts/success",
        secret=SHOPIFY_SECRET,
        shop_domain=SHOP,
        webhook_id="webhook-attempt",
        event_id="event-attempt",
        triggered_at="2025-03-10T08:00:09Z",
    )
    first = await shop.post(headers, raw, path=f"/webhooks/{SHOP_SOURCE}")
    assert first.body["status"] == "accepted"
    assert await shop.counts() == {}
    await from_shopify(shop, "orders/paid", 1)
    assert await shop.counts() == {State.PENDING: 1}
    history = await shop.history(ORDER_ID, SHOP_SOURCE)
    assert [(d.kind, d.outcome) for d in history.decisions if d.key == KEY] == [
        ("skipped", Outcome.RECORDED),  # no_order_facts: nothing described the order yet
        ("enqueue", Outcome.ENQUEUED),
    ]


async def test_shopify_contract_renewals_are_counted_by_their_billing_attempts(
    shop: Served,
) -> None:
    """Shopify's own subscriptions: the order names no contract, its billing attempt does, and
    the stream's charge takes the contract from it, so with ``renewals = "first"`` the
    contract's second renewal is not asked again."""
    decided = []
    for n, day in enumerate(("2025-02-10", "2025-03-10"), start=1):
        order_id = str(5560003000000 + n)
        order = renewal_order()
        order.update(
            id=int(order_id),
            name=f"#20{n}",
            tags="",
            created_at=f"{day}T09:00:07+01:00",
            processed_at=f"{day}T09:00:07+01:00",
            updated_at=f"{day}T09:00:08+01:00",
        )
        attempt = {"id": 9100000 + n, "order_id": int(order_id), "subscription_contract_id": 77}
        for topic, body in (
            ("subscription_billing_attempts/success", attempt),
            ("orders/paid", order),
        ):
            headers, raw = samples.signed_delivery(
                body,
                topic,
                secret=SHOPIFY_SECRET,
                shop_domain=SHOP,
                webhook_id=f"webhook-{n}-{topic}",
                event_id=f"event-{n}-{topic}",
                triggered_at=f"{day}T08:00:09Z",
            )
            reply = await shop.post(headers, raw, path=f"/webhooks/{SHOP_SOURCE}")
            assert reply.status == 200
        history = await shop.history(order_id, SHOP_SOURCE)
        key = f"shopify:{SHOP}:{order_id}:{EVENT_TYPE}"
        decided.append(
            [getattr(d.decision, "reason", d.kind) for d in history.decisions if d.key == key]
        )
    assert decided == [
        [SkipReason.NO_ORDER_FACTS, "enqueue"],  # the attempt came before the order
        [SkipReason.NO_ORDER_FACTS, SkipReason.RENEWAL_NOT_SELECTED],  # renewal 2
    ]
    assert await shop.counts() == {State.PENDING: 1}
