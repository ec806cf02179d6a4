"""``etrusted-kit explain``: why a customer got an invite, or not, answered from a real SQLite
outbox after real signed Shopify deliveries through the intake and a flush to the sandbox.

The shop's story (one database for the module's tests, the clock fixed, so the output is
exact and docs/journal.md can show it verbatim):

- #1042 is fulfilled, flushed and delivered: its entry has an attempt and an EventRef;
- #1043 is a test order: skipped, nothing enqueued;
- #1044 is fulfilled, then cancelled inside the 3-day hold-back: the entry is cancelled;
- #1045 is fulfilled and delivered, then its customer asks to be forgotten;
- #2001 exists in two sources (my-shop and outlet);
- one entry was enqueued directly, without the journal.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from builders import event
from cli_helpers import Run

from adapters.shopify import ShopifyAdapter, ShopifyConfig
from kit.client import ETrustedClient
from kit.domain import SkipReason
from kit.flusher import Flusher
from kit.journal import Intake
from kit.journal.explain import decision_facts
from kit.journal.records import DecisionRow, Outcome
from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage
from kit.policy import Skipped
from kit.sandbox import SandboxConfig
from kit.testing import running_sandbox

from .conftest import source
from .deliveries import NOW, SHOP, cancelled_order, fulfilled_order, signed

DOC = Path(__file__).resolve().parents[2] / "docs" / "journal.md"
DELIVERED, TEST_ORDER, CANCELLED, ERASED, TWICE = (
    "5560001000001",
    "5560001000002",
    "5560001000003",
    "5560001000004",
    "5560001000005",
)
ERASED_EMAIL = "max.mustermann@example.org"
EMAILS = ("erika.muster@example.org", ERASED_EMAIL)
DIRECT_KEY = "direct-order-7"
OUTLET = "kit-outlet.myshopify.com"  # a second shop whose order numbers meet the first's
FLUSHED_AT = NOW + 3 * 86400  # after the hold-back
EVENT_REF = re.compile(r"evt-[0-9a-f-]{36}")


def key(stream: str) -> str:
    return f"shopify:{SHOP}:{stream}:order_shipped"


def order(stream: str, name: str, **changes: Any) -> dict[str, Any]:
    body = fulfilled_order(stream, **changes)
    body["name"] = name
    return body


async def build_shop(path: Path) -> None:
    """The module docstring's story, in a SQLite file at ``path``."""
    clock = lambda: NOW  # noqa: E731
    my_shop = source()
    outlet = attrs.evolve(
        my_shop,
        name="outlet",
        adapter=ShopifyAdapter(source="outlet", config=ShopifyConfig(shop_domain=OUTLET)),
    )
    test_order = order(TEST_ORDER, "#1043")
    test_order["test"] = True
    cancelled = cancelled_order(CANCELLED)
    cancelled["name"] = "#1044"
    deliveries = [
        (my_shop, order(DELIVERED, "#1042"), "orders/fulfilled"),
        (my_shop, test_order, "orders/fulfilled"),
        (my_shop, order(CANCELLED, "#1044"), "orders/fulfilled"),
        (my_shop, cancelled, "orders/cancelled"),
        (my_shop, order(ERASED, "#1045", email=ERASED_EMAIL), "orders/fulfilled"),
        (my_shop, order(TWICE, "#2001"), "orders/fulfilled"),
        (outlet, order(TWICE, "#2001"), "orders/fulfilled"),
    ]
    async with Outbox(SQLiteStorage(path), clock=clock) as outbox:
        intake = Intake(outbox, clock=clock)
        for number, (where, body, topic) in enumerate(deliveries, start=1):
            headers, raw = signed(body, topic, webhook_id=f"w-{number}")
            if where is outlet:
                headers["X-Shopify-Shop-Domain"] = OUTLET
            await intake.ingest_raw(where, headers, raw)
        await outbox.enqueue(event("direct-7"), key=DIRECT_KEY, send_after=NOW + 86400 * 30)
        config = SandboxConfig(event_types=("order_shipped",), seed=7)
        async with (
            running_sandbox(config) as server,
            ETrustedClient(server.client_config()) as client,
        ):
            stats = await Flusher(outbox, client, clock=lambda: FLUSHED_AT).run_once()
        assert stats.delivered == 4, stats  # #1042, #1045 and #2001 in each shop
        await outbox.forget_customer(ERASED_EMAIL)


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    folder = tmp_path_factory.mktemp("explain")
    asyncio.run(build_shop(folder / "shop.db"))
    return folder


