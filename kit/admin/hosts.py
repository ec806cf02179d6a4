"""The names the admin listener answers to: its defence against DNS rebinding.

A hostile site can point its own name at 127.0.0.1 once the operator's browser has loaded it;
the browser then treats the admin page as that site's and lets its script read the page and
the CSRF secret in it. The browser still sends the site's name in ``Host``, so the listener
answers only a ``Host`` that is an IP address (rebinding needs a name), ``localhost`` or a name
the operator allowed, and refuses every other request before any route sees it; only the
routes machines read by any name (probes, metrics: no customer data) are open to every ``Host``.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Handler

from kit.configfile.model import host_name
from kit.errors import ConfigError

log = logging.getLogger("kit.admin.hosts")

ALWAYS = frozenset({"localhost"})
_SHOWN = 200  # a Host longer than this is cut in the log line


def named_host(header: str) -> str | None:
    """The name part of a ``Host`` header (port dropped, IPv6 without its brackets), or None
    when it is not one."""
    if header.startswith("["):
        address, end, port = header[1:].partition("]")
        if not end or (port and not (port.startswith(":") and port[1:].isdigit())):
            return None
        return address
    name, colon, port = header.partition(":")
    if colon and not port.isdigit():
        return None  # a second colon (an IPv6 address without brackets) or no port number
    return name


def answers_to(header: str | None, names: frozenset[str]) -> bool:
    """Whether a request with this ``Host`` header may be answered."""
    name = None if header is None else named_host(header)
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return True
    try:
        return host_name(name) in names | ALWAYS
    except ConfigError:  # not a host name at all
        return False


def refuse_other_hosts(
    app: web.Application, names: Iterable[str] = (), *, open_paths: Iterable[str] = ()
) -> None:
    """Answer 403 on every route of ``app`` but ``open_paths`` to a request whose ``Host`` is
    not an IP address, ``localhost`` or one of ``names`` (compared without case and port)."""
    allowed = frozenset(host_name(n) for n in names)
    open_to_all = frozenset(open_paths)

    @web.middleware
    async def only_allowed_hosts(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Host")  # request.host falls back to the machine's name
        if request.path in open_to_all or answers_to(header, allowed):
            return await handler(request)
        log.warning(
            "admin request refused: Host %r is not an allowed name ([admin] allowed_hosts)",
            None if header is None else header[:_SHOWN],
            extra={"action": "admin.host_refused", "host": header and header[:_SHOWN]},
        )
        return web.Response(
            status=403, text="this host name is not allowed here: see [admin] allowed_hosts"
        )

    app.middlewares.append(only_allowed_hosts)


__all__ = ["answers_to", "named_host", "refuse_other_hosts"]
