"""The eTrusted API routes: tokens, events, event types, invite settings, channels, invites.

Authentication and fault injection happen in the sandbox middleware before these run; the
handlers only do what eTrusted documents for each call.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from kit.sandbox.auth import REALM_PATH, SCOPE
from kit.sandbox.faults import LEGACY_TOKEN_PATH, TOKEN_PATH
from kit.sandbox.responses import Service, client_error, empty, error, json_response
from kit.sandbox.state import UnknownCursorError
from kit.sandbox.validation import (
    validate_channel_update,
    validate_event,
    validate_event_type_post,
    validate_event_type_put,
    validate_invite_settings_patch,
)

if TYPE_CHECKING:
    from kit.sandbox.app import Sandbox

logger = logging.getLogger(__name__)

DEFAULT_INVITES_COUNT = 20  # the invites spec's own paging example uses pages of 20
_MALFORMED = object()


async def _read_json(request: web.Request) -> Any:
    """The decoded body, or ``_MALFORMED``."""
    raw = await request.read()
    try:
        return json.loads(raw)
    except ValueError:
        return _MALFORMED


class ApiRoutes:
    """Handlers bound to one :class:`Sandbox`; state is looked up per call (reset swaps it)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(TOKEN_PATH, self.token),
            web.post(LEGACY_TOKEN_PATH, self.token),
            web.post("/events", self.post_event),
            web.get("/events/{ref}", self.get_event),
            web.get("/event-types", self.list_event_types),
            web.post("/event-types", self.create_event_type),
            web.get("/event-types/{id}", self.get_event_type),
            web.put("/event-types/{id}", self.put_event_type),
            web.delete("/event-types/{id}", self.delete_event_type),
            web.get("/invite-settings", self.list_invite_settings),
            web.patch("/invite-settings", self.patch_invite_settings_by_type),
            web.get("/invite-settings/{id}", self.get_invite_settings),
            web.patch("/invite-settings/{id}", self.patch_invite_settings),
            web.get("/channels", self.list_channels),
            web.get("/channels/", self.list_channels),
            web.put("/channels/{id}", self.put_channel),
            web.get("/channels/{id}/invites", self.list_invites),
        ]

    # -- token ----------------------------------------------------------------------------

    async def token(self, request: web.Request) -> web.Response:
        config = self._sandbox.config
        form = await request.post()
        grant_type = form.get("grant_type")
        if not grant_type:
            return error(Service.TOKEN, 400, "Missing form parameter: grant_type")
        if grant_type != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, status=400)
        client_id, client_secret = _basic_credentials(request.headers.get("Authorization"))
        if client_id is None:
            form_id, form_secret = form.get("client_id"), form.get("client_secret")
            if isinstance(form_id, str) and isinstance(form_secret, str):
                client_id, client_secret = form_id, form_secret
        if not (
            client_id is not None
            and client_secret is not None
            and hmac.compare_digest(client_id.encode(), config.client_id.encode())
            and hmac.compare_digest(client_secret.encode(), config.client_secret.encode())
        ):
            return error(Service.TOKEN, 401, "Invalid client or Invalid client credentials")
        audience = form.get("audience")
        # Required by the spec, yet real clients leave it out (or empty) and are served: only a
        # wrong one is refused. The spec lists a bare 400; the body is our other 400s' OAuth2 one.
        if audience and audience != config.audience:
            return error(Service.TOKEN, 400, f"Invalid parameter: audience {audience!r} is unknown")
        token = self._sandbox.tokens.issue(issuer=str(request.url.origin()) + REALM_PATH)
        self._sandbox.token_requests += 1
        response = json_response(
            {
                "access_token": token,
                "expires_in": self._sandbox.tokens.expires_in,
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": SCOPE,
            }
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    # -- events ---------------------------------------------------------------------------

    async def post_event(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if body is _MALFORMED:
            return error(Service.EVENTS, 400, "Invalid request: the body is not valid JSON")
        problem = validate_event(body)
        if problem is not None:
            return error(Service.EVENTS, 400, f"Invalid request: {problem}")
        state = self._sandbox.state
        if not state.is_active_event_type(body["type"]):
            return error(
                Service.EVENTS,
                400,
                f'Invalid request: the event type "{body["type"]}" does not exist or is not active',
            )
        if self._sandbox.config.strict_channels and body["channel"]["id"] not in state.channels:
            return error(
                Service.EVENTS,
                400,
                f'Invalid request: the channel "{body["channel"]["id"]}" does not exist',
            )
        ref = state.accept_event(body).event_ref
        return json_response(
            {"Message": f"Your event (`{ref}`) was accepted for processing.", "EventRef": ref},
            status=202,
        )

    async def get_event(self, request: web.Request) -> web.Response:
        found = self._sandbox.state.get_event(request.match_info["ref"])
        if found is None:
            return empty(404)
        return json_response(found)

    # -- event types ----------------------------------------------------------------------

    async def list_event_types(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        if name == "":
            return client_error(
                400, "Invalid query: instance.name does not meet minimum length of 1"
            )
        found = self._sandbox.state.list_event_types(name)
        return json_response([t.to_json() for t in found])

    async def create_event_type(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if body is _MALFORMED:
            return client_error(400, "Invalid event: the body is not valid JSON")
        problem = validate_event_type_post(body)
        if problem is not None:
            return client_error(400, f"Invalid event: {problem}")
        created = self._sandbox.state.create_event_type(
            body["name"], active=body.get("active", True)
        )
        if created is None:
            return client_error(
                409, f"An event type with the name '{body['name']}' already exists", "Conflict"
            )
        return json_response(created.to_json(), status=201)

    async def get_event_type(self, request: web.Request) -> web.Response:
        type_id = request.match_info["id"]
        found = self._sandbox.state.event_types.get(type_id)
        if found is None:
            return _event_type_not_found(type_id)
        return json_response(found.to_json())

    async def put_event_type(self, request: web.Request) -> web.Response:
        type_id = request.match_info["id"]
        if type_id not in self._sandbox.state.event_types:
            return _event_type_not_found(type_id)
        body = await _read_json(request)
        if body is _MALFORMED:
            return client_error(400, "Invalid event: the body is not valid JSON")
        problem = validate_event_type_put(body)
        if problem is not None:
            return client_error(400, f"Invalid event: {problem}")
        updated = self._sandbox.state.set_event_type_active(type_id, body["active"])
        assert updated is not None
        return json_response(updated.to_json())

    async def delete_event_type(self, request: web.Request) -> web.Response:
        type_id = request.match_info["id"]
        if not self._sandbox.state.delete_event_type(type_id):
            return _event_type_not_found(type_id)
        return empty(204)

    # -- invite settings ------------------------------------------------------------------

    async def list_invite_settings(self, request: web.Request) -> web.Response:
        filters = {}
        for param, name in (
            ("id", "settings_id"),
            ("channel-id", "channel_id"),
            ("event-type-id", "event_type_id"),
        ):
            value = request.query.get(param)
            if value == "":
                return client_error(400, f'Invalid query: "{param}" must not be empty')
            filters[name] = value
        found = self._sandbox.state.visible_settings(**filters)
        return json_response([s.to_json() for s in found])

    async def patch_invite_settings_by_type(self, request: web.Request) -> web.Response:
        type_id = request.query.get("event-type-id")
        if not type_id:
            return client_error(400, 'Invalid query: requires parameter "event-type-id"')
        body = await _read_json(request)
        if body is _MALFORMED:
            return client_error(400, "Invalid request body: the body is not valid JSON")
        problem = validate_invite_settings_patch(body)
        if problem is not None:
            return client_error(400, f"Invalid request body: {problem}")
        state = self._sandbox.state
        found = state.visible_settings(event_type_id=type_id)
        state.patch_settings(found, body)
        return json_response([s.to_json() for s in found])

    async def get_invite_settings(self, request: web.Request) -> web.Response:
        found = self._sandbox.state.visible_settings(settings_id=request.match_info["id"])
        if not found:
            return empty(404)
        return json_response(found[0].to_json())

    async def patch_invite_settings(self, request: web.Request) -> web.Response:
        settings_id = request.match_info["id"]
        state = self._sandbox.state
        found = state.visible_settings(settings_id=settings_id)
        if not found:
            return client_error(400, f"The invite settings with ID '{settings_id}' does not exist")
        body = await _read_json(request)
        if body is _MALFORMED:
            return client_error(400, "Invalid request body: the body is not valid JSON")
        problem = validate_invite_settings_patch(body)
        if problem is not None:
            return client_error(400, f"Invalid request body: {problem}")
        state.patch_settings(found, body)
        return json_response(found[0].to_json())

    # -- channels and invites -------------------------------------------------------------

    async def list_channels(self, request: web.Request) -> web.Response:
        account = self._sandbox.config.account_ref
        channels = self._sandbox.state.channels.values()
        return json_response([c.to_json(account) for c in channels])

    async def put_channel(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["id"]
        state = self._sandbox.state
        if channel_id not in state.channels:
            return empty(404)
        body = await _read_json(request)
        if body is _MALFORMED or validate_channel_update(body) is not None:
            return empty(400)
        state.update_channel(channel_id, body)
        return json_response({"id": channel_id})

    async def list_invites(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["id"]
        state = self._sandbox.state
        if channel_id not in state.channels:
            return empty(404)
        query = request.query
        try:
            count = int(query.get("count", DEFAULT_INVITES_COUNT))
        except ValueError:
            return empty(400)
        after, before = query.get("after") or None, query.get("before") or None
        if count < 1 or (after is not None and before is not None):
            return empty(400)
        search = query.get("query") or None
        try:
            page = state.list_invites(
                channel_id, count=count, after=after, before=before, query=search
            )
        except UnknownCursorError:
            return empty(400)
        account = self._sandbox.config.account_ref
        cursor: dict[str, str] = {}
        links: dict[str, str] = {}
        if page.items:
            cursor = {"after": page.items[-1].id, "before": page.items[0].id}
            base: dict[str, str] = {"count": str(count)}
            if search is not None:
                base["query"] = search
            if page.has_older:
                links["next"] = str(request.url.with_query({**base, "after": cursor["after"]}))
            if page.has_newer:
                links["previous"] = str(
                    request.url.with_query({**base, "before": cursor["before"]})
                )
        return json_response(
            {
                "totalElements": 0,
                "paging": {"count": len(page.items), "cursor": cursor, "links": links},
                "items": [invite.to_json(account) for invite in page.items],
            }
        )


def _event_type_not_found(type_id: str) -> web.Response:
    return client_error(404, f"The event type with ID '{type_id}' does not exist", "Not found")


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """``client_secret_basic``: Keycloak also takes the credentials as HTTP Basic auth."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None, None
    return unquote(client_id), unquote(secret)
