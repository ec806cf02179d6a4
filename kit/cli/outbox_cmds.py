"""Operator commands on the outbox: enqueue, status, entries, dead, purge, forget, migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import IO, Any

import attrs

from kit.cli._env import add_db_option, add_storage_options, db_url, storage_options
from kit.cli._progress import progress
from kit.doctor.fixes import shown_url
from kit.errors import ConfigError, OutboxError, ValidationError
from kit.outbox import Outbox, Storage, missing_sqlite_file, storage_from_url
from kit.outbox.types import Entry, NewEntry, State
from kit.signals import on_stop_signals

ENQUEUE_BATCH = 1000


@asynccontextmanager
async def open_outbox(args: argparse.Namespace, *, create: bool = False) -> AsyncIterator[Outbox]:
    """Open the outbox; only commands that add entries may create a new SQLite file.

    A mistyped ``--db`` must not answer "all zeros" from a database it just created.
    """
    url = db_url(args)
    if create:
        async with Outbox.from_url(url, **storage_options(args, url)) as outbox:
            yield outbox
        return
    _require_existing_sqlite(url, what="outbox")
    outbox = Outbox.from_url(url, **storage_options(args, url))
    await outbox.open(migrate=False)
    try:
        await _require_existing_postgres(outbox.storage)
        await outbox.storage.migrate()
        yield outbox
    finally:
        await outbox.aclose()


async def note_if_moved(outbox: Outbox) -> str | None:
    """A moved outbox takes nothing in and sends nothing any more, so what a read of it shows
    stopped at the move: the line that says so and where it went (printed on stderr), or None."""
    moved = await outbox.storage.moved_to()
    if moved is None:
        return None
    return (
        f"etrusted-kit: note: migrate-outbox moved this outbox to {shown_url(moved)};"
        " what follows is as of the move"
    )


async def _require_existing_postgres(storage: Storage) -> None:
    from kit.outbox.postgres import PostgresStorage

    if isinstance(storage, PostgresStorage) and await storage.schema_version() == 0:
        raise ConfigError(
            f"there is no outbox in schema {storage.schema!r} at {storage.url} (a mistyped"
            " --db or ?schema=?); enqueue or flush creates one"
        )


def _lines(path: str) -> Iterator[tuple[int, str]]:
    stream: IO[str]
    if path == "-":
        stream = sys.stdin
        yield from enumerate(stream, start=1)
        return
    with open(path, encoding="utf-8") as stream:
        yield from enumerate(stream, start=1)


def _unreadable(path: str) -> str | None:
    """Why ``path`` cannot be read, checked before the outbox database is opened or created."""
    if path == "-":
        return None
    if os.path.isdir(path):
        return "is a directory"
    if not os.path.exists(path):
        return "no such file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


async def cmd_enqueue(args: argparse.Namespace) -> int:
    enqueued = duplicate = invalid = 0
    problem = _unreadable(args.file)
    if problem is not None:
        print(f"etrusted-kit: error: cannot read {args.file}: {problem}", file=sys.stderr)
        return 1
    async with open_outbox(args, create=True) as outbox:
        batch: list[NewEntry] = []

        async def flush() -> None:
            nonlocal enqueued, duplicate
            if not batch:
                return
            for result in await outbox.enqueue_entries(batch, batch_size=ENQUEUE_BATCH):
                if result.duplicate:
                    duplicate += 1
                else:
                    enqueued += 1
            batch.clear()

        try:
            lines = _lines(args.file)
            for number, line in lines:
                if not line.strip():
                    continue
                try:
                    body = json.loads(line)
                except json.JSONDecodeError as exc:
                    invalid += 1
                    print(f"{args.file}:{number}: invalid JSON: {exc.msg}", file=sys.stderr)
                    continue
                except RecursionError:
                    invalid += 1
                    print(f"{args.file}:{number}: invalid JSON: nested too deeply", file=sys.stderr)
                    continue
                if not isinstance(body, dict):
                    invalid += 1
                    print(f"{args.file}:{number}: not a JSON object", file=sys.stderr)
                    continue
                try:
                    batch.append(outbox.prepare(body))
                except ValidationError as exc:
                    invalid += 1
                    fields = "; ".join(str(e) for e in exc.errors)
                    print(f"{args.file}:{number}: invalid event: {fields}", file=sys.stderr)
                    continue
                if len(batch) >= ENQUEUE_BATCH:
                    await flush()
        except (OSError, UnicodeDecodeError) as exc:
            # A file that is not UTF-8 text is as unreadable as a missing one: no traceback.
            await flush()
            print(f"etrusted-kit: error: cannot read {args.file}: {exc}", file=sys.stderr)
            return 1
        await flush()
    print(f"enqueued {enqueued}, duplicate {duplicate}, invalid {invalid}")
    return 1 if invalid else 0


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "state": entry.state.value,
        "event_ref": entry.event_ref,
        "attempts": entry.attempt,
        "sends": entry.sends,
        "last_error": entry.last_error,
        "event_type": entry.event_type,
        "channel_id": entry.channel_id,
        "transaction_reference": entry.transaction_reference,
        "created_at": entry.created_at,
        "due_at": entry.due_at,
        "delivered_at": entry.delivered_at,
        "adopted": entry.adopted,
        "blind_resends": entry.blind_resends,
    }


async def _status(outbox: Outbox) -> dict[str, Any]:
    stats = await outbox.stats()
    holds = await outbox.storage.holds(now=time.time())
    now = time.time()
    oldest = stats.oldest_pending_created_at
    due = stats.earliest_due_at
    return {
        "db": outbox.storage.url,
        "counts": {state.value: stats.counts.get(state, 0) for state in State},
        "oldest_pending_age_seconds": None if oldest is None else round(now - oldest, 1),
        # How long due work has waited; None when nothing pending is due (held back, backing
        # off, or nothing pending). This, not the oldest pending entry, is what to alert on.
        "oldest_due_age_seconds": None if due is None or due > now else round(now - due, 1),
        # Entries waiting to try again after a failure, and how long the oldest has waited
        # since it was enqueued: during an eTrusted outage nothing is due, and this grows.
        "backing_off": stats.backing_off,
        "oldest_backing_off_age_seconds": (
            None
            if stats.oldest_backing_off_created_at is None
            else round(now - stats.oldest_backing_off_created_at, 1)
        ),
        "last_error": stats.last_error,
        "blind_resends": stats.blind_resends,
        "adopted": stats.adopted,
        "holds": [
            {"name": h.name, "seconds_left": round(h.until - now, 1), "reason": h.reason}
            for h in holds
        ],
    }


def _status_lines(data: dict[str, Any]) -> list[str]:
    lines = [f"outbox {data['db']}"]
    lines += [f"  {state:<10} {count:>10}" for state, count in data["counts"].items()]
    age = data["oldest_pending_age_seconds"]
    lines.append(f"  oldest pending: {'-' if age is None else f'{age} s'}")
    waited = data["oldest_due_age_seconds"]
    lines.append(f"  due and waiting for: {'-' if waited is None else f'{waited} s'}")
    backing = data["oldest_backing_off_age_seconds"]
    lines.append(
        f"  backing off after a failure: {data['backing_off']}"
        + ("" if backing is None else f", oldest enqueued {backing} s ago")
    )
    lines.append(
        f"  adopted by reconciliation: {data['adopted']}, blind resends: {data['blind_resends']}"
    )
    lines.append(f"  last error: {data['last_error'] or '-'}")
    lines += [
        f"  HOLD {h['name']}: {h['seconds_left']} s left ({h['reason']})" for h in data["holds"]
    ]
    return lines


# Cursor home, clear the screen: a plain redraw that any terminal understands.
_REDRAW = "\x1b[H\x1b[2J"


async def cmd_status(args: argparse.Namespace) -> int:
    if args.watch is not None:
        if not sys.stdout.isatty():
            # A redrawn screen in a log or a pipe is noise; a script polls --json instead.
            print(
                "etrusted-kit: error: status --watch needs a terminal; in a script or a log,"
                " run status --json at the interval you need",
                file=sys.stderr,
            )
            return 2
        return await _watch(args, args.watch)
    async with open_outbox(args) as outbox:
        moved = await note_if_moved(outbox)
        data = await _status(outbox)
    if moved is not None:
        print(moved, file=sys.stderr)
    if args.json:
        print(json.dumps(data))
    else:
        print("\n".join(_status_lines(data)))
    return 0


async def _watch(args: argparse.Namespace, interval: float) -> int:
    """Redraw the status every ``interval`` seconds until Ctrl-C (or SIGTERM): exit 0."""
    stop = asyncio.Event()
    async with open_outbox(args) as outbox:
        with on_stop_signals(stop.set):
            while not stop.is_set():
                lines = _status_lines(await _status(outbox))
                moved = await note_if_moved(outbox)  # a redraw would wipe it from stderr
                clock = datetime.now().astimezone().strftime("%H:%M:%S")
                header = f"every {interval:g} s, Ctrl-C to stop   {clock}"
                if moved is not None:
                    lines.insert(0, moved)
                sys.stdout.write(_REDRAW + "\n".join([header, *lines]) + "\n")
                sys.stdout.flush()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
    return 0


async def _iter_entries(outbox: Outbox, state: State | None) -> AsyncIterator[Entry]:
    after = 0
    while True:
        page = await outbox.entries(state=state, limit=500, after_id=after)
        if not page:
            return
        for entry in page:
            yield entry
        after = page[-1].id


async def cmd_entries(args: argparse.Namespace) -> int:
    if args.attempts is not None:
        return await _print_attempts(args)
    state = State(args.state) if args.state else None
    async with open_outbox(args) as outbox:
        async for entry in _iter_entries(outbox, state):
            data = _entry_json(entry)
            if args.json:
                print(json.dumps(data))
            else:
                print(
                    f"{entry.state.value:<10} {entry.key}  ref={entry.event_ref or '-'}"
                    f"  attempts={entry.attempt}  {entry.last_error or ''}".rstrip()
                )
    return 0


_ATTEMPT_COLUMNS = ("attempt", "kind", "started_at", "ms", "outcome", "http", "error")


async def _print_attempts(args: argparse.Namespace) -> int:
    """One entry's attempt log: every send, deferral and reconciliation look, oldest first."""
    async with open_outbox(args) as outbox:
        await outbox.get(args.attempts)  # an unknown key is an error, not an empty log
        records = await outbox.attempts(args.attempts)
    if args.json:
        for r in records:
            print(json.dumps({**attrs.asdict(r), "kind": r.kind.value}))
        return 0
    rows = [
        [
            str(r.attempt),
            r.kind.value,
            datetime.fromtimestamp(r.started_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"{r.duration_ms:.0f}",
            r.outcome,
            "-" if r.http_status is None else str(r.http_status),
            r.error or "",
        ]
        for r in records
    ]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(_ATTEMPT_COLUMNS)]
    for row in [list(_ATTEMPT_COLUMNS), *rows]:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0


