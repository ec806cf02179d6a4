"""``etrusted-kit flush``: the delivery daemon (or a one-shot drain with ``--once``)."""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from typing import Any

import attrs

from kit.cli._env import (
    add_db_option,
    add_storage_options,
    client_config,
    db_url,
    storage_options,
)
from kit.client import ETrustedClient
from kit.config import ClientConfig
from kit.errors import ConfigError
from kit.flusher import Flusher, FlusherConfig, FlusherStats, InDoubtPolicy
from kit.outbox import Outbox
from kit.retry import Backoff
from kit.signals import on_stop_signals

logger = logging.getLogger(__name__)


def in_option_names(exc: ConfigError, config_type: type[Any] = FlusherConfig) -> ConfigError:
    """The same complaint, naming the command-line options instead of ``config_type``'s
    fields (an attrs class whose fields the command's options mirror)."""
    message = str(exc)
    for field in attrs.fields(config_type):
        message = re.sub(rf"\b{field.name}\b", "--" + field.name.replace("_", "-"), message)
    return ConfigError(message)


def flusher_config(args: argparse.Namespace) -> FlusherConfig:
    try:
        return _flusher_config(args)
    except ConfigError as exc:
        raise in_option_names(exc) from None


def _flusher_config(args: argparse.Namespace) -> FlusherConfig:
    return FlusherConfig(
        concurrency=args.concurrency,
        lease_seconds=args.lease_seconds,
        poll_interval=args.poll_interval,
        max_sends=args.max_sends,
        reconcile_delay=args.reconcile_delay,
        reconcile_interval=args.reconcile_interval,
        reconcile_window=args.reconcile_window,
        in_doubt_policy=InDoubtPolicy(args.in_doubt),
        grace_period=args.grace_period,
        backoff=Backoff(base=args.backoff_base, cap=args.backoff_cap),
    )


def flusher_client_config(args: argparse.Namespace, config: FlusherConfig) -> ClientConfig:
    """The eTrusted client of a command that runs a flusher, checked against its tuning."""
    client_cfg = client_config(args=args, flags={"request_timeout": args.request_timeout})
    try:
        config.check_client(client_cfg)
    except ConfigError as exc:
        raise in_option_names(exc) from None
    return client_cfg


def print_stats(flusher: str, stats: FlusherStats) -> None:
    """The flusher's counters as one JSON line on stderr, as a run ends."""
    print(json.dumps({"flusher": flusher, **stats.as_dict()}), file=sys.stderr)


async def cmd_flush(args: argparse.Namespace) -> int:
    config = flusher_config(args)
    url = db_url(args)
    storage_opts = storage_options(args, url)  # refuse a wrong option before anything opens
    client_cfg = flusher_client_config(args, config)
    async with (
        Outbox.from_url(url, **storage_opts) as outbox,
        ETrustedClient(client_cfg) as client,
    ):
        flusher = Flusher(outbox, client, config)
        try:
            with on_stop_signals(flusher.stop):
                if args.once:
                    await flusher.run_once()
                else:
                    await flusher.run(until_drained=args.drain)
        finally:  # the counters also when the run ends in an error (exit code 1)
            print_stats(flusher.owner, flusher.stats)
    return 0


def add_flusher_options(p: argparse.ArgumentParser) -> None:
    defaults = FlusherConfig()
    p.add_argument("--concurrency", type=int, default=defaults.concurrency)
    p.add_argument("--lease-seconds", type=float, default=defaults.lease_seconds)
    p.add_argument("--poll-interval", type=float, default=defaults.poll_interval)
    p.add_argument("--max-sends", type=int, default=defaults.max_sends, help="attempt budget")
    p.add_argument("--reconcile-delay", type=float, default=defaults.reconcile_delay)
    p.add_argument("--reconcile-interval", type=float, default=defaults.reconcile_interval)
    p.add_argument(
        "--reconcile-window",
        type=float,
        default=defaults.reconcile_window,
        help="seconds to look for an in-doubt event in eTrusted before resending or parking",
    )
    p.add_argument(
        "--in-doubt",
        choices=[p.value for p in InDoubtPolicy],
        default=defaults.in_doubt_policy.value,
        help="after the window: resend (counted as a blind resend) or park for an operator",
    )
    p.add_argument("--grace-period", type=float, default=defaults.grace_period)
    p.add_argument("--backoff-base", type=float, default=defaults.backoff.base)
    p.add_argument("--backoff-cap", type=float, default=defaults.backoff.cap)
    p.add_argument(
        "--request-timeout", type=float, default=None, help="seconds per eTrusted request"
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "flush", help="deliver the outbox to eTrusted until SIGTERM/SIGINT (or --once)"
    )
    add_db_option(p)
    add_storage_options(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
    mode.add_argument(
        "--drain", action="store_true", help="run until nothing is pending, sending or in doubt"
    )
    add_flusher_options(p)
    p.set_defaults(func=cmd_flush)
