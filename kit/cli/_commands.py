"""The list of subcommand modules; each contributes ``register(subparsers)``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from kit.cli import backfill as _backfill
from kit.cli import bench as _bench
from kit.cli import config_cmds as _config
from kit.cli import demo as _demo
from kit.cli import doctor as _doctor
from kit.cli import explain as _explain
from kit.cli import flush as _flush
from kit.cli import import_cmd as _import
from kit.cli import outbox_cmds as _outbox
from kit.cli import sandbox as _sandbox
from kit.cli import serve as _serve
from kit.cli import setup_cmds as _setup

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

REGISTRY: list[Register] = [
    _demo.register,
    _outbox.register,
    _flush.register,
    _serve.register,
    _setup.register,
    _sandbox.register,
    _bench.register,
    _config.register,
    _explain.register,
    _backfill.register,
    _doctor.register,
    _import.register,
]
