"""eTrusted account setup through the client: event types, invite settings, channels."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from kit.cli._env import add_config_option, client_config
from kit.client import ETrustedClient
from kit.codec import to_wire
from kit.errors import NotFoundError


def _print(rows: Sequence[Any], columns: Sequence[str], as_json: bool) -> None:
    wire = [to_wire(row) for row in rows]
    if as_json:
        for item in wire:
            print(json.dumps(item))
        return
    table = [[str(item.get(c, "")) for c in columns] for item in wire]
    widths = [max([len(c)] + [len(r[i]) for r in table]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


async def cmd_event_types(args: argparse.Namespace) -> int:
    async with ETrustedClient(client_config(args=args)) as client:
        if args.et_command == "list":
            _print(await client.list_event_types(), ("id", "name", "active"), args.json)
            return 0
        if args.et_command == "create":
            created = await client.create_event_type(args.name, active=True)
            _print([created], ("id", "name", "active"), False)
            return 0
        found = await client.find_event_type(args.name)
        if found is None:
            raise NotFoundError(f"no event type named {args.name!r}")
        updated = await client.set_event_type_active(found.id, args.et_command == "activate")
        _print([updated], ("id", "name", "active"), False)
    return 0


_SETTINGS_COLUMNS = ("id", "channelId", "eventTypeId", "enabled")


async def cmd_invite_settings(args: argparse.Namespace) -> int:
    async with ETrustedClient(client_config(args=args)) as client:
        if args.is_command in ("enable", "disable"):
            return await _switch_invites(client, args, enabled=args.is_command == "enable")
        event_type_id = None
        if args.event_type:
            found = await client.find_event_type(args.event_type)
            if found is None:
                print(f"etrusted-kit: no event type named {args.event_type!r}", file=sys.stderr)
                return 1
            event_type_id = found.id
        rows = await client.list_invite_settings(
            channel_id=args.channel_id, event_type_id=event_type_id
        )
    _print(rows, _SETTINGS_COLUMNS, args.json)
    return 0


async def _switch_invites(
    client: ETrustedClient, args: argparse.Namespace, *, enabled: bool
) -> int:
    """Invites on or off for an event type, in every channel or in one. A type created through
    the API starts with invites off: eTrusted then sends none, and the kit cannot reconcile."""
    found = await client.find_event_type(args.name)
    if found is None:
        raise NotFoundError(f"no event type named {args.name!r}")
    change = {"enabled": enabled}
    if args.channel_id is None:
        rows = await client.update_invite_settings_for_event_type(found.id, change)
    else:
        rows = [
            await client.update_invite_settings(s.id, change)
            for s in await client.list_invite_settings(
                channel_id=args.channel_id, event_type_id=found.id
            )
        ]
    if not rows:
        print(
            f"etrusted-kit: no invite settings for {args.name!r} yet: eTrusted creates them"
            " shortly after the event type; try again in a moment",
            file=sys.stderr,
        )
        return 1
    _print(rows, _SETTINGS_COLUMNS, False)
    return 0


async def cmd_channels(args: argparse.Namespace) -> int:
    async with ETrustedClient(client_config(args=args)) as client:
        rows = await client.list_channels()
    _print(rows, ("id", "name", "locale", "url"), args.json)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("event-types", help="list and manage eTrusted event types")
    sub = p.add_subparsers(dest="et_command", required=True)
    s = sub.add_parser("list")
    s.add_argument("--json", action="store_true")
    add_config_option(s)
    for name in ("create", "activate", "deactivate"):
        s = sub.add_parser(name)
        s.add_argument("name")
        add_config_option(s)
    p.set_defaults(func=cmd_event_types)

    p = subparsers.add_parser("invite-settings", help="eTrusted invite settings")
    sub = p.add_subparsers(dest="is_command", required=True)
    s = sub.add_parser("list")
    s.add_argument("--channel-id")
    s.add_argument("--event-type", help="event type NAME")
    s.add_argument("--json", action="store_true")
    add_config_option(s)
    for name, what in (("enable", "send"), ("disable", "stop sending")):
        s = sub.add_parser(name, help=f"{what} invites for an event type (all channels)")
        s.add_argument("name", help="event type NAME")
        s.add_argument("--channel-id", help="only in this channel")
        add_config_option(s)
    p.set_defaults(func=cmd_invite_settings)

    p = subparsers.add_parser("channels", help="eTrusted channels")
    sub = p.add_subparsers(dest="ch_command", required=True)
    s = sub.add_parser("list")
    s.add_argument("--json", action="store_true")
    add_config_option(s)
    p.set_defaults(func=cmd_channels)
