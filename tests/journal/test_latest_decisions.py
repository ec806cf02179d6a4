"""The journal's newest decisions across all streams, newest first, with what each decided
and why (the operator page's list): on memory, a SQLite file and PostgreSQL."""

from __future__ import annotations

from kit.journal.explain import decision_facts
from kit.journal.records import Outcome

from .conftest import Kit, deliver
from .deliveries import KEY, ORDER_ID, fulfilled_order

OTHER = "5560001000777"


async def test_the_newest_decisions_come_first_with_their_skip_reason(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    test_order = fulfilled_order(OTHER, email="max@example.org")
    test_order["test"] = True
    await deliver(kit, test_order, "orders/fulfilled", "w-2")

    latest = await kit.intake.journal.latest_decisions(10)

    assert [(d.source, d.stream, d.row.kind, d.row.outcome) for d in latest] == [
        ("my-shop", OTHER, "skipped", Outcome.RECORDED),
        ("my-shop", ORDER_ID, "enqueue", Outcome.ENQUEUED),
    ]
    assert latest[0].row.seq > latest[1].row.seq
    assert decision_facts(latest[0].row).reason == "test_order"
    assert latest[1].row.key == KEY


async def test_the_limit_keeps_only_the_newest(kit: Kit) -> None:
    await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1")
    await deliver(kit, fulfilled_order(OTHER), "orders/fulfilled", "w-2")

    (newest,) = await kit.intake.journal.latest_decisions(1)

    assert newest.stream == OTHER
    assert await kit.intake.journal.latest_decisions(0) == []
