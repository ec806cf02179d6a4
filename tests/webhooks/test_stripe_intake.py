"""Stripe deliveries through the real intake over HTTP (SQLite file and PostgreSQL): only
genuine, timely deliveries are stored, and the renewal policy's every option shows in the
journal and the outbox."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from journal.deliveries import CHANNEL

from adapters.stripe import StripeAdapter, StripeConfig, samples
from kit.domain import SkipReason
from kit.flusher import Flusher
from kit.journal.ingest import IntakeSource
from kit.outbox import State
from kit.outbox.sqlite import SQLiteStorage
from kit.policy import Cancel, Note, PolicyConfig, Recorded, Skipped, Throttled, Trigger
from kit.testing import FakeDeliveryClient

from .conftest import Reply, Serve, Served, open_kit

SOURCE = "billing"
ROUTE = f"/webhooks/{SOURCE}"
SECRET = "whsec_kit_test_secret_do_not_use"
OLD_SECRET = "whsec_kit_old_secret_do_not_use"
DAY = 86400
T0 = 1741599990  # the sample's paid_at: the subscription's first purchase in these tests
EMAIL = "max.beispiel@example.org"


def key(invoice: str) -> str:
    return f"stripe:{SOURCE}:{invoice}:subscription_renewed"


def stripe_source(**trigger: Any) -> IntakeSource:
    settings = {"on": "subscription_renewed", "event_type": "subscription_renewed"} | trigger
    return IntakeSource(
        name=SOURCE,
        adapter=StripeAdapter(source=SOURCE, config=StripeConfig()),
        policy=PolicyConfig(channel_id=CHANNEL, triggers=(Trigger(**settings),)),
        secrets=(OLD_SECRET, SECRET),
    )


Start = Callable[..., Awaitable[Served]]


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def start(request: pytest.FixtureRequest, serve: Serve, tmp_path: Path) -> Start:
    """Serve the Stripe source, with the trigger settings given, on a fresh kit of the
    backend (a SQLite file or a PostgreSQL schema); ``serve`` closes it after the test."""

    postgres: tuple[str, str] | None = None
    if request.param == "postgres":
        postgres = (request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema"))

    async def started(**trigger: Any) -> Served:
        if postgres is None:
            path = tmp_path / "outbox.db"
            kit = await open_kit("sqlite", SQLiteStorage(path), None)
        else:
            from kit.outbox.postgres import PostgresStorage

            dsn, schema = postgres
            kit = await open_kit("postgres", PostgresStorage(dsn, schema=schema), None)
        return await serve(kit, [stripe_source(**trigger)])

    return started


@pytest.fixture
async def billing(start: Start) -> Served:
    """The Stripe source with the default renewal trigger."""
    return await start()


async def send(
    served: Served,
    event: dict[str, Any] | bytes,
    *,
    signed_at: int,
    received_at: int | None = None,
    secret: str = SECRET,
    tamper: bool = False,
) -> Reply:
    """Sign ``event`` at ``signed_at`` and post it; the intake's clock reads ``received_at``."""
    served.kit.clock.now = float(signed_at if received_at is None else received_at)
    headers, raw = samples.signed_delivery(event, secret=secret, timestamp=signed_at)
    if tamper:
        raw = raw.replace(b'"amount_paid": 1990', b'"amount_paid": 1')
    return await served.post(headers, raw, path=ROUTE)


def renewal(n: int, *, subscription: str = "sub_A", email: str = EMAIL) -> dict[str, Any]:
    """Charge ``n`` of ``subscription`` (0: the first purchase), a month apart."""
    paid = T0 + 30 * DAY * n
    return samples.invoice_paid(
        event_id=f"evt_{subscription}_{n}",
        invoice_id=f"in_{subscription}_{n}",
        number=f"{subscription.upper()}-{n:04d}",
        billing_reason="subscription_create" if n == 0 else "subscription_cycle",
        subscription=subscription,
        email=email,
        paid_at=paid,
    )


async def charge(served: Served, event: dict[str, Any]) -> Reply:
    """Deliver ``event`` a few seconds after Stripe created it."""
    created = int(event["created"])
    return await send(served, event, signed_at=created, received_at=created + 3)


async def pending(served: Served) -> list[str]:
    return sorted(e.key for e in await served.outbox.entries(state=State.PENDING))


async def decisions(served: Served, stream: str) -> list[tuple[str, str]]:
    found = await served.history(stream, source=SOURCE)
    return [(d.kind, d.outcome.value) for d in found.decisions]


# -- only genuine, timely deliveries ---------------------------------------------------------


