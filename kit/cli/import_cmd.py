"""``etrusted-kit import FILE --source NAME``: past transactions from a CSV or JSON-lines file.

The file is streamed through the source's adapter, journal and policy, like webhooks (see
:mod:`adapters.importer`). Every refused row is printed to stderr with its line number as it
is found, and the good rows are kept; a summary follows on stdout (``--json`` for a machine).
A progress bar (rows, rate, ETA) appears on a terminal only.

Exit codes: 0 every row imported; 3 imported, but some rows were refused; 1 the file or the
configuration could not be used at all (nothing was imported).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from adapters.importer import FileFormat, ImportAdapter, Importer, ImportReport, Progress
from adapters.importer.reader import BadRow
from kit.cli._env import add_db_option, db_url, file_config, file_not_there, storage_options
from kit.cli._progress import TerminalBar
from kit.configfile import SourceConfig
from kit.errors import ConfigError
from kit.journal import Intake, IntakeSource
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage

ROWS_REFUSED = 3


def _source(args: argparse.Namespace) -> SourceConfig:
    config = file_config(args)
    if config is None:
        raise ConfigError("import reads its source from the configuration file: give --config")
    for source in config.sources:
        if source.name == args.source:
            return source
    names = ", ".join(s.name for s in config.sources) or "none"
    raise ConfigError(f"no source {args.source!r} in the configuration file; its sources: {names}")


class _Bar:
    """The progress bar on a terminal: the file's bytes (for the ETA), rows, transactions and
    rows per second; nothing at all when stderr is not a terminal."""

    def __init__(self, size: int, stream: TextIO) -> None:
        self._bar = TerminalBar(stream, desc="import", total=size, unit="B", unit_scale=True)

    def __call__(self, progress: Progress) -> None:
        fields = {
            "rows": progress.rows,
            "transactions": progress.transactions,
            "rate": f"{self._bar.per_second(progress.rows):.0f} rows/s",
        }
        self._bar.show(progress.bytes_read, fields)

    def close(self) -> None:
        self._bar.close()


def _print_bad(bad: BadRow) -> None:
    where = f" (transaction {bad.reference})" if bad.reference else ""
    print(f"line {bad.line}: {bad.reason}{where}", file=sys.stderr)


def summary_lines(report: ImportReport) -> list[str]:
    head = "dry run: " if report.dry_run else ""
    verb = "would be " if report.dry_run else ""
    lines = [
        f"{head}import of {report.path} ({report.file_format.value}, by {report.detected_by})",
        f"  {report.rows} rows: {report.rows - report.bad_rows} taken, {report.bad_rows} refused",
        f"  {report.transactions} transactions, {report.duplicates} imported before (unchanged)",
    ]
    for name, count in sorted(report.outcomes.items()):
        lines.append(f"  {count} {verb}{name}")
    if report.ignored_columns:
        lines.append(f"  columns ignored: {', '.join(report.ignored_columns)}")
    if report.dry_run:
        lines.append("  nothing was written")
    return lines


async def cmd_import(args: argparse.Namespace) -> int:
    config = _source(args)
    source = IntakeSource.from_config(config)
    if not isinstance(source.adapter, ImportAdapter):
        raise ConfigError(
            f"source {config.name!r} has adapter {config.adapter!r}: import needs a source with"
            ' adapter = "import"'
        )
    path = Path(args.file)
    size = _size(path)
    url = db_url(args)
    outbox = Outbox.from_url(url, **storage_options(args, url))
    if args.dry_run and file_not_there(outbox):
        # Nothing was imported before, and a dry run must not create the file.
        outbox = Outbox(InMemoryStorage())
    await outbox.open(migrate=not args.dry_run)
    bar = _Bar(size, sys.stderr)
    try:
        importer = Importer(
            source,
            Intake(outbox),
            batch=args.batch,
            on_bad_row=None if args.json else _print_bad,
            progress=bar,
        )
        report = await importer.run(path, file_format=args.format, dry_run=args.dry_run)
    finally:
        bar.close()
        await outbox.aclose()
    if args.json:
        print(json.dumps({"source": config.name, **report.as_dict()}))
    else:
        print("\n".join(summary_lines(report)))
    return ROWS_REFUSED if report.bad_rows else 0


def _size(path: Path) -> int:
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    return path.stat().st_size


def _batch(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"--batch must be a whole number >= 1, got {value!r}")
    return number


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "import",
        help="bring past transactions from a CSV or JSON-lines file through an import source's"
        " policy (re-importing is harmless; --dry-run writes nothing)",
    )
    p.add_argument("file", metavar="FILE", help="a .csv or .jsonl file (UTF-8)")
    p.add_argument(
        "--source", required=True, help='the [[sources]] name (adapter = "import") in the config'
    )
    p.add_argument(
        "--format",
        type=FileFormat,
        choices=list(FileFormat),
        default=None,
        help="csv or jsonl (default: by the file's extension, else its first byte)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check every row and show what the policy would decide; write nothing",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--batch",
        type=_batch,
        default=500,
        help="transactions per database transaction (default 500)",
    )
    add_db_option(p)
    p.set_defaults(func=cmd_import)


__all__ = ["ROWS_REFUSED", "cmd_import", "register", "summary_lines"]
