"""Cuts off POSTs that would outlive their lease: one timer per deadline, shared by its POSTs.

The entries of one claim share one lease, so their POSTs share one deadline. An
``asyncio.timeout`` around each POST schedules a timer per event and cancels it again; the
loop's heap of timers (compared by a Python ``__lt__``, and full of cancelled timers) made that
about a tenth of the flusher's CPU per delivered event. Here the first POST of a deadline
schedules its timer, the others join it, and the last to leave cancels it.

A scope that expires behaves as ``asyncio.timeout`` does: its task is cancelled, and the scope
turns that cancellation into :class:`TimeoutError` unless someone else cancelled the task too
(a stop that abandons the POSTs in flight), in which case the cancellation goes on.

A lease's end is stored as a wall-clock time, which the other flushers compare with theirs. The
flusher's own decisions about a lease it holds (may a POST start, when is it cut off) count on
the event loop's monotonic clock from the claim (:class:`LeaseEnds`): a wall clock stepped back
after the claim (an NTP step, a resumed VM) must not keep a POST going after the others may take
its entry over. A wall clock stepped forward ends the lease earlier, as it does for the claims.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from kit.outbox.types import Claimed

# The loop-clock end of a lease no longer noted (see LeaseEnds): long over.
LEASE_OVER = -math.inf


class _Deadline:
    """The timer of one deadline and the scopes inside it."""

    __slots__ = ("handle", "scopes")

    def __init__(self, handle: asyncio.TimerHandle) -> None:
        self.handle = handle
        self.scopes: set[Cutoff] = set()


class Cutoff:
    """A ``with`` block of the current task, cancelled once its deadline has passed."""

    __slots__ = ("_cancelling", "_deadline", "_deadlines", "_key", "_task", "_wall", "expired")

    def __init__(
        self, deadlines: Deadlines, key: float, wall: float, task: asyncio.Task[Any] | None
    ) -> None:
        task = task or asyncio.current_task()
        if task is None:
            raise RuntimeError("a cutoff must be used inside a task")
        self._deadlines = deadlines
        self._key = key
        self._wall = wall
        self._task = task
        self._cancelling = task.cancelling()
        self._deadline: _Deadline | None = None
        self.expired = False

    def __enter__(self) -> Cutoff:
        self._deadline = self._deadlines.join(self._key, self._wall, self)
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
    """Cutoffs by deadline, a time of the event loop's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        """``clock``: the flusher's wall clock, for the ``wall`` bound of a deadline."""
        self._clock = clock
        self._pending: dict[float, _Deadline] = {}

    def cut_off_at(
        self, deadline: float, wall: float = math.inf, task: asyncio.Task[Any] | None = None
    ) -> Cutoff:
        """A scope (``with``) for the current task that raises TimeoutError at ``deadline`` (on
        the loop's clock), or at ``wall`` on the wall clock if that comes first.

        Every scope of one deadline shares the timer that the first of them scheduled, where the
        wall clock is read once. A caller that knows its task passes it: finding the current one
        is a call of Python code and a system call (``getpid``) on Python 3.11.
        """
        return Cutoff(self, deadline, wall, task)

    def join(self, key: float, wall: float, scope: Cutoff) -> _Deadline:
        pending = self._pending.get(key)
        if pending is None:
            loop = asyncio.get_running_loop()
            when = min(key, loop.time() + (wall - self._clock()))
            handle = loop.call_at(when, self._expire, key)
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


class LeaseEnds:
    """When the leases this flusher holds end on the event loop's clock, by their stored
    (wall-clock) end: one entry per claim, as the entries of one claim share one lease.

    The workers read :attr:`ends` directly (a method call per entry costs more than the lookup);
    an end not found is :data:`LEASE_OVER`: the lease was forgotten because it was over.
    """

    __slots__ = ("_order", "ends")

    def __init__(self) -> None:
        self.ends: dict[float, float] = {}
        self._order: deque[float] = deque()  # the stored ends, oldest claim first

    def claimed(self, items: Iterable[Claimed], wall_now: float, loop_now: float) -> None:
        """Note the leases of a claim made at ``wall_now``, read together with ``loop_now``;
        forget those over by then."""
        ends, order = self.ends, self._order
        while order and ends[order[0]] <= loop_now:
            del ends[order.popleft()]
        offset = loop_now - wall_now
        for item in items:
            stored = item.lease_expires_at
            # The same stored end from an earlier claim (a clock stepped back onto it, or a
            # frozen test clock): that claim's, the earlier, end stands for both.
            if stored not in ends:
                ends[stored] = stored + offset
                order.append(stored)
