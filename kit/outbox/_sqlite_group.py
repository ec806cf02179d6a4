"""Group commit for the SQLite outbox's hot path: claims, results and hold reads.

A flusher's feeder claims while its writer records results; as a transaction of its own, each
would be several round trips to the storage's worker thread, which per delivered event costs
more CPU than the SQL itself. Here each operation is a plain function of the ``sqlite3``
connection; the operations queued while one transaction runs go together into the next: one
``BEGIN IMMEDIATE ... COMMIT``, run by one call on the worker thread. An operation that fails
is reported to its caller alone (see :func:`run_group`).

A caller cancelled before its operation started is skipped; one cancelled while it ran gets its
``abandon`` hook called with the result (a claim hands its entries back that way).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from kit.outbox._sqlite_worker import Worker

T = TypeVar("T")


class GroupOp(Generic[T]):
    """One operation waiting for (or inside) a group transaction."""

    __slots__ = ("abandon", "abandoned", "error", "fn", "future", "ran", "result", "write")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], T],
        future: asyncio.Future[T],
        *,
        write: bool,
        abandon: Callable[[T], None] | None,
    ) -> None:
        self.fn = fn
        self.future = future
        self.write = write
        self.abandon = abandon
        # Set on the event loop, read on the worker thread: a plain attribute is enough, a
        # late read only means the operation runs and is handed to ``abandon``.
        self.abandoned = False
        self.ran = False
        self.result: Any = None
        self.error: BaseException | None = None


def run_group(db: sqlite3.Connection, ops: list[GroupOp[Any]]) -> None:
    """The body of one group transaction, on the worker thread; results stay on the ops.

    If an operation fails, the transaction is rolled back and every operation runs again in a
    transaction of its own, so the failure is its caller's alone. (Savepoints would do that
    too, but copy every page they touch to a sub-journal, on the path that must be cheap.)
    """
    failure = _transaction(db, ops)
    if failure is None:
        return
    culprit, failed = failure
    if [op for op in ops if not op.abandoned] == [culprit]:
        raise failed  # nobody else to rerun: the failure is the one caller's
    for op in ops:
        op.ran, op.result = False, None
    for op in ops:
        if op.abandoned:
            continue
        try:
            alone = _transaction(db, [op])
        except Exception as exc:  # noqa: BLE001 (the others may have committed: report it alone)
            op.ran, alone = True, (op, exc)
        if alone is not None:
            op.error = alone[1]


def _transaction(
    db: sqlite3.Connection, ops: list[GroupOp[Any]]
) -> tuple[GroupOp[Any], Exception] | None:
    """Run ``ops`` in one transaction; the operation that failed and its error, if one did.

    Failures of the transaction itself (BEGIN waiting out its busy timeout, COMMIT) are raised:
    they are every operation's.
    """
    db.execute("BEGIN IMMEDIATE" if any(op.write for op in ops) else "BEGIN")
    try:
        for op in ops:
            if op.abandoned:
                continue
            op.ran = True
            try:
                op.result = op.fn(db)
            except Exception as exc:  # noqa: BLE001 (its caller's error, handed back)
                if db.in_transaction:
                    db.execute("ROLLBACK")
                return op, exc
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return None


class GroupCommit:
    """Queues operations and runs each batch of them as one transaction (see the module)."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock  # the storage's lock: one transaction at a time on its connection
        self._queue: list[GroupOp[Any]] = []

    async def run(
        self,
        worker: Worker,
        fn: Callable[[sqlite3.Connection], T],
        *,
        write: bool = True,
        abandon: Callable[[T], None] | None = None,
    ) -> T:
        op: GroupOp[T] = GroupOp(
            fn, asyncio.get_running_loop().create_future(), write=write, abandon=abandon
        )
        self._queue.append(op)
        try:
            async with self._lock:
                if not op.future.done():
                    # Let the tasks that are ready now queue their operations too.
                    await asyncio.sleep(0)
                if not op.future.done() and self._queue:  # not taken along: lead a group
                    batch, self._queue = self._queue, []
                    job = worker.submit(functools.partial(_run_group, batch))
                    job.add_done_callback(lambda done: _settle(batch, done))
                    # Shielded: a cancelled leader must not cut the others' results off.
                    # A failed job is on every future (_settle), this one's too: the leader
                    # raises it from there, so no future is left with an unretrieved error.
                    with contextlib.suppress(Exception):
                        await asyncio.shield(job)
            return await op.future
        except asyncio.CancelledError:
            op.abandoned = True
            if op in self._queue:
                self._queue.remove(op)
            elif _succeeded(op.future) and op.abandon is not None:
                op.abandon(op.future.result())  # it ran before we were cancelled
            raise


def _run_group(batch: list[GroupOp[Any]], db: sqlite3.Connection) -> None:
    run_group(db, batch)  # looked up when it runs, so that a test can watch the groups


def _settle(batch: list[GroupOp[Any]], job: asyncio.Future[None]) -> None:
    failed = None if job.cancelled() else job.exception()
    for op in batch:
        if op.future.done():
            continue
        if job.cancelled() or op.abandoned:
            op.future.cancel()
        elif failed is not None:
            op.future.set_exception(failed)
        elif op.error is not None:
            op.future.set_exception(op.error)
        elif not op.ran:
            op.future.cancel()
        else:
            op.future.set_result(op.result)
    for op in batch:
        if op.abandoned and op.ran and failed is None and op.error is None and op.abandon:
            op.abandon(op.result)


def _succeeded(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None
