"""Shopify deliveries posted to the intake over real HTTP: each answer, and what the outbox and
the journal hold after it.

Every case runs against an outbox in a SQLite file and in PostgreSQL. The intake's clock stands
a day after the order's fulfilment, inside the 3-day hold-back.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from journal.deliveries import KEY, ORDER_ID, cancelled_order, fulfilled_order, payload

from kit.flusher import Flusher
from kit.journal.records import StreamHistory
from kit.outbox import State
from kit.testing import FakeDeliveryClient

from .conftest import Served, delivery


def outcomes(found: StreamHistory) -> list[tuple[str, str]]:
    return [(d.kind, d.outcome.value) for d in found.decisions]


async def assert_nothing_stored(served: Served) -> None:
    assert await served.counts() == {}
    assert await served.outbox.storage.get(KEY) is None
    assert await served.history(ORDER_ID) == StreamHistory()


async def test_a_signed_delivery_is_stored_before_the_200(served: Served) -> None:
    """A signed order fulfilment answers 200 only once its invite waits in the outbox and the
    journal holds the event and the decision."""
    reply = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")

    assert reply.status == 200
    assert reply.body == {"status": "accepted", "delivery_id": "w-1"}
    entry = await served.outbox.get(KEY)
    assert entry.state is State.PENDING
    found = await served.history(ORDER_ID)
    assert [e.kind for e in found.events] == ["order_fulfilled"]
    assert outcomes(found) == [("enqueue", "enqueued")]
    assert found.waiting == frozenset({KEY})
    # Committed, not only seen by the connection that wrote it: another one reads it all.
    other = await served.kit.another_intake()
    assert await other.journal.history("my-shop", ORDER_ID) == found


async def test_a_tampered_body_is_refused_with_401_and_nothing_stored(served: Served) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    tampered = raw.replace(b'"#1042"', b'"#9999"')
    assert tampered != raw

    reply = await served.post(headers, tampered)

    assert (reply.status, reply.body) == (401, {"error": "bad_signature"})
    await assert_nothing_stored(served)


async def test_a_delivery_signed_with_another_secret_is_refused(served: Served) -> None:
    reply = await served.deliver(
        fulfilled_order(), "orders/fulfilled", "w-1", secret="shpss_someone_elses_secret"
    )

    assert (reply.status, reply.body) == (401, {"error": "bad_signature"})
    await assert_nothing_stored(served)


async def test_a_delivery_without_a_signature_is_refused(served: Served) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    del headers["X-Shopify-Hmac-Sha256"]

    reply = await served.post(headers, raw)

    assert (reply.status, reply.body) == (401, {"error": "missing_signature"})
    await assert_nothing_stored(served)


async def test_a_delivery_signed_for_another_shop_is_refused(served: Served) -> None:
    """The right secret is not enough: the shop domain must be this source's."""
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    headers["X-Shopify-Shop-Domain"] = "someone-else.myshopify.com"

    reply = await served.post(headers, raw)

    assert (reply.status, reply.body) == (401, {"error": "wrong_shop"})
    await assert_nothing_stored(served)


async def test_a_signed_body_that_is_not_json_is_refused_with_400(served: Served) -> None:
    """The signature is checked first and passes; the body then fails to parse."""
    reply = await served.deliver(b"<order>1042</order>", "orders/fulfilled", "w-1")

    assert (reply.status, reply.body) == (400, {"error": "invalid_payload"})
    await assert_nothing_stored(served)
    # Not journaled either: Shopify's retry of a fixed body would be taken in as new.
    assert (await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")).status == 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("processed_at", "0001-01-01T00:30:00+01:00"),  # before year 1 in UTC
        ("updated_at", "9999-12-31T23:00:00-05:00"),  # after year 9999 in UTC
        ("fulfillment created_at", "9999-12-31T20:00:00Z"),  # no room for the hold-back
    ],
)
async def test_a_signed_date_time_at_the_calendars_ends_is_refused_with_400(
    served: Served, field: str, value: str
) -> None:
    """A date-time the kit cannot compute with is a body of the wrong shape, not a bug."""
    order = fulfilled_order()
    if field == "fulfillment created_at":
        order["fulfillments"][0]["created_at"] = value
    else:
        order[field] = value

    reply = await served.deliver(order, "orders/fulfilled", "w-1")

    assert (reply.status, reply.body) == (400, {"error": "invalid_payload"})
    await assert_nothing_stored(served)