@pytest.fixture
def explain(run: Run, shop_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``await explain("#1042")``: the command against the shop's database."""
    monkeypatch.chdir(shop_dir)
    monkeypatch.delenv("ETRUSTED_KIT_DB", raising=False)
    monkeypatch.delenv("ETRUSTED_KIT_CONFIG", raising=False)

    async def _explain(*argv: str) -> Any:
        result = await run("explain", *argv, "--db", "shop.db")
        for email in EMAILS:
            assert email not in result.out + result.err
        return result

    return _explain


async def test_a_delivered_invite_shows_its_journal_attempt_and_event_ref(explain: Run) -> None:
    result = await explain("#1042")

    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == f"my-shop order {DELIVERED} (reference #1042)"
    assert "received  orders/fulfilled (delivery w-1, event event-w-1)" in lines[1]
    assert lines[2].endswith("happened  order_fulfilled")
    assert "decided   enqueue -> enqueued: order_shipped on chl-" in lines[3]
    assert "send after 2025-03-07T10:14:58Z" in lines[3]
    assert lines[4] == f"outbox entry {key(DELIVERED)}: delivered"
    assert re.search(rf"sends 1, EventRef {EVENT_REF.pattern}$", lines[5])
    assert lines[6] == "  2025-03-08T12:00:00Z  attempt 1 send -> delivered HTTP 202"


async def test_an_outbox_key_finds_the_same_story_as_the_reference(explain: Run) -> None:
    by_key = await explain(key(DELIVERED))
    by_reference = await explain("#1042")

    assert by_key.code == 0
    assert by_key.out == by_reference.out


async def test_a_test_order_shows_why_it_got_no_invite(explain: Run) -> None:
    result = await explain("#1043")

    assert result.code == 0
    assert f"decided   skipped: test_order  [{key(TEST_ORDER)}]" in result.out
    assert "outbox entry" not in result.out


async def test_a_skipped_order_is_found_by_the_key_it_would_have_had(explain: Run) -> None:
    assert (await explain(key(TEST_ORDER))).out == (await explain("#1043")).out


async def test_a_cancellation_inside_the_hold_back_shows_the_cancelled_entry(
    explain: Run,
) -> None:
    result = await explain("#1044")

    lines = result.out.splitlines()
    assert [line.split("  ")[2].strip() for line in lines[1:7]] == [
        "received",
        "happened",
        "decided",
        "received",
        "happened",
        "decided",
    ]
    assert "orders/cancelled (delivery w-4" in lines[4]
    assert lines[5].endswith("happened  order_cancelled")
    assert lines[6].endswith(f"decided   cancel -> cancelled: cancelled  [{key(CANCELLED)}]")
    assert lines[7] == f"outbox entry {key(CANCELLED)}: cancelled"
    assert lines[8].endswith("sends 0, EventRef -")
    assert len(lines) == 9  # no attempt: it was never sent


async def test_an_erased_customer_keeps_the_skeleton_and_no_customer_data(explain: Run) -> None:
    """After forget: times, kinds, keys, outcomes and the EventRef stay; what the invite said
    (its channel and hold-back come from the erased body) and every e-mail are gone."""
    text = await explain("#1045")
    data = json.loads((await explain("#1045", "--json")).out)

    assert text.code == 0
    assert "happened  order_fulfilled (customer data erased)" in text.out
    assert f"decided   enqueue -> enqueued  [{key(ERASED)}]" in text.out
    assert f"outbox entry {key(ERASED)}: delivered" in text.out
    (story,) = data["orders"]
    event_item, decision = story["timeline"][1:]
    assert event_item["erased"] is True
    assert decision["erased"] is True
    assert decision["send_after"] is None
    assert story["entries"][0]["event_ref"].startswith("evt-")


async def test_a_reference_of_two_sources_shows_each_or_the_one_named(explain: Run) -> None:
    both = await explain("#2001")
    one = await explain("#2001", "--source", "outlet")

    assert both.code == 0
    headers = [line for line in both.out.splitlines() if line.endswith("(reference #2001)")]
    assert headers == [
        f"my-shop order {TWICE} (reference #2001)",
        f"outlet order {TWICE} (reference #2001)",
    ]
    assert "matches 2 orders" in both.err
    assert "--source" in both.err
    assert one.out.splitlines()[0] == f"outlet order {TWICE} (reference #2001)"
    assert f"shopify:{OUTLET}:{TWICE}:order_shipped: delivered" in one.out
    assert "my-shop" not in one.out
    assert one.err == ""


async def test_an_entry_enqueued_without_the_journal_is_found_by_its_key(explain: Run) -> None:
    result = await explain(DIRECT_KEY)

    assert result.code == 0
    assert result.out.splitlines()[:2] == [
        "no journal: this entry was enqueued directly, not by a shop's delivery",
        f"outbox entry {DIRECT_KEY}: pending",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["#9999"], id="unknown-reference"),
        pytest.param(["shopify:nowhere:1:order_shipped"], id="unknown-key"),
        pytest.param(["#1042", "--source", "outlet"], id="other-source"),
        pytest.param([DIRECT_KEY, "--source", "my-shop"], id="direct-entry-of-no-source"),
    ],
)
async def test_nothing_matching_exits_1_with_a_clear_message(explain: Run, argv: list[str]) -> None:
    result = await explain(*argv)

    assert result.code == 1
    assert result.out == ""
    assert "nothing in the journal" in result.err
    assert repr(argv[0]) in result.err


