"""``etrusted-kit backfill SOURCE --since DATE``: bring past orders through the source's policy.

The source's order feed is read for the window (orders by their last change), each order goes
through the same intake and policy as a webhook, and a checkpoint after every page lets a
stopped backfill of the same window resume where it stood. Hold-back delays count from when
things happened in the shop, so an order shipped long ago fires at once; ``max_age`` skips
orders too old to ask about.

``--dry-run`` decides every order without writing anything and shows what would be enqueued or
skipped and why. A progress bar appears on a terminal only (stderr); piped, the command prints
the summary alone (``--json`` for a machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from datetime import UTC, datetime, time
from typing import Any, TextIO

import aiohttp

from kit.cli._env import add_db_option, db_url, file_config, file_not_there, storage_options
from kit.cli._progress import TerminalBar
from kit.codec import parse_datetime
from kit.configfile import KitConfig, SourceConfig
from kit.errors import ConfigError
from kit.feeds import FeedWindow, WindowNotes
from kit.feeds.checkpoint import checkpoints_for
from kit.feeds.runner import FeedRunner, FeedSource, Tally
from kit.journal import Intake
from kit.outbox import Outbox
from kit.outbox.migrations import load_migrations


def parse_date(value: str) -> datetime:
    """``2025-03-01`` (midnight UTC) or an RFC 3339 date-time."""
    try:
        if len(value) == 10:
            return datetime.combine(datetime.fromisoformat(value).date(), time(), UTC)
        return parse_datetime(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date (YYYY-MM-DD) or an RFC 3339 date-time: {value!r}"
        ) from None


def _source(config: KitConfig | None, name: str) -> SourceConfig:
    if config is None:
        raise ConfigError("backfill reads its source from the configuration file: give --config")
    for source in config.sources:
        if source.name == name:
            return source
    names = ", ".join(s.name for s in config.sources) or "none"
    raise ConfigError(f"no source {name!r} in the configuration file; its sources: {names}")


class _Bar:
    """The progress bar on a terminal: how much of the window is read, orders, rate, the
    platform's remaining budget; nothing at all when stderr is not a terminal."""

    def __init__(self, window: FeedWindow, now: datetime, stream: TextIO) -> None:
        self._since = window.since
        self._span = max(1.0, ((window.until or now) - window.since).total_seconds())
        self._bar = TerminalBar(
            stream,
            desc="backfill",
            total=100.0,
            unit="%",
            bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]",
        )
        self._done = 0.0

    def __call__(self, tally: Tally) -> None:
        if not self._bar.shown:
            return
        if tally.done:
            self._done = 100.0
        elif tally.high_water is not None:
            done = (tally.high_water - self._since).total_seconds() / self._span * 100.0
            self._done = max(0.0, min(100.0, done))
        budget = tally.budget
        fields = {
            "pages": tally.pages,
            "orders": tally.orders,
            "enqueued": tally.enqueued,
            "rate": f"{self._bar.per_second(tally.orders):.1f}/s",
        }
        if budget is not None:
            fields["budget"] = f"{budget.available:.0f}/{budget.maximum:.0f}"
        self._bar.show(self._done, fields)

    def logging(self) -> contextlib.AbstractContextManager[object]:
        return self._bar.logging()

    def close(self) -> None:
        self._bar.close()


def summary_lines(source: str, window: FeedWindow, tally: Tally) -> list[str]:
    verb = "would be enqueued" if tally.dry_run else "enqueued"
    head = "dry run: " if tally.dry_run else ""
    until = window.until.isoformat() if window.until else "now"
    lines = [
        f"{head}backfill of {source} from {window.since.isoformat()} to {until}"
        + (" (resumed)" if tally.resumed else ""),
        *_verdict_lines(tally),
        f"  {tally.pages} pages, {tally.orders} orders read, {tally.stats.requests} requests"
        f" ({tally.stats.throttled} throttled, {tally.stats.failures} failed and retried)",
        f"  {tally.enqueued} invites {verb}",
        f"  {tally.duplicates} order versions already journaled",
    ]
    for reason, count in sorted(tally.skipped.items()):
        lines.append(f"  {count} skipped: {reason}")
    for kind, count in sorted(tally.other.items()):
        lines.append(f"  {count} {kind.replace('_', ' ')}")
    if tally.dry_run:
        lines.append("  nothing was written")
    return lines