async def _state_of(outbox: Outbox, key: str) -> State | None:
    try:
        return (await outbox.get(key)).state
    except OutboxError:
        return None


async def cmd_dead(args: argparse.Namespace) -> int:
    async with open_outbox(args) as outbox:
        if args.dead_command == "list":
            async for entry in _iter_entries(outbox, State.DEAD):
                if args.json:
                    print(json.dumps(_entry_json(entry)))
                else:
                    print(f"{entry.key}\t{entry.last_error or ''}")
            return 0
        if args.all == bool(args.keys):  # neither, or both: say which is meant
            both = ", not both" if args.all else ""
            print(f"etrusted-kit: error: name KEYs or pass --all{both}", file=sys.stderr)
            return 2
        keys = None if args.all else list(dict.fromkeys(args.keys))
        before = {key: await _state_of(outbox, key) for key in keys or ()}
        if args.dead_command == "retry":
            count = await outbox.retry_dead(keys)
            print(f"{count} dead entries are pending again")
        else:
            count = await outbox.drop_dead(keys)
            print(f"{count} dead entries dropped (cancelled, payload purged)")
        problems = []
        for key, state in before.items():
            if state is None:
                problems.append(f"{key}: unknown key")
            elif state is not State.DEAD:
                problems.append(f"{key}: not dead, it is {state.value}")
            elif await _state_of(outbox, key) is State.DEAD:
                problems.append(f"{key}: dead, but its payload was purged: it cannot be sent again")
        for problem in problems:
            print(f"etrusted-kit: {problem}", file=sys.stderr)
        if problems:
            return 1
    return 0


