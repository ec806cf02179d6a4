"""Running a flusher inside an application, supervised.

A bare ``asyncio.create_task(flusher.run())`` hides a failure: the task ends, the application
keeps accepting events, and nothing sends them. :meth:`Flusher.running` starts the task and
hands back a :class:`RunningFlusher` that a health check can read; leaving the block stops the
flusher gracefully, waits for it, and raises what made it fail, if anything did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from kit.flusher.config import FlusherStats

if TYPE_CHECKING:
    from kit.flusher.core import Flusher

logger = logging.getLogger("kit.flusher")


class RunningFlusher:
    """A flusher running as a task of its own: read ``healthy`` from a health check."""

    def __init__(self, flusher: Flusher, task: asyncio.Task[FlusherStats]) -> None:
        self.flusher = flusher
        self._task = task

    @property
    def healthy(self) -> bool:
        """True while the flusher runs; False once it has stopped, for whatever reason."""
        return not self._task.done()

    @property
    def failure(self) -> BaseException | None:
        """What stopped the flusher (None while it runs, and after a clean stop)."""
        if not self._task.done() or self._task.cancelled():
            return None
        return self._task.exception()

    @property
    def stats(self) -> FlusherStats:
        return self.flusher.stats

    async def wait(self) -> FlusherStats:
        """Until the flusher stops; raises what made it fail. Cancelling the wait leaves the
        flusher running."""
        return await asyncio.shield(self._task)


@contextlib.asynccontextmanager
async def running(
    flusher: Flusher, *, until_idle: bool = False, until_drained: bool = False
) -> AsyncIterator[RunningFlusher]:
    """See :meth:`Flusher.running`."""
    task = asyncio.create_task(
        flusher.run(until_idle=until_idle, until_drained=until_drained), name="etk-flusher"
    )
    handle = RunningFlusher(flusher, task)
    try:
        # Let run() begin before the block can end: a stop() that came before it would be
        # undone by a flusher that ran before (each run starts afresh), and leaving would then
        # wait for a flusher that nothing stops.
        await asyncio.sleep(0)
        yield handle
    except BaseException:
        # The application's own error wins; the flusher's (logged when it happened) must not
        # replace it.
        await _stop(flusher, task)
        with contextlib.suppress(BaseException):
            task.result()
        raise
    await _stop(flusher, task)
    task.result()  # raises what stopped the flusher; nothing after a clean stop


async def _stop(flusher: Flusher, task: asyncio.Task[FlusherStats]) -> None:
    if not task.done():
        flusher.stop()
    await asyncio.wait({task})
