"""``etrusted-kit serve``: the webhook routes of every configured source and the flusher, in
one process, until SIGTERM/SIGINT (docs/serve.md).

On start it prints one line on stdout, ``serving <url>: POST <route> (<source>, <adapter>),
...``, once the port is bound and the flusher runs: a supervisor or a test waits for that line
instead of sleeping, and with ``--port 0`` it is where the real port is read.
"""

from __future__ import annotations

import argparse

import attrs

from kit.cli._env import (
    CONFIG_VARIABLE,
    add_db_option,
    add_storage_options,
    db_url,
    file_config,
    storage_options,
)
from kit.cli.flush import (
    add_flusher_options,
    flusher_client_config,
    flusher_config,
    in_option_names,
    print_stats,
)
from kit.configfile import OutboxSettings, Secret
from kit.errors import ConfigError
from kit.serve import Listening, ServeSettings, Service
from kit.serve.settings import (
    DEFAULT_FEED_LEASE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_SHUTDOWN_GRACE,
)
from kit.signals import on_stop_signals


def listening_line(listening: Listening) -> str:
    routes = ", ".join(
        f"POST {route.path} ({route.source}, {route.adapter})" for route in listening.routes
    )
    return f"serving {listening.url}: {routes}"


def _announce(listening: Listening) -> None:
    print(listening_line(listening), flush=True)
    if listening.admin is not None:
        print(f"admin {listening.admin.url}: /healthz /readyz /metrics", flush=True)


async def cmd_serve(args: argparse.Namespace) -> int:
    flusher_cfg = flusher_config(args)
    file = file_config(args)
    if file is None:
        raise ConfigError(
            f"serve needs a configuration file with its [[sources]]: --config FILE or "
            f"{CONFIG_VARIABLE}"
        )
    url = db_url(args)
    storage_opts = storage_options(args, url)
    client_cfg = flusher_client_config(args, flusher_cfg)
    try:
        settings = ServeSettings(
            host=args.host,
            port=args.port,
            shutdown_grace=args.shutdown_grace,
            feed_lease=args.feed_lease,
        )
    except ConfigError as exc:
        raise in_option_names(exc, ServeSettings) from None
    # The outbox the flags and variables chose, over the file's.
    config = attrs.evolve(file, outbox=OutboxSettings(url=Secret(url)))
    service = Service(
        config,
        client_cfg,
        flusher_cfg,
        settings,
        storage_options=storage_opts,
        on_listening=_announce,
    )
    try:
        with on_stop_signals(service.stop):
            await service.run()
    finally:
        if service.flusher_owner is not None and service.stats is not None:
            print_stats(service.flusher_owner, service.stats)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "serve",
        help="take webhooks in for every configured source and deliver them, until SIGTERM/SIGINT",
        description="Serve POST /webhooks/NAME for every [[sources]] table of the configuration "
        "file and run the flusher, as one supervised process. SIGTERM/SIGINT: stop accepting, "
        "let requests in flight finish, stop the flusher; exit 0. A part that fails stops it "
        "all; exit 1.",
    )
    add_db_option(p)
    add_storage_options(p)
    p.add_argument(
        "--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)"
    )
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    p.add_argument(
        "--shutdown-grace",
        type=float,
        default=DEFAULT_SHUTDOWN_GRACE,
        help="on stop: seconds requests in flight may take to finish (default: %(default)s)",
    )
    p.add_argument(
        "--feed-lease",
        type=float,
        default=DEFAULT_FEED_LEASE,
        help="seconds a replica's claim to poll a source lasts unrenewed; another replica takes "
        "over within it when the holder dies (default: %(default)s)",
    )
    add_flusher_options(p)
    p.set_defaults(func=cmd_serve)


__all__ = ["listening_line", "register"]
