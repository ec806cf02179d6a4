"""Customer data leaves the journal with the outbox's: redact requests, forget, purge.

The journal keeps each row's skeleton (kind, stream, key, outcome) for explain; the bodies and
e-mail hashes, which hold or identify the customer, go.
"""

from __future__ import annotations

import attrs
import pytest

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.errors import ErasureInFlightError
from kit.journal.records import IngestStatus, StreamHistory
from kit.outbox.types import Claimed, Completion, Delivered, State

from .conftest import Kit, source
from .deliveries import EMAIL, KEY, ORDER_ID, cancelled_order, fulfilled_order, payload, signed
from .test_ingest import deliver, history

OTHER = "5560001000777"
OTHER_KEY = KEY.replace(ORDER_ID, OTHER)


def erased(found: StreamHistory) -> bool:
    """No event body, no invite body left; the rows themselves stay."""
    return (
        bool(found.events)
        and all(e.event is None for e in found.events)
        and all(d.decision is None for d in found.decisions if d.kind == "enqueue")
    )


async def test_customers_redact_erases_the_customer_from_journal_and_outbox(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    unrelated = "5560001000999"
    await deliver(
        kit, fulfilled_order(unrelated, email="max@example.org"), "orders/fulfilled", "w-2"
    )

    result = await deliver(kit, payload("customers_redact"), "customers/redact", "w-3")

    assert result.status is IngestStatus.ACCEPTED
    assert [d.outcome.value for d in result.decisions] == ["erased"]
    entry = await kit.outbox.get(KEY)
    assert entry.state is State.CANCELLED
    assert entry.payload is None
    assert entry.email_hash is None
    found = await history(kit)
    assert erased(found)
    assert [(d.kind, d.outcome.value) for d in found.decisions] == [("enqueue", "enqueued")]
    kept = await history(kit, unrelated)
    assert all(e.event is not None for e in kept.events)
    assert (await kit.outbox.get(KEY.replace(ORDER_ID, unrelated))).payload is not None


async def test_shop_redact_erases_every_order_of_the_source(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    await deliver(kit, fulfilled_order(OTHER, email="max@example.org"), "orders/fulfilled", "w-2")

    await deliver(kit, payload("shop_redact"), "shop/redact", "w-3")

    for stream, key in ((ORDER_ID, KEY), (OTHER, OTHER_KEY)):
        assert erased(await history(kit, stream))
        entry = await kit.outbox.get(key)
        assert (entry.state, entry.payload) == (State.CANCELLED, None)


async def test_shop_redact_leaves_the_other_sources_alone(kit: Kit) -> None:
    """A shop that left takes its own data with it, and only its own: the same customer's
    order in another source of the database keeps its journal and its waiting invite."""
    outlet_domain = "kit-outlet.myshopify.com"
    outlet = attrs.evolve(
        source(),
        name="outlet",
        adapter=ShopifyAdapter(source="outlet", config=ShopifyConfig(shop_domain=outlet_domain)),
    )
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    headers, raw = signed(fulfilled_order(OTHER), "orders/fulfilled", webhook_id="w-2")
    headers["X-Shopify-Shop-Domain"] = outlet_domain
    await kit.intake.ingest_raw(outlet, headers, raw)

    await deliver(kit, payload("shop_redact"), "shop/redact", "w-3")

    assert erased(await history(kit))
    assert (await kit.outbox.get(KEY)).payload is None
    kept = await kit.intake.journal.history("outlet", OTHER)
    assert all(e.event is not None for e in kept.events)
    entry = await kit.outbox.get(f"shopify:{outlet_domain}:{OTHER}:order_shipped")
    assert (entry.state, entry.email_hash is not None) == (State.PENDING, True)
    assert entry.payload is not None


async def test_forget_customer_clears_the_journal_too(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")

    forgotten = await kit.outbox.forget_customer(EMAIL)

    assert forgotten.purged == 1
    assert erased(await history(kit))
    assert (await kit.outbox.get(KEY)).payload is None


async def test_forget_customer_clears_the_invites_of_the_streams_it_erases(kit: Kit) -> None:
    """An order whose address changed after it was placed (the invite went to the new one) is
    erased by a forget of the old address, and its invite with it: the rule of a
    ``customers/redact`` request, so no payload outlives the journal's erasure."""
    placed = fulfilled_order(email="erika.old@example.org")
    placed["updated_at"] = "2025-03-01T09:12:44+01:00"
    await deliver(kit, placed, "orders/create", "w-1")
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-2")
    assert (await kit.outbox.get(KEY)).payload is not None  # the invite, to EMAIL

    forgotten = await kit.outbox.forget_customer("erika.old@example.org")

    assert erased(await history(kit))
    entry = await kit.outbox.get(KEY)
    assert (entry.state, entry.payload, entry.email_hash) == (State.CANCELLED, None, None)
    assert forgotten.purged == 1


async def test_purge_clears_the_journal_of_finished_orders_only(kit: Kit) -> None:
    """An order whose invites all ended loses its journal data with the outbox's purge; an
    order with a waiting invite keeps what the policy still needs."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    await deliver(kit, cancelled_order(), "orders/cancelled", "w-2")
    await deliver(kit, fulfilled_order(OTHER, email="max@example.org"), "orders/fulfilled", "w-3")
    kit.clock.now += 86_400 * 30

    purged = await kit.outbox.purge(older_than=86_400)

    assert purged == 1  # the cancelled entry's payload
    assert erased(await history(kit))
    waiting = await history(kit, OTHER)
    assert all(e.event is not None for e in waiting.events)
    assert waiting.waiting == frozenset({OTHER_KEY})


async def claim_the_invite(kit: Kit) -> Claimed:
    """A flusher leases the customer's invite: its POST may be on the wire from now on."""
    entry = await kit.outbox.get(KEY)
    (claimed,) = await kit.storage.claim(owner="f", limit=10, lease_seconds=60, now=entry.due_at)
    assert claimed.key == KEY
    return claimed


async def finish_as_delivered(kit: Kit, claimed: Claimed) -> None:
    done = Completion(claimed.key, claimed.attempt, Delivered("evt-1"), entry_id=claimed.entry_id)
    assert await kit.storage.finish([done], now=kit.clock.now) == [True]


@pytest.mark.parametrize(
    ("sample", "topic"), [("customers_redact", "customers/redact"), ("shop_redact", "shop/redact")]
)
async def test_a_redact_request_waits_for_an_invite_being_sent_and_commits_nothing(
    kit: Kit, sample: str, topic: str
) -> None:
    """An erasure that finds one of its invites being sent (its payload still in use) does
    not commit a half erasure: nothing of the delivery is stored, and the error says how many
    entries were in flight, so the platform's retry finds the delivery new. Once the send has
    ended, the same delivery erases everything, that invite's payload and e-mail hash too."""
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    claimed = await claim_the_invite(kit)
    entry, journaled = await kit.outbox.get(KEY), await history(kit)

    with pytest.raises(ErasureInFlightError) as refused:
        await deliver(kit, payload(sample), topic, "w-2")

    assert (refused.value.in_flight, refused.value.source) == (1, "my-shop")
    assert refused.value.delivery_id == "w-2"
    assert EMAIL not in str(refused.value)
    assert await kit.outbox.get(KEY) == entry
    assert await history(kit) == journaled

    await finish_as_delivered(kit, claimed)
    retried = await deliver(kit, payload(sample), topic, "w-2")

    assert retried.status is IngestStatus.ACCEPTED
    assert [d.outcome.value for d in retried.decisions] == ["erased"]
    after = await kit.outbox.get(KEY)
    assert (after.state, after.payload, after.email_hash) == (State.DELIVERED, None, None)
    assert erased(await history(kit))
