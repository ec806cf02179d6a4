"""The ``etrusted-kit`` command line: the only place that reads the environment.

Each subcommand lives in its own module with a ``register(subparsers)`` function that adds its
parser and sets ``func`` to an ``async def`` taking the parsed namespace and returning the exit
code. :func:`cli` is what tests call; :func:`main` only runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from kit.cli import _commands
from kit.errors import KitError
from kit.logformat import LogFormat
from kit.logformat import configure as configure_logging

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etrusted-kit",
        description="Deliver eTrusted review-invite events exactly once.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    parser.add_argument(
        "--log-format",
        choices=[f.value for f in LogFormat],
        default=LogFormat.AUTO.value,
        help="text for people, JSON lines for collectors; auto: text on a terminal, else JSON",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in _commands.REGISTRY:
        register(subparsers)
    return parser


async def cli(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv))
    configure_logging(args.verbose, LogFormat(args.log_format))
    try:
        code: int = await args.func(args)
    except KitError as exc:
        print(f"etrusted-kit: error: {exc}", file=sys.stderr)
        cause = exc.__cause__
        while cause is not None:
            print(f"  caused by: {type(cause).__name__}: {cause}", file=sys.stderr)
            cause = cause.__cause__
        if args.verbose:
            logger.exception("command failed")
        return 1
    return code


def main(argv: Sequence[str] | None = None) -> None:
    try:
        code = asyncio.run(cli(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # The reader went away (``entries --json | head``): stop quietly, and keep Python's
        # final flush of stdout from failing again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    sys.exit(code)
