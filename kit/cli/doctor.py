"""``etrusted-kit doctor``: check the setup against the live account; ``--fix`` repairs what it
can after showing the plan (docs/doctor.md).

Exit 0 only when every check passes. ``--fix`` asks before changing anything when stdin is a
terminal; otherwise (a script, a pipe, ``--json``) it changes nothing unless ``--yes`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping

from kit.cli._env import (
    DEFAULT_DB,
    add_db_option,
    client_config_from,
    config_path,
    db_url_from,
)
from kit.doctor import (
    Context,
    Setup,
    all_ok,
    apply,
    load_file,
    plan,
    run_checks,
)
from kit.doctor.report import document, marks_for, render, render_outcomes, render_plan
from kit.errors import ConfigError


def build_setup(args: argparse.Namespace, environ: Mapping[str, str]) -> Setup:
    """The setup as every other command would see it: flag > variable > file."""
    loaded = load_file(config_path(args, environ), environ)
    usable = loaded.usable()
    client = client_problem = None
    try:
        client = client_config_from(usable, environ)
    except ConfigError as exc:
        client_problem = str(exc)
        if loaded.config is not None:
            etrusted = loaded.config.etrusted
            unset = [
                f"[etrusted] {key} comes from ${secret.env}, which is not set"
                for key, secret in (
                    ("client_id", etrusted.client_id),
                    ("client_secret", etrusted.client_secret),
                )
                if loaded.is_unset(secret) and secret is not None
            ]
            client_problem = "; ".join([*unset, client_problem])
    outbox_url = loaded.config.outbox.url if loaded.config is not None else None
    unset_url = loaded.is_unset(outbox_url)
    url = db_url_from(args, usable, environ, default="" if unset_url else DEFAULT_DB)
    db_problem = None
    if not url and outbox_url is not None:
        db_problem = f"[outbox] url comes from ${outbox_url.env}, which is not set"
    return Setup(
        file=loaded,
        client=client,
        client_problem=client_problem,
        db_url=url or None,
        db_problem=db_problem,
    )


def _confirm(args: argparse.Namespace) -> tuple[bool, str | None]:
    """Whether to apply the plan, and why not if not."""
    if args.yes:
        return True, None
    if args.json or not sys.stdin.isatty():
        return False, "not applied: pass --yes to apply without a terminal to ask on"
    answer = input("apply these fixes? [y/N] ")
    return answer.strip().lower() in ("y", "yes"), "not applied"


async def cmd_doctor(args: argparse.Namespace) -> int:
    setup = build_setup(args, os.environ)
    marks = marks_for(getattr(sys.stdout, "encoding", None))
    async with Context(setup) as ctx:
        results = await run_checks(ctx)
        fixes = plan(p.fix for r in results for p in r.problems if p.fix is not None)
        if not args.fix:
            _show(args, document(results), render(results, marks))
            return 0 if all_ok(results) else 1
        if not args.json:
            print("\n".join(render(results, marks)))
        if not fixes:
            if args.json:
                _show(args, document(results, plan=[]), [])
            elif not all_ok(results):
                print("--fix: none of these problems can be repaired here; see each fix: line")
            return 0 if all_ok(results) else 1
        if not args.json:
            print("\n".join(render_plan(fixes)))
        go, why = await asyncio.to_thread(_confirm, args)
        if not go:
            if args.json:
                _show(args, document(results, plan=fixes), [])
            else:
                print(why)
            return 1
        outcomes = await apply(ctx, fixes)
        after = await run_checks(ctx)
    if args.json:
        _show(
            args,
            document(after, before=results, plan=fixes, applied=True, outcomes=outcomes),
            [],
        )
    else:
        print("\n".join(render_outcomes(outcomes, marks)))
        print("after fixing:")
        print("\n".join(render(after, marks)))
    return 0 if all_ok(after) else 1


def _show(args: argparse.Namespace, doc: dict[str, object], lines: list[str]) -> None:
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print("\n".join(lines))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "doctor",
        help="check the setup against the live eTrusted account; --fix repairs what it can",
        description="Check the credentials, channels, event types, invite settings, the outbox"
        " database, the sources' secrets and the clock, and say what is wrong and how to fix"
        " it. Exit 0 only when everything would work, else 1.",
    )
    add_db_option(p)
    p.add_argument(
        "--fix",
        action="store_true",
        help="create or activate missing event types, switch invites on and create or migrate"
        " the outbox, after printing the plan (asks on a terminal; else needs --yes)",
    )
    p.add_argument("--yes", action="store_true", help="with --fix: apply without asking")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_doctor)


__all__ = ["build_setup", "register"]