async def cmd_purge(args: argparse.Namespace) -> int:
    async with open_outbox(args) as outbox:
        # One transaction, so no count to show: the bar says it is working, and for how long.
        with progress(sys.stderr, desc="purge", unit="entries"):
            count = await outbox.purge(older_than=args.older_than_days * 86400)
    print(f"payloads removed from {count} finished entries (keys and refs kept)")
    return 0


async def cmd_forget(args: argparse.Namespace) -> int:
    async with open_outbox(args) as outbox:
        result = await outbox.forget_customer(args.email)
    print(
        f"payloads removed: {result.purged}; still sending (run again): {result.skipped_in_flight}"
    )
    return 1 if result.skipped_in_flight else 0


def _require_existing_sqlite(url: str, *, what: str = "source outbox") -> None:
    path = missing_sqlite_file(url)
    if path is not None:
        raise ConfigError(f"the {what} {path} does not exist")


async def cmd_migrate_outbox(args: argparse.Namespace) -> int:
    from kit.outbox.move import migrate_outbox

    _require_existing_sqlite(args.source)
    source = storage_from_url(args.source)
    target = storage_from_url(args.target)
    # The source is read as it is: never migrated (or created) by this command.
    await source.open(migrate=False)
    try:
        async with target:
            total = sum((await source.stats()).counts.values())
            with progress(sys.stderr, desc="migrate-outbox", total=total, unit="entries") as bar:

                def on_batch(copied: int, skipped: int) -> None:
                    bar.show(copied + skipped, {"copied": copied, "skipped": skipped})

                report = await migrate_outbox(source, target, force=args.force, on_batch=on_batch)
    finally:
        await source.aclose()
    by_state = ", ".join(f"{k}={v}" for k, v in sorted(report.by_state.items()))
    print(
        f"copied {report.copied} entries ({by_state or 'none'}); "
        f"{report.skipped_existing} already present in the target; "
        f"{report.journal_copied} journal rows and {report.checkpoints_copied} feed checkpoints"
        " copied"
    )
    return 0


