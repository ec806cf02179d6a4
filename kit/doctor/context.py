"""One doctor run's shared state: the setup, one HTTP session, and the account as read once.

Every check that needs eTrusted asks this for the channels, event types and invite settings,
so a run makes each list request once, and the Date header of every answer is kept for the
clock check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import attrs

from kit.client import ETrustedClient
from kit.configfile import KitConfig
from kit.doctor.setup import Setup
from kit.models import Channel, EventType, InviteSettings
from kit.policy import PolicyConfig


@attrs.frozen
class DateSample:
    """A server's ``Date`` header and this machine's wall clock when the answer arrived."""

    url: str
    local: float
    server: float


def _date_tracer(samples: list[DateSample], wall_clock: Callable[[], float]) -> aiohttp.TraceConfig:
    async def on_end(session: aiohttp.ClientSession, context: SimpleNamespace, params: Any) -> None:
        header = params.response.headers.get("Date")
        if not header:
            return
        try:
            server = parsedate_to_datetime(header).timestamp()
        except (TypeError, ValueError):
            return
        samples.append(DateSample(url=str(params.url), local=wall_clock(), server=server))

    tracer = aiohttp.TraceConfig()
    tracer.on_request_end.append(on_end)
    return tracer


class Context:
    """Open with ``async with``; the session and client are this run's own."""

    def __init__(
        self,
        setup: Setup,
        *,
        wall_clock: Callable[[], float] = time.time,
        settings_wait: float = 10.0,
    ) -> None:
        self.setup = setup
        self.wall_clock = wall_clock
        # How long --fix waits for eTrusted to create a new type's invite settings.
        self.settings_wait = settings_wait
        self.dates: list[DateSample] = []
        self.account_usable = False  # set by the credentials check
        self._session: aiohttp.ClientSession | None = None
        self._client: ETrustedClient | None = None
        self._cache: dict[str, Any] = {}

    async def __aenter__(self) -> Context:
        self._session = aiohttp.ClientSession(
            trace_configs=[_date_tracer(self.dates, self.wall_clock)]
        )
        if self.setup.client is not None:
            self._client = ETrustedClient(self.setup.client, session=self._session)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def config(self) -> KitConfig | None:
        return self.setup.file.config

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use the context in async with"
        return self._session

    @property
    def client(self) -> ETrustedClient:
        assert self._client is not None, "no client: the credentials check reports why"
        return self._client

    def forget(self) -> None:
        """Drop what was read from the account (after ``--fix`` changed it)."""
        self._cache.clear()

    async def channels(self) -> list[Channel]:
        if "channels" not in self._cache:
            self._cache["channels"] = await self.client.list_channels()
        result: list[Channel] = self._cache["channels"]
        return result

    async def event_types(self) -> list[EventType]:
        if "event_types" not in self._cache:
            self._cache["event_types"] = await self.client.list_event_types()
        result: list[EventType] = self._cache["event_types"]
        return result

    async def invite_settings(self) -> list[InviteSettings]:
        if "invite_settings" not in self._cache:
            self._cache["invite_settings"] = await self.client.list_invite_settings()
        result: list[InviteSettings] = self._cache["invite_settings"]
        return result


def wanted_types(config: KitConfig) -> dict[str, list[str]]:
    """Every event type a trigger names, with the sources whose triggers name it."""
    found: dict[str, list[str]] = {}
    for source in config.sources:
        for trigger in source.policy.triggers:
            found.setdefault(trigger.event_type, []).append(source.name)
    return found


def channels_of(policy: PolicyConfig) -> list[str]:
    """The channels one source may send to: ``channel_id`` and ``channels_by_locale``."""
    ids = ([policy.channel_id] if policy.channel_id else []) + [
        channel for _, channel in policy.channels_by_locale
    ]
    return list(dict.fromkeys(ids))


def source_channels(config: KitConfig) -> dict[str, list[str]]:
    """Every channel a source may send to, with the sources that name it."""
    found: dict[str, list[str]] = {}
    for source in config.sources:
        for channel_id in channels_of(source.policy):
            found.setdefault(channel_id, []).append(source.name)
    return found


def wanted_pairs(config: KitConfig) -> list[tuple[str, str]]:
    """Every (channel, event type) a source may send, in the file's order."""
    pairs: dict[tuple[str, str], None] = {}
    for source in config.sources:
        for channel_id in channels_of(source.policy):
            for trigger in source.policy.triggers:
                pairs[(channel_id, trigger.event_type)] = None
    return list(pairs)


__all__ = [
    "Context",
    "DateSample",
    "channels_of",
    "source_channels",
    "wanted_pairs",
    "wanted_types",
]
