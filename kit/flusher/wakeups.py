"""Wake-ups from other processes: a backend's notifications (PostgreSQL LISTEN/NOTIFY)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from kit.outbox.protocol import SupportsListen

logger = logging.getLogger("kit.flusher")


async def relay_notifications(
    storage: SupportsListen, ring: Callable[[], None], *, retry_after: float
) -> None:
    """Call ``ring`` for every notification until cancelled; a failed listener is restarted
    after ``retry_after`` seconds, and meanwhile polling still delivers everything."""
    while True:
        wakeups: AsyncIterator[None] | None = None
        try:
            wakeups = storage.listen()  # raises once the storage is closed, say
            async for _ in wakeups:
                ring()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (polling still delivers everything)
            logger.warning(
                "listener failed (%s); polling only", exc, extra={"action": "listen_failed"}
            )
            await asyncio.sleep(retry_after)
        finally:
            # A listener holds a connection of its own until closed; a run that ends (or
            # cancels its listening) must not leave it behind.
            close = getattr(wakeups, "aclose", None)
            if close is not None:
                await close()
