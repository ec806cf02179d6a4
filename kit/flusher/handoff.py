"""Claims on their way from the feeder to the workers: a deque, and the workers waiting on it.

:class:`asyncio.Queue` does the same, plus a maximum size, a count of unfinished tasks and an
event for ``join()``, none of which the flusher uses: about ten calls of Python code per item,
a measurable part of the flusher's own CPU per delivered event. A waiting worker is woken as
``asyncio.Queue`` wakes it, and takes the item itself, so an item is never lost with a worker
cancelled between the wake-up and the take.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """Items in order, for any number of waiting takers (unbounded)."""

    __slots__ = ("_items", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """``loop``: the one every taker runs on, when the owner knows it. Asking for the
        running loop at each wait costs a system call (``getpid``) on Python 3.11."""
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop = loop

    def put(self, item: T) -> None:
        self._items.append(item)
        self._wake_one()

    async def take(self) -> T:
        """The next item, once there is one."""
        while not self._items:
            waiter = (self._loop or asyncio.get_running_loop()).create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif self._items and not waiter.cancelled():
                    self._wake_one()  # woken, but leaving: the next taker gets the item
                raise
        return self._items.popleft()

    def take_all(self) -> list[T]:
        """Every item not taken yet, in order; none is left."""
        items = list(self._items)
        self._items.clear()
        return items

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
