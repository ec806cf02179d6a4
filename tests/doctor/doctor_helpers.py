"""Breaking the sandbox account the way an operator's account is found broken."""

from __future__ import annotations

from kit.sandbox import SandboxServer


def type_id(server: SandboxServer, name: str) -> str:
    return server.sandbox.state.event_type_by_name[name]


def deactivate(server: SandboxServer, name: str) -> None:
    server.sandbox.state.set_event_type_active(type_id(server, name), False)


def delete_type(server: SandboxServer, name: str) -> None:
    server.sandbox.state.delete_event_type(type_id(server, name))


def switch_invites(server: SandboxServer, name: str, channel_id: str, *, on: bool) -> None:
    state = server.sandbox.state
    found = state.visible_settings(channel_id=channel_id, event_type_id=type_id(server, name))
    state.patch_settings(found, {"enabled": on})


def invites_on(server: SandboxServer, name: str, channel_id: str) -> bool:
    state = server.sandbox.state
    (settings,) = state.visible_settings(channel_id=channel_id, event_type_id=type_id(server, name))
    return settings.enabled


def is_active(server: SandboxServer, name: str) -> bool:
    state = server.sandbox.state
    return name in state.event_type_by_name and state.is_active_event_type(name)