async def test_a_signed_renewal_is_stored_and_enqueued(billing: Served) -> None:
    """The reference's invoice.paid, signed with the current secret, becomes one invite with
    the invoice's number, customer and product."""
    event = samples.invoice_paid()
    reply = await charge(billing, event)
    assert reply.status == 200
    assert reply.body == {"status": "accepted", "delivery_id": "evt_1KitDemo000000000000001"}
    (entry,) = await billing.outbox.entries()
    assert entry.key == key("in_1KitDemo00000000000000A1")
    assert entry.state is State.PENDING
    body = entry.body()
    assert body is not None
    assert body["transaction"]["reference"] == "KITDEMO-0007"
    assert body["customer"]["email"] == EMAIL
    assert (body["customer"]["firstName"], body["customer"]["lastName"]) == ("Max", "Beispiel")
    assert body["type"] == "subscription_renewed"


async def test_a_delivery_signed_with_the_old_secret_still_gets_in(billing: Served) -> None:
    reply = await send(
        billing, samples.invoice_paid(), signed_at=T0 + 10, received_at=T0 + 12, secret=OLD_SECRET
    )
    assert reply.status == 200


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"tamper": True}, "bad_signature"),
        ({"secret": "whsec_someone_else"}, "bad_signature"),
        ({"received_at": T0 + 10 + 3 * DAY}, "stale_timestamp"),  # a replay days later
        ({"received_at": T0 + 10 + 301}, "stale_timestamp"),
        ({"received_at": T0 + 10 - 301}, "future_timestamp"),
    ],
    ids=["tampered", "wrong-secret", "replayed", "stale-timestamp", "future-timestamp"],
)
async def test_a_forged_or_untimely_delivery_is_refused_and_stores_nothing(
    billing: Served, options: dict[str, Any], reason: str
) -> None:
    event = samples.invoice_paid()
    reply = await send(billing, event, signed_at=T0 + 10, **options)
    assert (reply.status, reply.body) == (401, {"error": reason})
    assert await billing.outbox.entries() == []
    assert (await billing.history("in_1KitDemo00000000000000A1", source=SOURCE)).events == ()
    # Nothing of it was journaled either: the genuine delivery is new, not a duplicate.
    genuine = await send(billing, event, signed_at=T0 + 10, received_at=T0 + 11)
    assert genuine.body["status"] == "accepted"


async def test_a_redelivery_inside_the_tolerance_is_a_duplicate(billing: Served) -> None:
    event = samples.invoice_paid()
    await send(billing, event, signed_at=T0 + 10, received_at=T0 + 11)
    again = await send(billing, event, signed_at=T0 + 100, received_at=T0 + 101)
    assert again.body == {"status": "duplicate", "delivery_id": "evt_1KitDemo000000000000001"}
    assert len(await billing.outbox.entries()) == 1


# -- the renewal policy, option by option ----------------------------------------------------


async def test_first_renewal_only_by_default(billing: Served) -> None:
    """The first purchase is no renewal, renewal 1 is invited, renewal 2 is skipped with the
    reason; the journal counts the renewals from the subscription's earlier invoices."""
    replies = [await charge(billing, renewal(n)) for n in range(3)]
    assert [r.status for r in replies] == [200, 200, 200]
    assert await pending(billing) == [key("in_sub_A_1")]
    assert await decisions(billing, "in_sub_A_0") == [("recorded", "recorded")]
    assert await decisions(billing, "in_sub_A_1") == [("enqueue", "enqueued")]
    (row,) = (await billing.history("in_sub_A_2", source=SOURCE)).decisions
    assert row.decision == Skipped(
        key=key("in_sub_A_2"),
        reason=SkipReason.RENEWAL_NOT_SELECTED,
        detail="renewal 2; renewals = 'first'",
    )


async def test_all_renewals(start: Start) -> None:
    billing = await start(renewals="all", per_customer="0d")
    for n in range(4):
        await charge(billing, renewal(n))
    assert await pending(billing) == [key(f"in_sub_A_{n}") for n in (1, 2, 3)]


async def test_every_nth_renewal(start: Start) -> None:
    billing = await start(renewals="every_nth", nth=2, per_customer="0d")
    for n in range(1, 6):
        await charge(billing, renewal(n))
    assert await pending(billing) == [key("in_sub_A_2"), key("in_sub_A_4")]
    (row,) = (await billing.history("in_sub_A_3", source=SOURCE)).decisions
    assert isinstance(row.decision, Skipped)
    assert row.decision.detail == "renewal 3; renewals = 'every_nth', nth = 2"


