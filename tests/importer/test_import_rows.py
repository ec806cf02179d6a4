"""The importer's promises on a real outbox and journal (SQLite and PostgreSQL): bad rows are
reported by line and reason while good rows are kept, a re-import adds nothing, a
transaction's rows make one invite, a changed transaction updates it, and imported rows go
through the source's policy like webhooks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from kit.outbox.types import State
from kit.policy import Enqueue

from .conftest import Store, delayed, import_source
from .files import HEADER

GOOD_AND_BAD = f"""{HEADER}
1042,2025-03-01T08:12:44Z,erika.muster@example.org,Erika,Muster,de_DE,2025-03-06,yes,SOCK-1,Merino Socken,https://shop.example/p/sock-1,https://cdn.example/sock.jpg,4006381333931,,Woolfolk
1042,,,,,,,,SOCK-2,Merino Socken Blau,https://shop.example/p/sock-2,,,,Woolfolk
1043,2025-03-01T10:00:00Z,guest@example.org,,,,,yes,,,,,,,
1044,2025-03-01T10:00:00Z,not-an-email,,,,,yes,,,,,,,
1045,01.03.2025,max@example.org,,,,,yes,,,,,,,
1046,2025-03-01T10:00:00Z,max@example.org,,,,,maybe,,,,,,,
1047,2025-03-01T10:00:00Z,max@example.org,,,,,yes,SKU-9,Hat,,,,,
1048,2025-03-01T10:00:00Z,max@example.org,,,,,yes
,2025-03-01T10:00:00Z,max@example.org,,,,,yes,,,,,,,
1049,2025-03-01T10:00:00,anna@example.org,,,,,yes,,,,,,,
1050,2025-03-02T09:00:00+01:00,anna@example.org,Anna,,fr-FR,2025-03-31,yes,,,,,,,
"""


def _errors(report: object) -> list[tuple[int, str]]:
    return [(e.line, e.reason) for e in report.errors]  # type: ignore[attr-defined]


async def test_bad_rows_are_reported_by_line_and_the_good_rows_kept(store: Store) -> None:
    """Every bad row is named by its line and why; the file's good transactions are journaled
    and enqueued all the same."""
    report = await store.run(GOOD_AND_BAD)
    assert _errors(report) == [
        (5, "email: not a valid e-mail address"),
        (
            6,
            "transaction_date: not a date-time with a time zone (2025-03-01T08:12:44Z) or a"
            " date (2025-03-01): '01.03.2025'",
        ),
        (7, "consent: 'maybe' is not yes, no or empty"),
        (
            8,
            "product_url: required for a product (eTrusted shows a product by its SKU, name"
            " and URL)",
        ),
        (9, "8 cells where the header has 15"),
        (10, "transaction_reference: empty"),
        (
            11,
            "transaction_date: not a date-time with a time zone (2025-03-01T08:12:44Z) or a"
            " date (2025-03-01): '2025-03-01T10:00:00'",
        ),
    ]
    assert [e.reference for e in report.errors] == [
        "1044", "1045", "1046", "1047", None, None, "1049",
    ]  # fmt: skip
    assert (report.rows, report.bad_rows, report.transactions) == (11, 7, 3)
    assert dict(report.outcomes) == {"enqueued": 3}
    entries = {e.transaction_reference: e for e in await store.entries()}
    assert sorted(entries) == ["1042", "1043", "1050"]
    body = json.loads(entries["1050"].payload or "")
    assert body["transaction"]["date"] == "2025-03-02T08:00:00.000Z"
    assert body["defaultLocale"] == "fr_FR"
    assert body["estimatedDeliveryDate"] == "2025-03-31"
    assert "products" not in json.loads(entries["1043"].payload or "")
    history = await store.history("1042")
    assert [row.kind for row in history.events] == ["order_fulfilled"]
    assert [(d.kind, d.outcome.value) for d in history.decisions] == [("enqueue", "enqueued")]


async def test_a_reimport_journals_and_enqueues_nothing_new(store: Store) -> None:
    """The same file again is folded by the journal: every transaction a duplicate, no new
    event, decision or outbox entry; its bad rows are reported again."""
    first = await store.run(GOOD_AND_BAD)
    before = await store.entries()
    again = await store.run(GOOD_AND_BAD)
    assert again.duplicates == again.transactions == first.transactions == 3
    assert dict(again.outcomes) == {}
    assert _errors(again) == _errors(first)
    assert await store.entries() == before
    assert len((await store.history("1042")).events) == 1


async def test_a_transactions_rows_make_one_invite_with_every_product(store: Store) -> None:
    """Three rows of one reference are one event and one outbox entry with three products;
    the order's columns may be left empty on the later rows."""
    text = f"""{HEADER}
1042,2025-03-01T08:12:44Z,erika@example.org,Erika,Muster,de_DE,,yes,A-1,Socks,https://shop.example/a1,,,,
1042,,,,,,,,B-2,Hat,https://shop.example/b2,,,,
1042,2025-03-01T08:12:44Z,erika@example.org,,,,,,C-3,Scarf,https://shop.example/c3,,,,
1043,2025-03-01T08:12:44Z,max@example.org,,,,,yes,A-1,Socks,https://shop.example/a1,,,,
"""
    report = await store.run(text, batch=1)
    assert (report.rows, report.transactions, report.bad_rows) == (4, 2, 0)
    (entry,) = [e for e in await store.entries() if e.transaction_reference == "1042"]
    body = json.loads(entry.payload or "")
    assert [p["sku"] for p in body["products"]] == ["A-1", "B-2", "C-3"]
    assert body["customer"] == {
        "email": "erika@example.org",
        "firstName": "Erika",
        "lastName": "Muster",
    }
    assert len((await store.history("1042")).events) == 1


