"""``etrusted-kit sandbox``: run the local eTrusted stand-in until SIGINT/SIGTERM.

Crash tests and the benchmark start it as a subprocess with ``--port 0 --ready-file F`` and wait
for F: it appears (atomically, with the URLs and pid) only once the port is listening, and it is
removed again on a graceful stop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import signal
from pathlib import Path

from kit.errors import ConfigError
from kit.sandbox import Fault, Sandbox, SandboxConfig, SandboxServer, fault_from_json
from kit.sandbox.config import SEEDED_CHANNEL_IDS
from kit.sandbox.persistence import load_state, save_state, write_atomically

logger = logging.getLogger(__name__)

_DEFAULTS = SandboxConfig()
DEFAULT_PORT = 8625


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="run a local eTrusted stand-in (offline, with fault injection)",
        description=(
            "Serve the eTrusted API on a local port: tokens, events, event types, invite "
            "settings, channels and invites, plus a /_sandbox/ control plane for faults, "
            f"stats and reset. Channels: {', '.join(SEEDED_CHANNEL_IDS)}."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to listen on; 0 picks a free one"
    )
    parser.add_argument("--client-id", default=_DEFAULTS.client_id)
    parser.add_argument("--client-secret", default=_DEFAULTS.client_secret)
    parser.add_argument(
        "--token-expires-in",
        type=int,
        default=_DEFAULTS.token_expires_in,
        help="token lifetime in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--processing-delay",
        type=float,
        default=_DEFAULTS.processing_delay,
        help="seconds until an accepted event is readable (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for ids and fault rolls")
    parser.add_argument(
        "--event-type",
        action="append",
        default=[],
        metavar="NAME",
        help="also seed this active event type, e.g. order_shipped (repeatable)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="JSON",
        help='inject a fault, e.g. \'{"kind": "status", "path": "/events", "status": 503, '
        '"times": 1}\' (repeatable)',
    )
    parser.add_argument(
        "--invites-follow-settings",
        action="store_true",
        help="create no invite for events whose invite settings are disabled (rehearses a "
        "touchpoint with invites switched off)",
    )
    parser.add_argument(
        "--state", type=Path, default=None, metavar="FILE", help="load/save the account here"
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        metavar="PATH",
        help='once listening, write {"api_url", "token_url", "pid"} here',
    )
    parser.set_defaults(func=run)


def _faults(raw: list[str]) -> list[Fault]:
    faults = []
    for text in raw:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"--fault is not valid JSON: {text!r}") from exc
        faults.append(fault_from_json(data))
    return faults


def _export(*pairs: tuple[str, str]) -> str:
    return "export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in pairs)


def _banner(server: SandboxServer) -> str:
    """Ends with the export lines the docs show: the CLI's variables, then the channel the
    documented examples send to."""
    config = server.sandbox.config
    exports = [
        _export(
            ("ETRUSTED_API_URL", server.url),
            ("ETRUSTED_TOKEN_URL", server.token_url),
            ("ETRUSTED_CLIENT_ID", config.client_id),
            ("ETRUSTED_CLIENT_SECRET", config.client_secret),
        )
    ]
    if config.channel_ids:
        exports.append(_export(("ETRUSTED_CHANNEL_ID", config.channel_ids[0])))
    return "\n".join(
        [
            "eTrusted sandbox is running (Ctrl-C to stop)",
            f"  API URL:       {server.url}",
            f"  token URL:     {server.token_url}",
            f"  client id:     {config.client_id}",
            f"  client secret: {config.client_secret}",
            f"  channels:      {', '.join(config.channel_ids)}",
            f"  control plane: {server.url}/_sandbox/",
            "Point etrusted-kit at it with:",
            *exports,
        ]
    )


async def run(args: argparse.Namespace) -> int:
    config = SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_expires_in=args.token_expires_in,
        processing_delay=args.processing_delay,
        seed=args.seed,
        event_types=tuple(dict.fromkeys([*_DEFAULTS.event_types, *args.event_type])),
        invites_follow_settings=args.invites_follow_settings,
    )
    sandbox = Sandbox(config)
    for fault in _faults(args.fault):
        sandbox.add_fault(fault)
    state_file: Path | None = args.state
    if state_file is not None and await asyncio.to_thread(load_state, sandbox, state_file):
        logger.info("state loaded", extra={"action": "sandbox_state_loaded"})
    ready_file: Path | None = args.ready_file
    if ready_file is not None:
        # A stale file must never look like this run.
        await asyncio.to_thread(ready_file.unlink, missing_ok=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except NotImplementedError:  # Windows: Ctrl-C arrives as KeyboardInterrupt instead
            continue
        signals.append(signum)
    try:
        server = SandboxServer(sandbox, host=args.host, port=args.port)
        await server.start()
        try:
            print(_banner(server), flush=True)
            if ready_file is not None:
                ready = {"api_url": server.url, "token_url": server.token_url, "pid": os.getpid()}
                await asyncio.to_thread(write_atomically, ready_file, json.dumps(ready))
            await stop.wait()
        finally:
            await server.stop()
            if ready_file is not None:
                await asyncio.to_thread(ready_file.unlink, missing_ok=True)
        if state_file is not None:
            await asyncio.to_thread(save_state, sandbox, state_file)
            logger.info("state saved", extra={"action": "sandbox_state_saved"})
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
    return 0