async def test_a_replayed_webhook_id_is_a_200_duplicate_stored_once(served: Served) -> None:
    first = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")
    again = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")

    assert first.body["status"] == "accepted"
    assert (again.status, again.body) == (200, {"status": "duplicate", "delivery_id": "w-1"})
    found = await served.history(ORDER_ID)
    assert len(found.events) == 1
    assert outcomes(found) == [("enqueue", "enqueued")]
    assert await served.counts() == {State.PENDING: 1}


async def test_concurrent_retries_of_one_webhook_are_stored_once(served: Served) -> None:
    """Shopify may retry while the first attempt is still being answered: every attempt gets
    a 200, exactly one of them is the one that stored it."""
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")

    replies = await asyncio.gather(*(served.post(headers, raw) for _ in range(8)))

    assert {r.status for r in replies} == {200}
    assert sorted(r.body["status"] for r in replies) == ["accepted"] + ["duplicate"] * 7
    found = await served.history(ORDER_ID)
    assert len(found.events) == 1
    assert outcomes(found) == [("enqueue", "enqueued")]
    assert await served.counts() == {State.PENDING: 1}


async def test_one_event_through_two_subscriptions_is_stored_once(served: Served) -> None:
    first = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1", event_id="e-1")
    second = await served.deliver(fulfilled_order(), "orders/fulfilled", "w-2", event_id="e-1")

    assert first.body["status"] == "accepted"
    assert (second.status, second.body["status"]) == (200, "duplicate")
    assert len((await served.history(ORDER_ID)).events) == 1
    assert await served.counts() == {State.PENDING: 1}


async def test_a_stale_delivery_is_a_200_that_does_not_undo_the_newer_state(
    served: Served,
) -> None:
    await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")
    before = await served.outbox.get(KEY)
    old = fulfilled_order()
    old["updated_at"] = "2025-03-02T08:00:00+01:00"
    old["fulfillments"] = []
    old["fulfillment_status"] = None

    reply = await served.deliver(old, "orders/updated", "w-2")

    assert (reply.status, reply.body["status"]) == (200, "accepted")
    assert outcomes(await served.history(ORDER_ID))[-1] == ("stale", "recorded")
    after = await served.outbox.get(KEY)
    assert (after.state, after.payload) == (State.PENDING, before.payload)


async def test_a_guest_checkout_is_invited_with_the_order_email(served: Served) -> None:
    order = fulfilled_order()
    order["customer"] = None
    order["email"] = None
    order["contact_email"] = "gast@example.org"

    reply = await served.deliver(order, "orders/fulfilled", "w-1")

    assert reply.status == 200
    body = (await served.outbox.get(KEY)).body()
    assert body is not None
    assert body["customer"]["email"] == "gast@example.org"
    assert outcomes(await served.history(ORDER_ID)) == [("enqueue", "enqueued")]


async def test_a_test_order_is_a_200_journaled_as_skipped(served: Served) -> None:
    """Skipped on purpose, so Shopify must not retry it: 200, the reason in the journal, no
    invite."""
    order = fulfilled_order()
    order["test"] = True

    reply = await served.deliver(order, "orders/fulfilled", "w-1")

    assert (reply.status, reply.body["status"]) == (200, "accepted")
    assert await served.counts() == {}
    found = await served.history(ORDER_ID)
    assert outcomes(found) == [("skipped", "recorded")]
    assert [str(getattr(d.decision, "reason", "")) for d in found.decisions] == ["test_order"]


