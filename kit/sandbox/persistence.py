"""``--state FILE``: keep a sandbox account across restarts (crash tests restart the sandbox).

The file is JSON, written atomically (temporary file, fsync, rename) so that a crash while
saving leaves the previous state intact. Tokens, faults and counters are not kept: a restarted
sandbox is a new server in front of the same account.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import attrs

from kit.errors import ConfigError
from kit.sandbox.app import Sandbox
from kit.sandbox.records import (
    AcceptedEvent,
    Channel,
    EventType,
    Invite,
    InviteConfiguration,
    InviteSettings,
    StoredEvent,
    iso,
)
from kit.sandbox.state import SandboxState

FORMAT_VERSION = 1


def dump_state(state: SandboxState) -> dict[str, Any]:
    version, internal, gauss = state.rng_state()
    return {
        "version": FORMAT_VERSION,
        "rng": [version, list(internal), gauss],
        "channels": [attrs.asdict(c) for c in state.channels.values()],
        "eventTypes": [attrs.asdict(t) for t in state.event_types.values()],
        "inviteSettings": [attrs.asdict(s) for s in state.settings.values()],
        "events": [attrs.asdict(e) for e in state.events.values()],
        "invites": [attrs.asdict(i) for i in state.invites],
        "transactions": [[*key, txn] for key, txn in state.transactions.items()],
        "customers": state.customers,
    }


def restore_state(state: SandboxState, data: dict[str, Any]) -> None:
    """Replace everything in ``state`` (which must be fresh) with the dumped account."""
    version = data.get("version") if isinstance(data, dict) else None
    if version != FORMAT_VERSION:
        raise ConfigError(f"unsupported sandbox state version {version!r}")
    rng_version, internal, gauss = data["rng"]
    state.set_rng_state((rng_version, tuple(internal), gauss))
    state.channels = {c["id"]: Channel(**c) for c in data["channels"]}
    state.event_types = {t["id"]: EventType(**t) for t in data["eventTypes"]}
    state.event_type_by_name = {t.name: t.id for t in state.event_types.values()}
    state.settings = {}
    state.settings_by_pair = {}
    for raw in data["inviteSettings"]:
        settings = InviteSettings(
            **{
                **raw,
                "product": InviteConfiguration(**raw["product"]),
                "service": InviteConfiguration(**raw["service"]),
            }
        )
        state.settings[settings.id] = settings
        state.settings_by_pair[(settings.channel_id, settings.event_type_id)] = settings.id
    state.events = {e["ref"]: StoredEvent(**e) for e in data["events"]}
    state.accepted = [
        AcceptedEvent(
            event_ref=e.ref,
            type=e.body["type"],
            channel_id=e.body["channel"]["id"],
            transaction_reference=e.body["transaction"]["reference"],
            created_at=iso(e.created_at),
            body=e.body,
        )
        for e in state.events.values()
    ]
    state.invites = []
    state.invite_index = {}
    state.channel_invites = {channel_id: [] for channel_id in state.channels}
    state.invite_search = {}
    for index, raw in enumerate(data["invites"]):
        invite = Invite(**raw)
        state.invites.append(invite)
        state.index_invite(invite, index)
    state.transactions = {(c, t, r): txn for c, t, r, txn in data["transactions"]}
    state.customers = dict(data["customers"])


def load_state(sandbox: Sandbox, path: Path) -> bool:
    """Load ``path`` into ``sandbox`` if it exists; False when there was nothing to load."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigError(f"cannot read sandbox state {path}: {exc}") from exc
    try:
        data = json.loads(text)
        restore_state(sandbox.state, data)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"sandbox state {path} is not usable: {exc}") from exc
    return True


def save_state(sandbox: Sandbox, path: Path) -> None:
    """Write the account to ``path`` atomically."""
    data = dump_state(sandbox.state)
    write_atomically(path, json.dumps(data, separators=(",", ":"), ensure_ascii=False))


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the whole new one, never a torn write."""
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as tmp:
            tmp_name = tmp.name
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc}") from exc
