"""``etrusted-kit explain REF [--source NAME] [--json]``: why did this customer get an invite,
or not? An order's timeline from the journal, with its outbox entries and their attempts."""

from __future__ import annotations

import argparse
import json
import sys

from kit.cli._env import add_db_option
from kit.cli.outbox_cmds import note_if_moved, open_outbox
from kit.journal import journal_for
from kit.journal.explain import (
    EntryStory,
    OrderStory,
    decision_facts,
    explain,
    explanation_json,
    timeline_items,
    utc_text,
)
from kit.journal.records import DecisionRow, DeliveryRow, EventRow, Outcome
from kit.redact import mask_emails


async def cmd_explain(args: argparse.Namespace) -> int:
    async with open_outbox(args) as outbox:
        moved = await note_if_moved(outbox)
        stories = await explain(outbox, journal_for(outbox), args.ref, source=args.source)
    if moved is not None:
        print(moved, file=sys.stderr)
    if not stories:
        where = f" of source {args.source!r}" if args.source else ""
        print(
            f"etrusted-kit: error: nothing in the journal{where} or the outbox matches"
            f" {args.ref!r} (a transaction reference such as '#1001', or an outbox key)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print(json.dumps(explanation_json(args.ref, args.source, stories), indent=2))
        return 0
    if len(stories) > 1:
        print(
            f"etrusted-kit: {args.ref!r} matches {len(stories)} orders; each follows"
            " (--source NAME shows one)",
            file=sys.stderr,
        )
    print("\n\n".join("\n".join(story_lines(s)) for s in stories))
    return 0


def story_lines(story: OrderStory) -> list[str]:
    """The human timeline of one order: one line per delivery, event, decision and attempt."""
    timeline = story.timeline
    if timeline is None:
        lines = ["no journal: this entry was enqueued directly, not by a shop's delivery"]
    else:
        references = ", ".join(timeline.references) or "-"
        lines = [f"{timeline.source} order {timeline.stream} (reference {references})"]
        decided_by = dict(story.decided_by)
        for item in timeline_items(timeline):
            lines.append(_item_line(item, decided_by))
    for entry in story.entries:
        lines.extend(_entry_lines(entry))
    return lines


def _item_line(item: DeliveryRow | EventRow | DecisionRow, decided_by: dict[str, str]) -> str:
    if isinstance(item, DeliveryRow):
        ids = f"delivery {item.delivery_id}"
        if item.event_id:
            ids += f", event {item.event_id}"
        return f"  {utc_text(item.received_at)}  received  {item.topic or '-'} ({ids})"
    if isinstance(item, EventRow):
        erased = " (customer data erased)" if item.event is None else ""
        return f"  {utc_text(item.occurred_at)}  happened  {item.kind}{erased}"
    facts = decision_facts(item, decided_by)
    why = [
        part
        for part in (
            facts.reason,
            facts.detail,
            facts.event_type and f"{facts.event_type} on {facts.channel_id}",
            facts.send_after and f"send after {utc_text(facts.send_after)}",
        )
        if part
    ]
    line = f"  {utc_text(item.decided_at)}  decided   {item.kind}"
    if item.outcome is not Outcome.RECORDED:  # "recorded" only says nothing was carried out
        line += f" -> {item.outcome.value}"
    if why:
        line += f": {', '.join(why)}"
    if item.key:
        line += f"  [{item.key}]"
    return line


def _entry_lines(story: EntryStory) -> list[str]:
    entry = story.entry
    lines = [
        f"outbox entry {entry.key}: {entry.state.value}",
        f"  created {utc_text(entry.created_at)}, due {utc_text(entry.due_at)},"
        f" sends {entry.sends}, EventRef {entry.event_ref or '-'}"
        + (" (adopted by reconciliation)" if entry.adopted else ""),
    ]
    for a in story.attempts:
        http = "" if a.http_status is None else f" HTTP {a.http_status}"
        error = f": {mask_emails(a.error)}" if a.error else ""
        lines.append(
            f"  {utc_text(a.started_at)}  attempt {a.attempt} {a.kind.value} -> {a.outcome}"
            f"{http}{error}"
        )
    if entry.last_error and not story.attempts:
        lines.append(f"  last error: {mask_emails(entry.last_error)}")
    return lines


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "explain",
        help="why an order got an invite, or not: its journal, outbox entry and attempts",
    )
    p.add_argument("ref", metavar="REF", help="a transaction reference ('#1001') or outbox key")
    p.add_argument("--source", metavar="NAME", help="only this configured source's orders")
    p.add_argument("--json", action="store_true", help="one JSON document (docs/journal.md)")
    add_db_option(p)
    p.set_defaults(func=cmd_explain)