_SHOWN = {"enqueue": "would enqueue", "skipped": "would skip", "cancel": "would cancel"}


def _verdict_lines(tally: Tally) -> list[str]:
    """A dry run's orders that would change something: what, and why."""
    lines = []
    for verdict in tally.verdicts:
        shown = _SHOWN.get(verdict.outcome, f"would {verdict.outcome}")
        if verdict.outcome in ("duplicate", "nothing_to_do"):
            continue
        name = verdict.reference or "?"
        detail = f": {verdict.detail}" if verdict.detail else ""
        lines.append(f"  {shown} {name} (order {verdict.stream}){detail}")
    return lines


async def cmd_backfill(args: argparse.Namespace) -> int:
    config = _source(file_config(args), args.source)
    source = FeedSource.from_config(config)
    window = FeedWindow(since=args.since, until=args.until)
    if window.until is not None and window.until <= window.since:
        raise ConfigError("--until must be later than --since")
    now = datetime.now(UTC)
    notes = list(
        source.feed.window_notes(window, now=now) if isinstance(source.feed, WindowNotes) else ()
    )
    if source.feed.max_age < now - window.since:
        notes.append(
            f"orders placed before {(now - source.feed.max_age).date().isoformat()} are skipped"
            f" too_old (max_age {source.feed.max_age.days}d)"
        )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    url = db_url(args)
    outbox = Outbox.from_url(url, **storage_options(args, url))
    if args.dry_run:
        _refuse_missing_file(outbox)
    # A dry run must not even migrate: it reads the journal as it is.
    await outbox.open(migrate=not args.dry_run)
    bar: _Bar | None = None
    try:
        if args.dry_run:
            await _refuse_unmigrated(outbox, url)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            runner = FeedRunner(
                source,
                intake=Intake(outbox),
                checkpoints=checkpoints_for(outbox),
                session=session,
            )
            bar = _Bar(window, now, sys.stderr)
            with bar.logging():
                tally = await runner.backfill(window, dry_run=args.dry_run, progress=bar)
    finally:
        if bar is not None:
            bar.close()
        await outbox.aclose()
    if args.json:
        report: dict[str, Any] = {"source": source.name, "notes": notes, **tally.as_dict()}
        if tally.dry_run:
            report["verdicts"] = [verdict.as_dict() for verdict in tally.verdicts]
        report["window"] = {
            "since": window.since.isoformat(),
            "until": window.until.isoformat() if window.until else None,
        }
        print(json.dumps(report))
    else:
        print("\n".join(summary_lines(source.name, window, tally)))
    return 0


_MIGRATE_FIRST = (
    "a dry run reads the journal and changes nothing, so run a command that creates or migrates"
    " it first (e.g. backfill without --dry-run)"
)


def _refuse_missing_file(outbox: Outbox) -> None:
    if file_not_there(outbox):
        raise ConfigError(f"there is no outbox at {outbox.storage.url}: {_MIGRATE_FIRST}")


async def _refuse_unmigrated(outbox: Outbox, url: str) -> None:
    version = getattr(outbox.storage, "schema_version", None)
    if version is None:
        return
    found = await version()
    backend = "postgres" if url.startswith(("postgresql://", "postgres://")) else "sqlite"
    if found < load_migrations(backend)[-1].version:
        where = outbox.storage.url  # without credentials
        raise ConfigError(f"the outbox at {where} is at schema version {found}: {_MIGRATE_FIRST}")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "backfill",
        help="bring a source's past orders through its policy (resumable; --dry-run writes"
        " nothing)",
    )
    p.add_argument("source", metavar="SOURCE", help="the [[sources]] name in the configuration")
    p.add_argument(
        "--since",
        type=parse_date,
        required=True,
        metavar="DATE",
        help="orders changed from this date (YYYY-MM-DD, UTC midnight, or RFC 3339)",
    )
    p.add_argument(
        "--until", type=parse_date, default=None, metavar="DATE", help="... up to this date"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="decide every order and show what would be enqueued or skipped; write nothing",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    add_db_option(p)
    p.set_defaults(func=cmd_backfill)


__all__ = ["cmd_backfill", "parse_date", "register", "summary_lines"]