async def test_an_order_without_email_is_a_200_journaled_as_skipped(served: Served) -> None:
    order = fulfilled_order()
    order["email"] = order["contact_email"] = None
    order["customer"] = None

    reply = await served.deliver(order, "orders/fulfilled", "w-1")

    assert reply.status == 200
    assert await served.counts() == {}
    found = await served.history(ORDER_ID)
    assert outcomes(found) == [("skipped", "recorded")]
    assert [str(getattr(d.decision, "reason", "")) for d in found.decisions] == ["no_email"]


async def test_a_delivery_the_adapter_skips_answers_200_with_its_reason(served: Served) -> None:
    reply = await served.deliver(payload("customers_data_request"), "customers/data_request", "w-1")

    assert reply.status == 200
    assert reply.body == {"status": "skipped", "delivery_id": "w-1", "reason": "data_request"}
    assert await served.counts() == {}
    again = await served.deliver(payload("customers_data_request"), "customers/data_request", "w-1")
    assert again.body["status"] == "duplicate"


async def test_a_cancellation_inside_the_hold_back_cancels_the_invite(served: Served) -> None:
    await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")

    reply = await served.deliver(cancelled_order(), "orders/cancelled", "w-2")

    assert (reply.status, reply.body["status"]) == (200, "accepted")
    assert (await served.outbox.get(KEY)).state is State.CANCELLED
    found = await served.history(ORDER_ID)
    assert outcomes(found) == [("enqueue", "enqueued"), ("cancel", "cancelled")]
    assert found.waiting == frozenset()


async def test_a_cancellation_after_delivery_is_recorded_and_undoes_nothing(
    served: Served,
) -> None:
    """The invite went out after its hold-back; a later cancellation is journaled as
    already sent and the delivered entry stays delivered."""
    await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")
    clock = served.kit.clock
    clock.now = (await served.outbox.get(KEY)).due_at + 1
    client = FakeDeliveryClient(clock=clock)
    await Flusher(served.outbox, client, clock=clock).run_once()
    delivered = await served.outbox.get(KEY)
    assert delivered.state is State.DELIVERED
    assert len(client.posts) == 1

    reply = await served.deliver(cancelled_order(), "orders/cancelled", "w-2")

    assert (reply.status, reply.body["status"]) == (200, "accepted")
    after = await served.outbox.get(KEY)
    assert (after.state, after.event_ref) == (State.DELIVERED, delivered.event_ref)
    assert outcomes(await served.history(ORDER_ID))[-1] == ("recorded", "already_sent")


async def test_a_partial_refund_drops_the_refunded_product(served: Served) -> None:
    await served.deliver(fulfilled_order(), "orders/fulfilled", "w-1")
    refund = payload("refund_create")
    refund["refund_line_items"][0]["quantity"] = 2  # both pairs of socks go back

    reply = await served.deliver(refund, "refunds/create", "w-2")

    assert reply.status == 200
    body = (await served.outbox.get(KEY)).body()
    assert body is not None
    assert [p["sku"] for p in body["products"]] == ["HAT-MER-GR"]
    assert outcomes(await served.history(ORDER_ID))[-1] == ("amend", "amended")


async def test_an_unknown_source_is_a_404_and_nothing_stored(served: Served) -> None:
    """``install`` routes only the configured names: any other is aiohttp's own 404."""
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")

    reply = await served.post(headers, raw, path="/webhooks/other-shop")

    assert reply.status == 404
    await assert_nothing_stored(served)
    assert await served.history(ORDER_ID, source="other-shop") == StreamHistory()


async def test_the_answer_is_json_whatever_the_outcome(served: Served) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    async with served.session.post(
        served.server.make_url("/webhooks/my-shop"), headers=headers, data=raw
    ) as response:
        assert response.content_type == "application/json"
        assert json.loads(await response.read()) == {"status": "accepted", "delivery_id": "w-1"}
