"""The PostgreSQL outbox's driver boundary: telling whether an interrupted connection can still
be used."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kit.errors import ConfigError

try:
    import asyncpg as _asyncpg
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    _asyncpg = None  # type: ignore[assignment]


@contextlib.contextmanager
def _unparsable_url(safe_url: str) -> Iterator[None]:
    """asyncpg's DSN parser, and urlsplit before it, raise a plain ValueError whose text may
    quote the password."""
    try:
        yield
    except ValueError as exc:
        if _asyncpg is not None and isinstance(
            exc, _asyncpg.PostgresError | _asyncpg.InterfaceError
        ):
            raise
        raise ConfigError(
            f"cannot parse the PostgreSQL URL {safe_url}: check the port, and percent-encode"
            " special characters in the user name and password"
        ) from None


async def _rolled_back(conn: Any, within: float) -> bool:
    """Whether an interrupted connection is idle outside any transaction again.

    ``reset()`` waits until a cancelled statement has finished on the server (asyncpg makes the
    next statement wait for that), rolls back whatever transaction is open, and forgets a
    transaction object left behind by a cancelled BEGIN (else the next ``transaction()`` would
    take itself for a nested one). Any failure here means: do not reuse the connection.
    """
    try:
        await conn.reset(timeout=within)
    except BaseException:  # noqa: BLE001 - the caller re-raises the original; this one is moot
        return False
    return not conn.is_in_transaction()


def _may_be_broken(exc: BaseException) -> bool:
    """Whether a connection may be unusable after ``exc``: a client-side or connection failure.

    After, say, a termination by the server, asyncpg can fail the next query with a client-side
    error before it has noticed that the socket is gone. A timeout or a cancellation is not one:
    asyncpg cancels the statement on the server and the next query waits for that, whereas a
    dropped socket would leave the statement running, and perhaps committing, on the server.
    """
    if isinstance(exc, TimeoutError):
        return False
    return isinstance(
        exc,
        OSError
        | _asyncpg.InterfaceError
        | _asyncpg.exceptions.InternalClientError
        | _asyncpg.PostgresConnectionError,
    )


def _terminate(conn: Any) -> None:
    """Drop a pooled connection that may be broken. One the server already closed has been
    detached from its proxy by asyncpg, and the proxy then refuses every call: nothing is left
    to drop, and that refusal must not replace the failure being handled."""
    with contextlib.suppress(_asyncpg.InterfaceError):
        conn.terminate()


async def _keep_session(_conn: Any) -> None:
    """The own pool's reset on release: nothing to undo, so no round trip.

    asyncpg's default resets advisory locks, cursors, LISTENs and settings with one more query
    per release. The kit leaves none of them behind on a pooled connection: its advisory lock
    and ``search_path`` are transaction-scoped (``pg_advisory_xact_lock``, ``SET LOCAL``), it
    declares no cursors, and LISTEN runs on a connection of its own (:meth:`listen`). asyncpg
    still rolls back a transaction left open before it calls this. A pool handed in by the
    application keeps its own reset.
    """


__all__ = [
    "_asyncpg",
    "_keep_session",
    "_may_be_broken",
    "_rolled_back",
    "_terminate",
    "_unparsable_url",
]