async def test_per_customer_throttle_across_two_subscriptions(start: Start) -> None:
    """One customer, two subscriptions, every renewal: the second subscription's renewal inside
    90 days of the first invite is throttled (journaled with the invite it defers to); one
    after the window gets its invite; another customer is not affected."""
    billing = await start(renewals="all")
    await charge(billing, renewal(1, subscription="sub_A"))
    await charge(billing, renewal(2, subscription="sub_B"))  # 30 days later
    await charge(billing, renewal(2, subscription="sub_C", email="other@example.org"))
    await charge(billing, renewal(5, subscription="sub_B"))  # 120 days after sub_A's invite
    assert await pending(billing) == [key("in_sub_A_1"), key("in_sub_B_5"), key("in_sub_C_2")]
    (row,) = (await billing.history("in_sub_B_2", source=SOURCE)).decisions
    assert isinstance(row.decision, Throttled)
    assert row.decision.last_invite_at.timestamp() == T0 + 30 * DAY


TAKE_BACKS: list[Callable[[str, int], dict[str, Any]]] = [
    lambda invoice, at: samples.charge_refunded(invoice, event_id="evt_re", created=at),
    lambda invoice, at: samples.credit_note_created(
        invoice, ["il_KitDemo01"], event_id="evt_cn", created=at
    ),
    lambda invoice, at: samples.dispute_created(event_id="evt_dp", created=at, invoice_id=invoice),
]


@pytest.mark.parametrize(
    "take_back",
    TAKE_BACKS,
    ids=["charge.refunded", "credit_note.created", "charge.dispute.created"],
)
async def test_a_refund_inside_the_hold_back_cancels_the_waiting_invite(
    start: Start, take_back: Any
) -> None:
    billing = await start(delay="2d")
    await charge(billing, renewal(1))
    assert await pending(billing) == [key("in_sub_A_1")]

    reply = await charge(billing, take_back("in_sub_A_1", T0 + 31 * DAY))

    assert reply.body["status"] == "accepted"
    entry = await billing.outbox.get(key("in_sub_A_1"))
    assert entry.state is State.CANCELLED
    history = await billing.history("in_sub_A_1", source=SOURCE)
    assert [row.kind for row in history.events] == ["subscription_renewed", "order_refunded"]
    reason = SkipReason.DISPUTED if take_back is TAKE_BACKS[-1] else SkipReason.REFUNDED
    assert history.decisions[-1].decision == Cancel(key=key("in_sub_A_1"), reason=reason)
    assert history.decisions[-1].outcome.value == "cancelled"


def paid_with(shape: str, n: int = 1) -> dict[str, Any]:
    """:func:`renewal` ``n`` of sub_A whose invoice names its payment (``pi_A{n}``; the legacy
    shape also its charge ``ch_for_in_sub_A_{n}``)."""
    event = renewal(n)
    invoice = event["data"]["object"]
    return samples.invoice_paid(
        shape,  # type: ignore[arg-type]
        event_id=event["id"],
        invoice_id=invoice["id"],
        number=invoice["number"],
        billing_reason=invoice["billing_reason"],
        subscription="sub_A",
        paid_at=invoice["status_transitions"]["paid_at"],
        payment_intent=f"pi_A{n}",
    )


def dispute_of(shape: str, at: int) -> dict[str, Any]:
    """A dispute of renewal 1's payment as Stripe sends it: the charge's id and payment
    intent, no invoice. The basil invoice recorded only the payment intent."""
    charge_id = "ch_for_in_sub_A_1" if shape == "legacy" else "ch_unknown_to_the_invoice"
    return samples.dispute_created(
        event_id="evt_dp", created=at, charge_id=charge_id, payment_intent="pi_A1"
    )


@pytest.mark.parametrize("shape", ["legacy", "basil"])
async def test_a_dispute_naming_only_the_charge_cancels_the_waiting_invite(
    start: Start, shape: str
) -> None:
    """A dispute names the charge and payment intent, never the invoice: it finds the
    renewal's stream through the ids the paid invoice recorded, withdraws the waiting invite,
    and the journal gives the dispute as the reason."""
    billing = await start(delay="2d")
    await charge(billing, paid_with(shape))
    assert await pending(billing) == [key("in_sub_A_1")]

    reply = await charge(billing, dispute_of(shape, T0 + 30 * DAY + 3600))

    assert reply.body["status"] == "accepted"
    assert (await billing.outbox.get(key("in_sub_A_1"))).state is State.CANCELLED
    history = await billing.history("in_sub_A_1", source=SOURCE)
    assert [(row.kind, row.event and row.event.topic) for row in history.events] == [
        ("subscription_renewed", "invoice.paid"),
        ("order_refunded", "charge.dispute.created"),
    ]
    assert history.decisions[-1].decision == Cancel(
        key=key("in_sub_A_1"), reason=SkipReason.DISPUTED
    )
    assert history.decisions[-1].outcome.value == "cancelled"


