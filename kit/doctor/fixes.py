"""What ``--fix`` can do: create or activate event types, switch invite settings on, create or
migrate the outbox. Each fix says what it will do before it does it.

Fixes are values, so the checks can attach them to problems and the plan can merge and order
them: outbox first, then event types, then their invite settings (a type created through the
API starts with invites off, and eTrusted creates its settings a moment later).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import attrs

from kit.doctor.context import Context
from kit.errors import KitError
from kit.outbox import storage_from_url
from kit.redact import redact_url

# How often --fix looks again for invite settings eTrusted has not created yet.
_SETTINGS_POLL = 0.5


def shown_url(url: str) -> str:
    """The outbox URL as it may be printed: the storage's own rendering (no password)."""
    try:
        return storage_from_url(url).url
    except KitError:
        return redact_url(url)


class Fix(Protocol):
    """One repair. ``order`` sorts the plan; equal ``key`` values are merged by ``merge``."""

    @property
    def order(self) -> int: ...

    @property
    def key(self) -> tuple[str, ...]: ...

    def describe(self) -> str: ...

    def merge(self, other: Any) -> Fix: ...

    async def apply(self, ctx: Context) -> str:
        """Do it; return what was done. Raises :class:`~kit.errors.KitError` on failure."""
        ...


@attrs.frozen
class CreateOutbox:
    """Create (or migrate) the outbox, as ``serve`` and ``flush`` do on their first start."""

    url: str = attrs.field(repr=False)
    order = 0

    @property
    def key(self) -> tuple[str, ...]:
        return ("outbox",)

    def describe(self) -> str:
        return f"create or migrate the outbox at {shown_url(self.url)}"

    def merge(self, other: Any) -> Fix:
        return self

    async def apply(self, ctx: Context) -> str:
        async with storage_from_url(self.url) as storage:
            version = await storage.migrate()
        return f"the outbox at {shown_url(self.url)} is at schema version {version}"


@attrs.frozen
class CreateEventType:
    name: str
    order = 1

    @property
    def key(self) -> tuple[str, ...]:
        return ("event-type", self.name)

    def describe(self) -> str:
        return f"create event type {self.name!r} (active)"

    def merge(self, other: Any) -> Fix:
        return self

    async def apply(self, ctx: Context) -> str:
        await ctx.client.create_event_type(self.name, active=True)
        return f"created event type {self.name!r}"


@attrs.frozen
class ActivateEventType:
    name: str
    id: str
    order = 1

    @property
    def key(self) -> tuple[str, ...]:
        return ("event-type", self.name)

    def describe(self) -> str:
        return f"activate event type {self.name!r}"

    def merge(self, other: Any) -> Fix:
        return self

    async def apply(self, ctx: Context) -> str:
        await ctx.client.set_event_type_active(self.id, True)
        return f"activated event type {self.name!r}"


@attrs.frozen
class EnableInvites:
    """Switch invites on for one event type in the given channels only: other channels of the
    account are the merchant's business, not this kit's."""

    event_type: str
    channel_ids: tuple[str, ...]
    order = 2

    @property
    def key(self) -> tuple[str, ...]:
        return ("invites", self.event_type)

    def describe(self) -> str:
        return (
            f"switch invites on for event type {self.event_type!r} in channel"
            f"{'s' * (len(self.channel_ids) != 1)} {', '.join(self.channel_ids)}"
        )

    def merge(self, other: Any) -> Fix:
        assert isinstance(other, EnableInvites)
        return EnableInvites(
            self.event_type, tuple(dict.fromkeys(self.channel_ids + other.channel_ids))
        )

    async def apply(self, ctx: Context) -> str:
        client = ctx.client
        found = await client.find_event_type(self.event_type)
        if found is None:
            raise KitError(f"event type {self.event_type!r} does not exist")
        waiting = set(self.channel_ids)
        deadline = time.monotonic() + ctx.settings_wait
        while True:
            for settings in await client.list_invite_settings(event_type_id=found.id):
                if settings.channel_id not in waiting:
                    continue
                waiting.discard(settings.channel_id)
                if settings.enabled is not True:
                    await client.update_invite_settings(settings.id, {"enabled": True})
            if not waiting or time.monotonic() >= deadline:
                break
            # eTrusted creates a new type's settings shortly after the type itself.
            await asyncio.sleep(_SETTINGS_POLL)
        if waiting:
            raise KitError(
                f"eTrusted has not created invite settings for {self.event_type!r} in"
                f" {', '.join(sorted(waiting))} yet; run `etrusted-kit doctor --fix` again in a"
                " minute"
            )
        return f"invites are on for {self.event_type!r} in {', '.join(self.channel_ids)}"


def plan(fixes: Iterable[Fix]) -> list[Fix]:
    """The fixes to apply, merged by key and in the order they must run."""
    merged: dict[tuple[str, ...], Fix] = {}
    for fix in fixes:
        merged[fix.key] = merged[fix.key].merge(fix) if fix.key in merged else fix
    return sorted(merged.values(), key=lambda f: f.order)


@attrs.frozen(kw_only=True)
class Outcome:
    action: str
    ok: bool
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "ok": self.ok, "message": self.message}


async def apply(ctx: Context, fixes: Sequence[Fix]) -> list[Outcome]:
    """Apply ``fixes`` in order; one that fails is reported and the rest still run."""
    outcomes: list[Outcome] = []
    for fix in fixes:
        try:
            message = await fix.apply(ctx)
        except KitError as exc:
            outcomes.append(Outcome(action=fix.describe(), ok=False, message=str(exc)))
        else:
            outcomes.append(Outcome(action=fix.describe(), ok=True, message=message))
    ctx.forget()
    return outcomes


__all__ = [
    "ActivateEventType",
    "CreateEventType",
    "CreateOutbox",
    "EnableInvites",
    "Fix",
    "Outcome",
    "apply",
    "plan",
]
