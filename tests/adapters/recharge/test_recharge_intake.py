"""Over HTTP, through the intake: a signed renewal is enqueued once; a tampered, wrong-secret,
stale or future-dated delivery is refused with 401 and leaves no trace; a redelivery is a
duplicate; a first charge is skipped with its reason."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import EVENT_TYPE
from recharge_deliveries import NOW, ORDER_ID, SHOP, SIGNED_AT, SOURCE, charge, delivery
from webhooks.conftest import Served

from kit.outbox import State

ROUTE = f"/webhooks/{SOURCE}"
KEY = f"shopify:{SHOP}:{ORDER_ID}:{EVENT_TYPE}"


async def post(shop: Served, body: Any, **options: Any) -> tuple[int, dict[str, Any]]:
    reply = await shop.post(*delivery(body, **options), path=ROUTE)
    return reply.status, reply.body


async def assert_nothing_stored(shop: Served) -> None:
    assert await shop.counts() == {}
    history = await shop.history(ORDER_ID, SOURCE)
    assert (history.events, history.decisions) == ((), ())


@pytest.mark.parametrize("version", ["2021-11", "2021-01"])
async def test_a_signed_renewal_is_enqueued_under_the_shopify_order_key(
    shop: Served, version: str
) -> None:
    status, body = await post(shop, charge(version))
    assert (status, body["status"]) == (200, "accepted")
    assert await shop.counts() == {State.PENDING: 1}
    assert (await shop.outbox.get(KEY)).state is State.PENDING
    history = await shop.history(ORDER_ID, SOURCE)
    assert [e.kind for e in history.events] == ["subscription_renewed"]
    assert [(d.kind, d.outcome.value) for d in history.decisions] == [("enqueue", "enqueued")]


async def test_a_tampered_delivery_is_refused_and_enqueues_nothing(shop: Served) -> None:
    headers, data = delivery(charge())
    tampered = data.replace(b"erika.muster", b"someone.else")
    reply = await shop.post(headers, tampered, path=ROUTE)
    assert (reply.status, reply.body) == (401, {"error": "bad_signature"})
    await assert_nothing_stored(shop)


@pytest.mark.parametrize("scheme", ["timestamped", "legacy"])
async def test_a_wrong_secret_is_refused_and_enqueues_nothing(shop: Served, scheme: str) -> None:
    status, body = await post(shop, charge(), secret="rc_someone_else", scheme=scheme)
    assert (status, body) == (401, {"error": "bad_signature"})
    await assert_nothing_stored(shop)


@pytest.mark.parametrize(
    ("signed_at", "error"),
    [(NOW - 48 * 3600 - 1, "stale_timestamp"), (NOW + 301, "future_timestamp")],
)
async def test_a_delivery_signed_outside_the_window_is_refused(
    shop: Served, signed_at: int, error: str
) -> None:
    """A captured delivery replayed after Recharge's retry window, or dated ahead."""
    status, body = await post(shop, charge(), signed_at=signed_at)
    assert (status, body) == (401, {"error": error})
    await assert_nothing_stored(shop)


async def test_a_signatures_age_is_judged_by_the_intakes_clock(shop: Served) -> None:
    """The intake's clock (injected, as in tests and replays) is the "now" a timestamped
    signature is dated against, as for Stripe: a month on, a delivery signed then gets in and
    one signed a month earlier is stale."""
    later = NOW + 30 * 86400
    shop.kit.clock.now = later
    status, body = await post(shop, charge(), signed_at=NOW)
    assert (status, body) == (401, {"error": "stale_timestamp"})
    await assert_nothing_stored(shop)

    status, body = await post(shop, charge(), signed_at=later)
    assert (status, body["status"]) == (200, "accepted")
    assert await shop.counts() == {State.PENDING: 1}


async def test_a_redelivery_is_a_duplicate_and_enqueues_nothing_more(shop: Served) -> None:
    """Recharge's retry (the same bytes, signed again later) and a verbatim replay inside the
    window are recognised by the hash of topic and body."""
    first = await post(shop, charge())
    retry = await post(shop, charge(), signed_at=SIGNED_AT + 60)
    replay = await post(shop, charge())
    legacy = await post(shop, charge(), scheme="legacy")
    assert [r[1]["status"] for r in (first, retry, replay, legacy)] == [
        "accepted",
        "duplicate",
        "duplicate",
        "duplicate",
    ]
    assert await shop.counts() == {State.PENDING: 1}
    history = await shop.history(ORDER_ID, SOURCE)
    assert len(history.events) == 1
    assert len(history.decisions) == 1


async def test_the_first_charge_is_journaled_but_no_renewal_invite(shop: Served) -> None:
    """A ``subscription_renewed`` trigger does not fire on the first purchase."""
    body = charge()
    body["charge"]["type"] = "checkout"
    status, answer = await post(shop, body)
    assert (status, answer["status"]) == (200, "accepted")
    assert await shop.counts() == {}
    history = await shop.history(ORDER_ID, SOURCE)
    assert [e.kind for e in history.events] == ["subscription_renewed"]
    assert [d.kind for d in history.decisions] == ["recorded"]


async def test_a_charge_of_another_type_is_skipped_with_its_reason(shop: Served) -> None:
    body = charge()
    body["charge"]["type"] = "manual"
    status, answer = await post(shop, body)
    assert (status, answer["status"], answer["reason"]) == (200, "skipped", "not_renewal")
    await assert_nothing_stored(shop)


async def test_the_renewals_of_one_subscription_are_counted_across_its_charges(
    shop: Served,
) -> None:
    """Recharge does not number renewals; the journal counts the subscription's earlier charges,
    so with the default ``renewals = "first"`` only the first renewal is enqueued (and the
    first purchase is not counted as one)."""
    orders = []
    for n, (kind, processed) in enumerate(
        [("checkout", "2025-01-10"), ("recurring", "2025-02-10"), ("recurring", "2025-03-10")]
    ):
        body = charge()
        body["charge"].update(
            id=88000100 + n, type=kind, processed_at=f"{processed}T08:00:05+00:00"
        )
        body["charge"]["external_order_id"]["ecommerce"] = order = str(5560002000100 + n)
        orders.append(order)
        status, answer = await post(shop, body)
        assert (status, answer["status"]) == (200, "accepted")
    decided = []
    for order in orders:
        history = await shop.history(order, SOURCE)
        decided.append([(d.kind, d.outcome.value) for d in history.decisions])
    assert decided == [
        [("recorded", "recorded")],  # the first purchase: no renewal trigger fires
        [("enqueue", "enqueued")],  # renewal 1
        [("skipped", "recorded")],  # renewal 2: renewals = "first"
    ]
    third = await shop.history(orders[2], SOURCE)
    assert third.decisions[0].decision.reason.value == "renewal_not_selected"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "state"), [("refunded", State.CANCELLED), ("partially_refunded", State.PENDING)]
)
async def test_a_refund_inside_the_hold_back_withdraws_the_invite(
    shop: Served, status: str, state: State
) -> None:
    await post(shop, charge())
    assert (await shop.outbox.get(KEY)).state is State.PENDING
    refunded = charge()
    refunded["charge"].update(status=status, total_refunds="29.80")
    status_code, answer = await post(shop, refunded, topic="charge/refunded")
    assert (status_code, answer["status"]) == (200, "accepted")
    assert (await shop.outbox.get(KEY)).state is state