async def test_a_dispute_after_the_invite_left_is_recorded_and_undoes_nothing(
    billing: Served,
) -> None:
    """The invite reached eTrusted before the dispute: the dispute is journaled on the
    renewal's stream as already sent, and the delivered entry stays delivered."""
    await charge(billing, paid_with("legacy"))
    clock = billing.kit.clock
    clock.now = (await billing.outbox.get(key("in_sub_A_1"))).due_at + 1
    client = FakeDeliveryClient(event_types=("subscription_renewed",), clock=clock)
    await Flusher(billing.outbox, client, clock=clock).run_once()
    delivered = await billing.outbox.get(key("in_sub_A_1"))
    assert delivered.state is State.DELIVERED

    reply = await charge(billing, dispute_of("legacy", int(clock.now) + DAY))

    assert reply.body["status"] == "accepted"
    after = await billing.outbox.get(key("in_sub_A_1"))
    assert (after.state, after.event_ref) == (State.DELIVERED, delivered.event_ref)
    assert len(client.posts) == 1
    history = await billing.history("in_sub_A_1", source=SOURCE)
    assert [row.kind for row in history.events][-1] == "order_refunded"
    last = history.decisions[-1]
    assert isinstance(last.decision, Recorded)
    assert (last.decision.note, last.outcome.value) == (Note.ALREADY_SENT, "already_sent")


async def test_a_basil_refund_naming_no_invoice_cancels_the_waiting_invite(
    start: Start,
) -> None:
    """From API basil on a charge no longer names its invoice; its payment intent, which the
    basil invoice's payments recorded, links the refund to the renewal."""
    billing = await start(delay="2d")
    await charge(billing, paid_with("basil"))
    refund = samples.charge_refunded(
        "in_sub_A_1",
        event_id="evt_re",
        created=T0 + 30 * DAY + 3600,
        shape="basil",
        payment_intent="pi_A1",
    )
    assert "invoice" not in refund["data"]["object"]

    reply = await charge(billing, refund)

    assert reply.body["status"] == "accepted"
    assert (await billing.outbox.get(key("in_sub_A_1"))).state is State.CANCELLED
    history = await billing.history("in_sub_A_1", source=SOURCE)
    assert history.decisions[-1].decision == Cancel(
        key=key("in_sub_A_1"), reason=SkipReason.REFUNDED
    )


async def test_a_dispute_of_a_charge_no_invoice_recorded_stays_on_its_own_stream(
    start: Start,
) -> None:
    """A dispute whose charge and payment intent no journaled invoice named (an invoice the
    endpoint rendered without its payments, or no subscription charge at all) is journaled on
    the charge's own stream; the waiting invite is left alone."""
    billing = await start(delay="2d")
    await charge(billing, renewal(1))
    dispute = samples.dispute_created(
        event_id="evt_dp", created=T0 + 30 * DAY + 3600, payment_intent="pi_elsewhere"
    )

    reply = await charge(billing, dispute)

    assert reply.body["status"] == "accepted"
    assert await pending(billing) == [key("in_sub_A_1")]
    stray = await billing.history("ch_disputed", source=SOURCE)
    assert [row.kind for row in stray.events] == ["order_refunded"]


async def test_a_partial_refund_leaves_the_invite_waiting(billing: Served) -> None:
    await charge(billing, renewal(1))
    partial = samples.charge_refunded(
        "in_sub_A_1", event_id="evt_part", created=T0 + 31 * DAY, full=False
    )
    await charge(billing, partial)
    assert await pending(billing) == [key("in_sub_A_1")]


async def test_a_credit_note_by_amount_alone_leaves_the_invite_waiting(billing: Served) -> None:
    """A credit of part of the renewal's one line, by amount (no quantity), is not a full
    refund: the invite still goes out."""
    await charge(billing, renewal(1))
    credit = samples.credit_note_created(
        "in_sub_A_1",
        ["il_KitDemo01"],
        event_id="evt_cn_part",
        created=T0 + 31 * DAY,
        quantity=None,
        amount=500,
    )
    assert (await charge(billing, credit)).body["status"] == "accepted"
    assert await pending(billing) == [key("in_sub_A_1")]


async def test_min_subscription_age(start: Start) -> None:
    """60 days minimum, counted from the first purchase: renewal 1 (day 30) is too young,
    renewal 2 (day 60) is invited."""
    billing = await start(renewals="all", per_customer="0d", min_subscription_age="60d")
    for n in range(3):
        await charge(billing, renewal(n))
    assert await pending(billing) == [key("in_sub_A_2")]
    (row,) = (await billing.history("in_sub_A_1", source=SOURCE)).decisions
    assert isinstance(row.decision, Skipped)
    assert (row.decision.reason.value, row.decision.detail) == (
        "subscription_too_young",
        "younger than 60d",
    )
