"""The eTrusted API client: one method per documented call, every failure a :mod:`kit.errors` class.

The classification (:mod:`kit._classify`) is what exactly-once delivery rests on. A failure
either proves that nothing happened (refused connection, 4xx, 5xx from the API itself) or leaves
open whether a ``POST`` was acted on (a timeout or disconnect after the request may have left, a
gateway 502/504, a garbled 2xx, a redirect: :class:`~kit.errors.InDoubtError`). The flusher must
reconcile the latter before it sends again, so anything uncertain is reported as in doubt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, NamedTuple, Self, TypeVar
from urllib.parse import quote

import aiohttp
import attrs

from kit import jsonenc
from kit._classify import (
    EXCHANGE_ERRORS,
    malformed_error,
    status_error,
    transport_error,
)
from kit.auth import TokenProvider
from kit.codec import dump_json, from_wire, from_wire_list, parse_retry_after
from kit.codec import to_wire as _to_wire
from kit.config import ClientConfig
from kit.errors import (
    ConfigError,
    ETrustedError,
    FieldError,
    KitError,
    ValidationError,
)
from kit.models import (
    Channel,
    ChannelRef,
    ChannelUpdate,
    Event,
    EventAccepted,
    EventDetails,
    EventType,
    EventTypeActivation,
    EventTypeCreate,
    Invite,
    InvitePage,
    InviteSettings,
    InviteSettingsUpdate,
)
from kit.validation import (
    validate_channel_update,
    validate_event_body,
    validate_event_type_name,
    validate_invite_settings_update,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class _Answer(NamedTuple):
    """A 2xx answer (a tuple: built once per request, cheaper than a frozen attrs class)."""

    status: int
    body: bytes


class ETrustedClient:
    """Async client for the eTrusted REST API (events, event types, invite settings, channels).

    Pass the application's one :class:`aiohttp.ClientSession` as ``session``; it is never
    closed here. Without one the client creates its own on first use and closes it in
    :meth:`aclose`.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        token_provider: TokenProvider | None = None,
    ) -> None:
        self._config = config
        self._session = session
        self._owns_session = session is None
        self._tokens = token_provider or TokenProvider(config, clock=clock, wall_clock=wall_clock)
        self._owns_tokens = token_provider is None
        self._wall_clock = wall_clock
        self._timeout = aiohttp.ClientTimeout(
            total=config.request_timeout, sock_connect=config.connect_timeout
        )
        self._base = config.api_url.rstrip("/")
        self._closed = False
        # The request headers for the last token seen, (with a body, without one): built once
        # per token rather than once per request. aiohttp only reads them.
        self._headers_token = ""
        self._headers: tuple[dict[str, str], dict[str, str]] = ({}, {})

    def __repr__(self) -> str:
        return f"ETrustedClient(api_url={self._config.api_url!r})"

    @property
    def config(self) -> ClientConfig:
        return self._config

    @property
    def tokens(self) -> TokenProvider:
        return self._tokens

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Self:
        if self._closed:
            raise KitError("ETrustedClient is closed and cannot be reused")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release what this client created (its session, a token refresh in flight)."""
        if self._closed:
            return
        self._closed = True
        if self._owns_tokens:
            await self._tokens.aclose()
        session, self._session = self._session, None
        if self._owns_session and session is not None:
            await session.close()

    # -- events -----------------------------------------------------------------------------

    async def create_event(
        self, event: Event | Mapping[str, Any], *, allow_checkout: bool = False
    ) -> EventAccepted:
        """Validate and send one event; raises ValidationError before anything is sent."""
        body = event.to_body() if isinstance(event, Event) else event
        validate_event_body(body, allow_checkout=allow_checkout)
        try:
            payload = dump_json(body if isinstance(body, dict) else dict(body))
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValidationError([FieldError("(root)", f"not JSON-serialisable: {exc}")]) from exc
        return await self.post_event_json(payload)

    async def post_event_json(self, body: bytes | str) -> EventAccepted:
        """Send an already validated JSON body unchanged (the outbox's stored payload)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        answer = await self._call("POST", "/events", action="create_event", body=data)
        wire = self._json(answer, "POST", "/events", "create_event")
        ref = wire.get("EventRef") if type(wire) is dict else None
        message = wire.get("Message") if type(ref) is str else None
        if type(ref) is str and (message is None or type(message) is str):
            # The usual answer, built directly: the general decoder costs more than the POST's
            # own bookkeeping. Anything else takes that decoder, with its errors.
            accepted = EventAccepted(event_ref=ref, message=message)
        else:
            accepted = self._structure(
                EventAccepted, wire, answer, "POST", "/events", "create_event"
            )
        if not accepted.event_ref.strip():
            raise self._malformed(answer, "POST", "/events", "create_event", "empty EventRef")
        return accepted

    async def get_event(self, ref: str) -> EventDetails:
        path = f"/events/{_seg(ref)}"
        answer = await self._call("GET", path, action="get_event")
        return self._decode(EventDetails, answer, "GET", path, "get_event")

    # -- event types ------------------------------------------------------------------------

    async def list_event_types(self, name: str | None = None) -> list[EventType]:
        params = {"name": name} if name is not None else None
        answer = await self._call("GET", "/event-types", action="list_event_types", params=params)
        return self._decode_list(EventType, answer, "GET", "/event-types", "list_event_types")

    async def find_event_type(self, name: str) -> EventType | None:
        """The event type called exactly ``name``, or None."""
        for event_type in await self.list_event_types(name):
            if event_type.name == name:
                return event_type
        return None

    async def create_event_type(self, name: str, active: bool = True) -> EventType:
        """Create an event type; a name that exists already raises ConflictError."""
        validate_event_type_name(name)
        body = _json(EventTypeCreate(name=name, active=active))
        answer = await self._call("POST", "/event-types", action="create_event_type", body=body)
        return self._decode(EventType, answer, "POST", "/event-types", "create_event_type")

    async def get_event_type(self, id: str) -> EventType:
        path = f"/event-types/{_seg(id)}"
        answer = await self._call("GET", path, action="get_event_type")
        return self._decode(EventType, answer, "GET", path, "get_event_type")

    async def set_event_type_active(self, id: str, active: bool) -> EventType:
        path = f"/event-types/{_seg(id)}"
        body = _json(EventTypeActivation(active=active))
        answer = await self._call("PUT", path, action="set_event_type_active", body=body)
        return self._decode(EventType, answer, "PUT", path, "set_event_type_active")

    async def delete_event_type(self, id: str) -> None:
        await self._call("DELETE", f"/event-types/{_seg(id)}", action="delete_event_type")

    # -- invite settings --------------------------------------------------------------------

    async def list_invite_settings(
        self,
        *,
        id: str | None = None,
        channel_id: str | None = None,
        event_type_id: str | None = None,
    ) -> list[InviteSettings]:
        params = _params(
            {"id": id, "channel-id": channel_id, "event-type-id": event_type_id},
        )
        answer = await self._call(
            "GET", "/invite-settings", action="list_invite_settings", params=params
        )
        return self._decode_list(
            InviteSettings, answer, "GET", "/invite-settings", "list_invite_settings"
        )

    async def get_invite_settings(self, id: str) -> InviteSettings:
        path = f"/invite-settings/{_seg(id)}"
        answer = await self._call("GET", path, action="get_invite_settings")
        return self._decode(InviteSettings, answer, "GET", path, "get_invite_settings")

    async def update_invite_settings(
        self, id: str, update: InviteSettingsUpdate | Mapping[str, Any]
    ) -> InviteSettings:
        """Patch one settings object; only the fields set in ``update`` change."""
        body = _update_body(update)
        validate_invite_settings_update(body)
        path = f"/invite-settings/{_seg(id)}"
        answer = await self._call(
            "PATCH", path, action="update_invite_settings", body=dump_json(body).encode()
        )
        return self._decode(InviteSettings, answer, "PATCH", path, "update_invite_settings")

    async def update_invite_settings_for_event_type(
        self, event_type_id: str, update: InviteSettingsUpdate | Mapping[str, Any]
    ) -> list[InviteSettings]:
        """Patch the settings of one event type in every channel; returns the changed ones."""
        body = _update_body(update)
        validate_invite_settings_update(body)
        action = "update_invite_settings_for_event_type"
        answer = await self._call(
            "PATCH",
            "/invite-settings",
            action=action,
            params={"event-type-id": event_type_id},
            body=dump_json(body).encode(),
        )
        return self._decode_list(InviteSettings, answer, "PATCH", "/invite-settings", action)

    # -- channels and invites ---------------------------------------------------------------

    async def list_channels(self) -> list[Channel]:
        answer = await self._call("GET", "/channels", action="list_channels")
        return self._decode_list(Channel, answer, "GET", "/channels", "list_channels")

    async def update_channel(self, id: str, update: ChannelUpdate | Mapping[str, Any]) -> str:
        """Replace a channel's editable fields; returns the channel id the API confirmed."""
        body = _update_body(update)
        validate_channel_update(body)
        path = f"/channels/{_seg(id)}"
        answer = await self._call(
            "PUT", path, action="update_channel", body=dump_json(body).encode()
        )
        return self._decode(ChannelRef, answer, "PUT", path, "update_channel").id

    async def list_invites(
        self,
        channel_id: str,
        *,
        query: str | None = None,
        count: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> InvitePage:
        """One page of a channel's invites; ``query`` matches transaction reference or e-mail."""
        path = f"/channels/{_seg(channel_id)}/invites"
        params = _params(
            {
                "query": query,
                "count": str(count) if count is not None else None,
                "after": after,
                "before": before,
            }
        )
        answer = await self._call("GET", path, action="list_invites", params=params)
        return self._decode(InvitePage, answer, "GET", path, "list_invites")

    async def iter_invites(
        self, channel_id: str, *, query: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Invite]:
        """Every matching invite, following the ``after`` cursor until the last page."""
        after: str | None = None
        seen: set[str] = set()
        while True:
            page = await self.list_invites(channel_id, query=query, count=page_size, after=after)
            for invite in page.items:
                yield invite
            cursor = page.after
            if not page.items or not cursor or cursor in seen:
                return
            seen.add(cursor)
            after = cursor

    # -- the one request path ---------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise KitError("ETrustedClient is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        elif self._session.closed:
            raise KitError("the ClientSession given to ETrustedClient has been closed")
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        action: str,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> _Answer:
        """Send one request (plus one retry after a 401); return a 2xx answer or raise."""
        session = self._get_session()
        url = self._base + path
        for attempt in (1, 2):
            token = self._tokens.current() or await self._tokens.token(session)
            headers = self._headers_for(token)[body is None]
            try:
                async with session.request(
                    method,
                    url,
                    params=params,
                    data=body,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                    raise_for_status=False,
                ) as response:
                    status = response.status
                    raw = await response.read()
                    retry_after_header = (
                        None if 200 <= status < 300 else response.headers.get("Retry-After")
                    )
            except aiohttp.InvalidURL as exc:
                raise ConfigError(f"invalid eTrusted URL for {method} {path}: {exc}") from exc
            except EXCHANGE_ERRORS as exc:
                raise self._failed(
                    transport_error(exc, method=method, url=url), action, path
                ) from exc

            if 200 <= status < 300:
                return _Answer(status, raw)
            if status == 401 and attempt == 1:
                self._tokens.invalidate(token)
                logger.info(
                    "%s %s: token rejected, refreshing once",
                    method,
                    path,
                    extra={"action": "token_rejected", "operation": action},
                )
                continue
            retry_after = parse_retry_after(retry_after_header, now=self._wall_clock())
            error = status_error(
                status, raw, method=method, url=url, path=path, retry_after=retry_after
            )
            raise self._failed(error, action, path)
        raise AssertionError("unreachable")  # pragma: no cover

    def _headers_for(self, token: str) -> tuple[dict[str, str], dict[str, str]]:
        """The headers of a request with a body and of one without, carrying ``token``."""
        if token != self._headers_token:
            common = {"Accept": "application/json", "User-Agent": self._config.user_agent}
            bearer = {"Authorization": f"Bearer {token}"}
            with_body = {**common, "Content-Type": "application/json", **bearer}
            self._headers = (with_body, {**common, **bearer})
            self._headers_token = token
        return self._headers

    def _failed(self, error: ETrustedError, action: str, path: str) -> ETrustedError:
        """Log the one line for a failed call (no token, no body, no query string)."""
        logger.warning(
            "%s %s failed: %s",
            error.method,
            path,
            error.message,
            extra={
                "action": "etrusted_request_failed",
                "operation": action,
                "method": error.method,
                "path": path,
                "status": error.status,
                "kind": error.kind.value,
                "error": type(error).__name__,
            },
        )
        return error

    def _malformed(
        self, answer: _Answer, method: str, path: str, action: str, detail: str
    ) -> ETrustedError:
        error = malformed_error(answer.status, detail, method=method, url=self._base + path)
        return self._failed(error, action, path)

    def _json(self, answer: _Answer, method: str, path: str, action: str) -> Any:
        try:
            return jsonenc.decode(answer.body)
        except ValueError as exc:
            raise self._malformed(answer, method, path, action, "not JSON") from exc

    def _decode(self, cls: type[T], answer: _Answer, method: str, path: str, action: str) -> T:
        data = self._json(answer, method, path, action)
        return self._structure(cls, data, answer, method, path, action)

    def _structure(
        self, cls: type[T], data: Any, answer: _Answer, method: str, path: str, action: str
    ) -> T:
        try:
            return from_wire(cls, data)
        except ValidationError as exc:
            raise self._malformed(answer, method, path, action, str(exc)) from exc

    def _decode_list(
        self, cls: type[T], answer: _Answer, method: str, path: str, action: str
    ) -> list[T]:
        data = self._json(answer, method, path, action)
        try:
            return from_wire_list(cls, data)
        except ValidationError as exc:
            raise self._malformed(answer, method, path, action, str(exc)) from exc


def _seg(value: str) -> str:
    """One path segment, escaped so an id can never change the path it is put into."""
    return quote(value, safe="")


def _params(values: Mapping[str, str | None]) -> dict[str, str] | None:
    present = {k: v for k, v in values.items() if v is not None}
    return present or None


def _json(model: Any) -> bytes:
    return dump_json(_to_wire(model)).encode()


def _update_body(update: Any) -> dict[str, Any]:
    if attrs.has(type(update)):
        return _to_wire(update)
    if isinstance(update, Mapping):
        return dict(update)
    raise ValidationError(
        [FieldError("(root)", f"expected a model or a mapping, got {type(update).__name__}")],
        subject="update",
    )


__all__ = ["ETrustedClient"]