def _interval(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("enqueue", help="enqueue eTrusted events from a JSON-lines file")
    p.add_argument("file", help="JSON lines, one eTrusted event body per line; - for stdin")
    add_db_option(p)
    add_storage_options(p)
    p.set_defaults(func=cmd_enqueue)

    p = subparsers.add_parser("status", help="counts per state, oldest pending, last error")
    add_db_option(p)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--watch",
        type=_interval,
        nargs="?",
        const=2.0,
        default=None,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) on a terminal until Ctrl-C",
    )
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("entries", help="list outbox entries, or one entry's attempt log")
    add_db_option(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--state", choices=[s.value for s in State])
    which.add_argument("--attempts", metavar="KEY", help="the attempt log of one entry")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_entries)

    p = subparsers.add_parser("dead", help="inspect and replay parked (dead) entries")
    dead = p.add_subparsers(dest="dead_command", required=True)
    d = dead.add_parser("list")
    add_db_option(d)
    d.add_argument("--json", action="store_true")
    for name, text in (("retry", "make dead entries pending again"), ("drop", "drop them")):
        d = dead.add_parser(name, help=text)
        add_db_option(d)
        d.add_argument("keys", nargs="*", metavar="KEY")
        d.add_argument("--all", action="store_true", help="every dead entry (without KEYs)")
    p.set_defaults(func=cmd_dead)

    p = subparsers.add_parser("purge", help="remove customer data of finished entries")
    add_db_option(p)
    p.add_argument("--older-than-days", type=float, required=True)
    p.set_defaults(func=cmd_purge)

    p = subparsers.add_parser("forget", help="remove every stored payload of one customer")
    add_db_option(p)
    p.add_argument("email")
    p.set_defaults(func=cmd_forget)

    p = subparsers.add_parser("migrate-outbox", help="copy an outbox to another database")
    p.add_argument("--from", dest="source", required=True, help="source URL")
    p.add_argument("--to", dest="target", required=True, help="target URL")
    p.add_argument(
        "--force",
        action="store_true",
        help="even if a flusher holds live leases, or the source was moved to another target"
        " (a mistyped one: nothing may have been delivered from it)",
    )
    p.set_defaults(func=cmd_migrate_outbox)
