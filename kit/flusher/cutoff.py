"""Cuts off POSTs that would outlive their lease: one timer per deadline, shared by its POSTs.

The entries of one claim share one lease, so their POSTs share one deadline. An
``asyncio.timeout`` around each POST schedules a timer per event and cancels it again; the
loop's heap of timers (compared by a Python ``__lt__``, and full of cancelled timers) made that
about a tenth of the flusher's CPU per delivered event. Here the first POST of a deadline
schedules its timer, the others join it, and the last to leave cancels it.

A scope that expires behaves as ``asyncio.timeout`` does: its task is cancelled, and the scope
turns that cancellation into :class:`TimeoutError` unless someone else cancelled the task too
(a stop that abandons the POSTs in flight), in which case the cancellation goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Any


class _Deadline:
    """The timer of one deadline and the scopes inside it."""

    __slots__ = ("handle", "scopes")

    def __init__(self, handle: asyncio.TimerHandle) -> None:
        self.handle = handle
        self.scopes: set[Cutoff] = set()


class Cutoff:
    """A ``with`` block of the current task, cancelled once its deadline has passed."""

    __slots__ = ("_cancelling", "_deadline", "_deadlines", "_key", "_task", "expired")

    def __init__(self, deadlines: Deadlines, key: float, task: asyncio.Task[Any] | None) -> None:
        task = task or asyncio.current_task()
        if task is None:
            raise RuntimeError("a cutoff must be used inside a task")
        self._deadlines = deadlines
        self._key = key
        self._task = task
        self._cancelling = task.cancelling()
        self._deadline: _Deadline | None = None
        self.expired = False

    def __enter__(self) -> Cutoff:
        self._deadline = self._deadlines.join(self._key, self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._deadline is not None:
            self._deadlines.leave(self._key, self._deadline, self)
        if (
            self.expired
            and self._task.uncancel() <= self._cancelling
            and exc_type is asyncio.CancelledError
        ):
            raise TimeoutError from exc

    def expire(self) -> None:
        self.expired = True
        self._task.cancel()


class Deadlines:
    """Cutoffs by deadline (a wall-clock time from ``clock``, the flusher's clock)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._pending: dict[float, _Deadline] = {}

    def cut_off_at(self, deadline: float, task: asyncio.Task[Any] | None = None) -> Cutoff:
        """A scope (``with``) for the current task that raises TimeoutError at ``deadline``.

        Every scope of one deadline shares the timer that the first of them scheduled. A caller
        that knows its task passes it: finding the current one is a call of Python code and a
        system call (``getpid``) on Python 3.11.
        """
        return Cutoff(self, deadline, task)

    def join(self, key: float, scope: Cutoff) -> _Deadline:
        pending = self._pending.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            handle = loop.call_at(loop.time() + (key - self._clock()), self._expire, key)
            pending = self._pending[key] = _Deadline(handle)
        pending.scopes.add(scope)
        return pending

    def leave(self, key: float, pending: _Deadline, scope: Cutoff) -> None:
        pending.scopes.discard(scope)
        if not pending.scopes and self._pending.get(key) is pending:
            del self._pending[key]
            pending.handle.cancel()

    def _expire(self, key: float) -> None:
        pending = self._pending.pop(key)
        for scope in pending.scopes:
            scope.expire()