async def test_a_missing_database_is_an_error_not_an_empty_answer(run: Run, tmp_path: Path) -> None:
    result = await run("explain", "#1042", "--db", str(tmp_path / "typo.db"))

    assert result.code == 1
    assert "does not exist" in result.err
    assert not (tmp_path / "typo.db").exists()


async def test_the_json_document_has_the_documented_shape(explain: Run) -> None:
    data = json.loads((await explain("#1042", "--json")).out)

    assert set(data) == {"format", "ref", "source", "orders"}
    assert (data["format"], data["ref"], data["source"]) == (1, "#1042", None)
    (story,) = data["orders"]
    assert set(story) == {"source", "stream", "references", "timeline", "entries"}
    assert [i["type"] for i in story["timeline"]] == ["delivery", "event", "decision"]
    assert set(story["timeline"][0]) == {"type", "at", "delivery_id", "event_id", "topic"}
    assert set(story["timeline"][1]) == {
        "type", "at", "recorded_at", "seq", "kind", "reference", "erased",
    }  # fmt: skip
    assert set(story["timeline"][2]) == {
        "type", "at", "event_seq", "kind", "key", "outcome", "reason", "detail", "event_type",
        "channel_id", "send_after", "erased",
    }  # fmt: skip
    (entry,) = story["entries"]
    assert set(entry) == {
        "key", "state", "event_type", "channel_id", "transaction_reference", "event_ref",
        "created_at", "due_at", "delivered_at", "sends", "adopted", "last_error", "attempts",
    }  # fmt: skip
    (attempt,) = entry["attempts"]
    assert set(attempt) == {
        "attempt", "kind", "at", "duration_ms", "outcome", "http_status", "error",
    }  # fmt: skip
    assert (attempt["outcome"], attempt["http_status"]) == ("delivered", 202)


# -- docs/journal.md shows this shop's output verbatim ---------------------------------------


def documented_runs() -> list[Any]:
    """Each console block of docs/journal.md that runs ``etrusted-kit explain``: the command
    line and the output shown under it (if any)."""
    blocks = re.findall(r"```console\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    runs = []
    for block in blocks:
        first, _, output = block.partition("\n")
        if first.startswith("$ etrusted-kit explain "):
            runs.append(pytest.param(first.removeprefix("$ "), output, id=first[15:]))
    assert runs, "docs/journal.md shows no explain example"
    return runs


@pytest.mark.parametrize(("command", "shown"), documented_runs())
async def test_the_documented_examples_are_what_explain_prints(
    run: Run, shop_dir: Path, monkeypatch: pytest.MonkeyPatch, command: str, shown: str
) -> None:
    import shlex

    monkeypatch.chdir(shop_dir)
    argv = shlex.split(command)[1:]
    result = await run(*argv)

    assert result.code == 0
    if not shown:  # a command shown without its output (it repeats one above)
        assert result.out
    elif "--json" in argv:
        assert json.loads(result.out) == json.loads(shown)
    else:  # the sandbox numbers events in the order the flusher's concurrent posts arrive
        assert EVENT_REF.sub("evt-…", result.out) == EVENT_REF.sub("evt-…", shown)


# -- what a decision shows --------------------------------------------------------------------


def test_a_blocklist_pattern_naming_a_whole_address_is_masked() -> None:
    """A skip's detail names the matching rule; a rule may be a full e-mail address, which
    explain shows masked like any other."""
    row = DecisionRow(
        seq=1,
        event_seq=1,
        kind="skipped",
        key=key(DELIVERED),
        outcome=Outcome.RECORDED,
        decided_at=NOW,
        decision=Skipped(
            key=key(DELIVERED),
            reason=SkipReason.BLOCKED_EMAIL,
            detail="pattern 'erika.muster@example.org'",
        ),
    )

    facts = decision_facts(row)

    assert (facts.reason, facts.detail) == ("blocked_email", "pattern 'e***@example.org'")
