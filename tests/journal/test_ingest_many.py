"""``Intake.ingest_many``: several deliveries in one transaction, each journaled and decided
exactly as ``ingest`` would, and all of them or none (a file import's batch)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kit.adapters import DeliveryIdentity, ParseResult
from kit.errors import ErasureInFlightError, PayloadError
from kit.journal.records import IngestStatus

from .conftest import Kit, history, outcomes, source
from .deliveries import KEY, ORDER_ID, cancelled_order, fulfilled_order, payload, signed


def _parsed(
    order: dict[str, object], topic: str, webhook_id: str
) -> tuple[DeliveryIdentity, ParseResult]:
    headers, raw = signed(order, topic, webhook_id=webhook_id)
    adapter = source().adapter
    lowered = {k.lower(): v for k, v in headers.items()}
    when = datetime(2025, 3, 5, tzinfo=UTC)
    return adapter.identify(lowered, raw), adapter.parse(lowered, raw, received_at=when)


async def test_a_batch_decides_each_delivery_as_ingest_would(kit: Kit) -> None:
    """Two orders and a cancellation of the first in one batch: the second is enqueued, the
    first's invite is enqueued then withdrawn within the batch, and a repeated delivery in
    the same batch is a duplicate."""
    first = _parsed(fulfilled_order("1001"), "orders/fulfilled", "w-1")
    batch = [
        first,
        _parsed(fulfilled_order("1002"), "orders/fulfilled", "w-2"),
        _parsed(cancelled_order("1001"), "orders/cancelled", "w-3"),
        first,
    ]
    results = await kit.intake.ingest_many(source(), batch)
    assert [r.status for r in results] == [
        IngestStatus.ACCEPTED, IngestStatus.ACCEPTED, IngestStatus.ACCEPTED, IngestStatus.DUPLICATE,
    ]  # fmt: skip
    assert outcomes(await history(kit, "1001")) == [
        ("enqueue", "enqueued"),
        ("cancel", "cancelled"),
    ]
    assert outcomes(await history(kit, "1002")) == [("enqueue", "enqueued")]


async def test_a_failure_in_a_batch_journals_none_of_it(kit: Kit) -> None:
    """An error while one delivery of a batch is carried out rolls back the whole batch, so
    sending the batch again is safe."""
    good = _parsed(fulfilled_order("1001"), "orders/fulfilled", "w-1")
    broken = _parsed(fulfilled_order("1002"), "orders/fulfilled", "w-2")

    prepare = kit.intake._prepare
    built: list[str] = []

    def refuse_the_second(*args: object, **kwargs: object) -> object:
        built.append(str(kwargs["key"]))
        if len(built) == 2:
            raise PayloadError("the entry cannot be built")
        return prepare(*args, **kwargs)  # type: ignore[arg-type]

    kit.intake._prepare = refuse_the_second  # type: ignore[method-assign]
    with pytest.raises(PayloadError):
        await kit.intake.ingest_many(source(), [good, broken])
    assert len(built) == 2  # the first delivery was carried out before the second failed
    assert (await history(kit, "1001")).events == ()
    assert await kit.outbox.entries() == []


async def test_a_batch_with_an_erasure_that_finds_an_invite_being_sent_journals_none_of_it(
    kit: Kit,
) -> None:
    """An erasure in a batch follows the intake's rule: while one of its invites is being
    sent it raises :class:`ErasureInFlightError`, and the whole batch is rolled back, to be
    sent again once the send has ended. (A file import makes no erasures; this is the API.)"""
    await kit.intake.ingest_many(
        source(), [_parsed(fulfilled_order(ORDER_ID), "orders/fulfilled", "w-1")]
    )
    due = (await kit.outbox.get(KEY)).due_at
    await kit.storage.claim(owner="f", limit=10, lease_seconds=60, now=due)
    batch = [
        _parsed(fulfilled_order("1002"), "orders/fulfilled", "w-2"),
        _parsed(payload("customers_redact"), "customers/redact", "w-3"),
    ]

    with pytest.raises(ErasureInFlightError) as refused:
        await kit.intake.ingest_many(source(), batch)

    assert (refused.value.delivery_id, refused.value.in_flight) == ("w-3", 1)
    assert (await history(kit, "1002")).events == ()
    assert [e.key for e in await kit.outbox.entries()] == [KEY]
    assert all(e.event is not None for e in (await history(kit, ORDER_ID)).events)