async def test_rows_of_one_transaction_must_be_adjacent(store: Store) -> None:
    """A reference that comes back after another transaction is refused row by row, naming
    where its rows ended; the first part of it is imported."""
    text = f"""{HEADER}
1042,2025-03-01T08:12:44Z,erika@example.org,,,,,yes,A-1,Socks,https://shop.example/a1,,,,
1043,2025-03-01T08:12:44Z,max@example.org,,,,,yes,,,,,,,
1042,,,,,,,,B-2,Hat,https://shop.example/b2,,,,
"""
    report = await store.run(text)
    assert _errors(report) == [
        (
            4,
            "not adjacent: the rows of transaction '1042' ended at line 2; sort or group the"
            " file by transaction_reference",
        )
    ]
    assert report.transactions == 2


async def test_a_later_row_may_not_contradict_the_first(store: Store) -> None:
    """A later row giving another e-mail (or date, consent, ...) than its transaction's first
    row is refused; the transaction keeps its first row's values and its other products."""
    text = f"""{HEADER}
1042,2025-03-01T08:12:44Z,erika@example.org,,,,,yes,A-1,Socks,https://shop.example/a1,,,,
1042,,other@example.org,,,,,,B-2,Hat,https://shop.example/b2,,,,
1042,,,,,,,no,C-3,Scarf,https://shop.example/c3,,,,
1042,,,,,,,,D-4,Belt,https://shop.example/d4,,,,
"""
    report = await store.run(text)
    assert _errors(report) == [
        (3, "email: differs from line 2 of the same transaction"),
        (4, "consent: differs from line 2 of the same transaction"),
    ]
    (entry,) = await store.entries()
    assert [p["sku"] for p in json.loads(entry.payload or "")["products"]] == ["A-1", "D-4"]


async def test_a_changed_transaction_updates_the_waiting_invite(store: Store) -> None:
    """A transaction imported again with other content is a new snapshot of the same order:
    the waiting invite is amended (a product added), then withdrawn (consent withdrawn)
    under ``opted_in_only``; never a second invite."""
    source = import_source(consent="opted_in_only", triggers=delayed("3d"))
    row = "1042,2025-03-01T08:12:44Z,erika@example.org,,,,,{consent},A-1,Socks,https://shop.example/a1,,,,"
    extra = "1042,,,,,,,,B-2,Hat,https://shop.example/b2,,,,"
    await store.run(f"{HEADER}\n{row.format(consent='yes')}\n", source=source)
    added = await store.run(f"{HEADER}\n{row.format(consent='yes')}\n{extra}\n", source=source)
    assert dict(added.outcomes) == {"amended": 1}
    (entry,) = await store.entries()
    assert [p["sku"] for p in json.loads(entry.payload or "")["products"]] == ["A-1", "B-2"]
    withdrawn = await store.run(f"{HEADER}\n{row.format(consent='no')}\n{extra}\n", source=source)
    assert dict(withdrawn.outcomes) == {"cancelled": 1}
    assert (await store.outbox.get(store.key("1042"))).state is State.CANCELLED
    assert len((await store.history("1042")).events) == 3


async def test_the_hold_back_counts_from_the_rows_event_date(store: Store) -> None:
    """``delay`` counts from ``event_date`` when the row gives one, else from the
    transaction's date: as a webhook's hold-back counts from when things happened."""
    source = import_source(triggers=delayed("3d"))
    text = (
        "transaction_reference,transaction_date,email,consent,event_date\n"
        "1,2025-03-01T08:00:00Z,a@example.org,yes,2025-03-05T12:00:00Z\n"
        "2,2025-03-01T08:00:00Z,b@example.org,yes,\n"
    )
    await store.run(text, source=source)
    due = {}
    for reference in ("1", "2"):
        (enqueue,) = [row.decision for row in (await store.history(reference)).decisions]
        assert isinstance(enqueue, Enqueue)
        due[reference] = enqueue.send_after
    assert due["1"] == datetime(2025, 3, 5, 12, tzinfo=UTC) + timedelta(days=3)
    assert due["2"] == datetime(2025, 3, 1, 8, tzinfo=UTC) + timedelta(days=3)


async def test_a_dry_run_writes_nothing_and_tells_what_would_happen(store: Store) -> None:
    """``dry_run`` decides every transaction on the journal's history and writes nothing;
    after the real import, the same dry run finds every transaction imported before."""
    preview = await store.run(GOOD_AND_BAD, dry_run=True)
    assert preview.dry_run
    assert dict(preview.outcomes) == {"enqueued": 3}
    assert len(preview.errors) == 7
    assert await store.entries() == []
    assert (await store.history("1042")).events == ()
    await store.run(GOOD_AND_BAD)
    again = await store.run(GOOD_AND_BAD, dry_run=True)
    assert again.duplicates == 3
    assert dict(again.outcomes) == {}
