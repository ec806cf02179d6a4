"""Status codes and error bodies in each eTrusted service's own documented shape.

The services disagree: Events say ``{"Message"}``, Event Types and Invite Settings say
``{"Error", "ErrorDescription"}``, Channels (and Invites, which live under them) say nothing at
all, and the token endpoint speaks OAuth2. A client has to cope with every one of them, so the
sandbox reproduces them exactly, for real errors and injected ones alike.
"""

from __future__ import annotations

import enum
import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from kit.sandbox.faults import TOKEN_PATHS


class Service(enum.Enum):
    TOKEN = "token"  # noqa: S105 (a name)
    EVENTS = "events"
    EVENT_TYPES = "event_types"
    INVITE_SETTINGS = "invite_settings"
    CHANNELS = "channels"
    OTHER = "other"


AUTHENTICATED = frozenset(
    {Service.EVENTS, Service.EVENT_TYPES, Service.INVITE_SETTINGS, Service.CHANNELS}
)

_PREFIXES = (
    ("/events", Service.EVENTS),
    ("/event-types", Service.EVENT_TYPES),
    ("/invite-settings", Service.INVITE_SETTINGS),
    ("/channels", Service.CHANNELS),
)


def service_for(path: str) -> Service:
    if path in TOKEN_PATHS:
        return Service.TOKEN
    for prefix, service in _PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return service
    return Service.OTHER


_EVENTS_MESSAGES = {
    400: "Invalid request",
    401: "Access to this resource is forbidden",
    500: "The server encountered an unexpected condition which prevented it from fulfilling "
    "the request.",
    503: "This service is temporarily unavailable",
}
_OAUTH_ERRORS = {
    400: "invalid_request",
    401: "invalid_client",
    429: "slow_down",
    500: "server_error",
    503: "temporarily_unavailable",
}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
    )


def empty(status: int) -> web.Response:
    return web.Response(status=status)


def client_error(status: int, description: str, summary: str | None = None) -> web.Response:
    """The Event Types / Invite Settings ``ClientError`` body."""
    summary = summary or ("Invalid request" if status == 400 else _reason(status))
    return json_response({"Error": summary, "ErrorDescription": description}, status=status)


def error(service: Service, status: int, detail: str | None = None) -> web.Response:
    """An error answer of ``service`` in its documented shape (``detail`` where it has one)."""
    if service is Service.EVENTS:
        message = detail or _EVENTS_MESSAGES.get(status) or _reason(status)
        return json_response({"Message": message}, status=status)
    if service is Service.EVENT_TYPES:
        if status == 401:
            return empty(status)
        return client_error(status, detail or _reason(status))
    if service is Service.INVITE_SETTINGS:
        if status in (401, 404):
            return empty(status)
        return client_error(status, detail or _reason(status))
    if service is Service.TOKEN:
        body = {"error": _OAUTH_ERRORS.get(status, "server_error")}
        if detail:
            body["error_description"] = detail
        return json_response(body, status=status)
    return empty(status)
