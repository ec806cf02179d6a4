"""The cancel rules through the intake: what a cancellation, a refund or a new exclusion does to
an invite that still waits, and that nothing is undone once it left. (A cancellation inside and
after the hold-back, and a partial refund of a waiting invite, are in ``test_ingest.py``.)"""

from __future__ import annotations

from datetime import timedelta

from kit.domain import SkipReason
from kit.outbox.types import State
from kit.policy import Cancel, Exclusions, Note, Recorded, Skipped

from .conftest import Kit, decided, deliver, history, outcomes, skus
from .deliveries import (
    GIFT_CARD_LINE,
    HAT_LINE,
    KEY,
    SHIPPED_AT,
    SOCKS_LINE,
    cancelled_order,
    fulfilled_order,
    refund,
    updated,
)

EVERYTHING = {SOCKS_LINE: 2, GIFT_CARD_LINE: 1, HAT_LINE: 1}


async def test_a_full_refund_inside_the_hold_back_withdraws_the_invite(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")

    result = await deliver(kit, refund(EVERYTHING), "refunds/create", "w-2")

    assert decided(result) == [("cancel", "cancelled")]
    assert result.decisions[0].decision == Cancel(key=KEY, reason=SkipReason.REFUNDED)
    assert (await kit.outbox.get(KEY)).state is State.CANCELLED
    found = await history(kit)
    assert outcomes(found) == [("enqueue", "enqueued"), ("cancel", "cancelled")]
    assert found.waiting == frozenset()


async def test_a_refund_after_the_invite_left_is_recorded_and_undoes_nothing(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    entry = await kit.outbox.get(KEY)
    await kit.storage.claim(owner="f", limit=10, lease_seconds=60, now=entry.due_at)

    partial = await deliver(kit, refund({HAT_LINE: 1}), "refunds/create", "w-2")
    full = await deliver(kit, refund(EVERYTHING, refund_id=9100002), "refunds/create", "w-3")

    assert [d.decision for d in partial.decisions] == [
        Recorded(note=Note.ALREADY_SENT, key=KEY, detail="products or timing changed")
    ]
    assert [d.decision for d in full.decisions] == [
        Recorded(note=Note.ALREADY_SENT, key=KEY, detail="refunded")
    ]
    after = await kit.outbox.get(KEY)
    assert (after.state, after.payload) == (State.SENDING, entry.payload)
    assert outcomes(await history(kit)) == [
        ("enqueue", "enqueued"),
        ("recorded", "already_sent"),
        ("recorded", "already_sent"),
    ]


async def test_a_partial_refund_before_the_shipment_shapes_the_first_invite(kit: Kit) -> None:
    """The refund arrives first; the invite the shipment makes is about what is left."""
    refunded = await deliver(kit, refund({HAT_LINE: 1}), "refunds/create", "w-1")
    assert decided(refunded) == [("recorded", "recorded")]

    result = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-2")

    assert decided(result) == [("enqueue", "enqueued")]
    assert skus((await kit.outbox.get(KEY)).body()) == ["SOCK-MER-3942-GR"]


async def test_an_order_cancelled_before_its_shipment_arrives_is_skipped(kit: Kit) -> None:
    """Webhooks cross: the cancellation is journaled first, the shipment finds it."""
    await deliver(kit, cancelled_order(), "orders/cancelled", "w-1")

    result = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-2")

    assert [d.decision for d in result.decisions] == [Skipped(key=KEY, reason=SkipReason.CANCELLED)]
    assert await kit.storage.get(KEY) is None
    assert outcomes(await history(kit))[-1] == ("skipped", "recorded")


async def test_an_exclusion_that_appears_while_the_invite_waits_withdraws_it(kit: Kit) -> None:
    """The merchant tags the order ``wholesale`` inside the hold-back: the newer snapshot
    cancels the entry with the exclusion's reason."""
    policy = {"exclusions": Exclusions(order_tags=["wholesale"])}
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", policy=policy)
    tagged = updated(fulfilled_order(), SHIPPED_AT + timedelta(hours=4))
    tagged["tags"] = "wholesale"

    result = await deliver(kit, tagged, "orders/updated", "w-2", policy=policy)

    assert result.decisions[0].decision == Cancel(key=KEY, reason=SkipReason.EXCLUDED_ORDER_TAG)
    assert decided(result) == [("cancel", "cancelled")]
    assert (await kit.outbox.get(KEY)).state is State.CANCELLED
    assert outcomes(await history(kit)) == [("enqueue", "enqueued"), ("cancel", "cancelled")]


async def test_a_partial_refund_of_some_units_keeps_the_product_in_the_invite(kit: Kit) -> None:
    """One of two pairs of socks goes back. Shopify's later order snapshot says so twice: the
    line's ``current_quantity`` is down to 1 and its ``refunds`` list the refund. The refund
    counts once, so the socks the buyer kept stay in the waiting invite."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    await deliver(kit, refund({SOCKS_LINE: 1}), "refunds/create", "w-2")
    snapshot = updated(fulfilled_order(), SHIPPED_AT + timedelta(days=2))
    for line in snapshot["line_items"]:
        line["current_quantity"] = line["quantity"] - (line["id"] == SOCKS_LINE)
    snapshot["refunds"] = [refund({SOCKS_LINE: 1})]

    result = await deliver(kit, snapshot, "orders/updated", "w-3")

    assert decided(result) == [("recorded", "recorded")]
    entry = await kit.outbox.get(KEY)
    assert entry.state is State.PENDING
    assert skus(entry.body()) == ["SOCK-MER-3942-GR", "HAT-MER-GR"]
