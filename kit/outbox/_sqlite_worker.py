"""The SQLite outbox's own thread, which alone uses the storage's ``sqlite3`` connection.

``sqlite3`` blocks, so the storage hands its work to one thread and awaits the result: the
connection is created on that thread, lives only there (``sqlite3`` itself refuses a use from
any other) and is closed there. Jobs run one at a time in the order they were handed in, which
is what lets a transaction span several awaits, and a ``ROLLBACK`` queued after a cancelled
statement run only after that statement has ended.

A job whose caller was cancelled before it started is skipped; one that has started runs to its
end, and its result is dropped (:mod:`kit.outbox._sqlite_group` hands such results back).
:meth:`Worker.close` closes the connection and joins the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")

# How often an idle thread checks whether the program has ended: a storage that was never closed
# must not keep the process alive once its main thread and its event loop are done.
_IDLE_CHECK_SECONDS = 0.5


class Executed(NamedTuple):
    """What a statement reports besides rows (the part of a cursor the outbox reads)."""

    rowcount: int


class _Job(NamedTuple):
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


class _Stop(NamedTuple):
    """Ends the thread; ``future`` (if anyone waits) tells when the connection is closed."""

    future: asyncio.Future[None] | None


class Worker:
    """One thread and the ``sqlite3`` connection it owns (see the module docstring).

    Built by :meth:`start`. The async methods mirror the few of aiosqlite's that the outbox
    uses, so the same batched writes run here and on a caller's aiosqlite connection.
    """

    def __init__(self, jobs: queue.SimpleQueue[_Job | _Stop], runner: threading.Thread) -> None:
        self._jobs = jobs
        self._runner = runner
        self._closed = False
        # A worker dropped without close(): stop its thread (which closes the connection).
        self._finalizer = weakref.finalize(self, _abandoned, jobs)
        self._finalizer.atexit = False

    @classmethod
    async def start(cls, connect: Callable[[], sqlite3.Connection], *, name: str) -> Worker:
        """A thread running ``connect()``; if that raises, the error, with the thread ended."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        jobs: queue.SimpleQueue[_Job | _Stop] = queue.SimpleQueue()
        runner = threading.Thread(target=_serve, args=(connect, jobs, ready), name=name)
        runner.start()
        try:
            await ready
        except asyncio.CancelledError:
            jobs.put(_Stop(None))  # the thread ends once connect() has returned
            raise
        except BaseException:
            runner.join()  # it has reported its last word: joining only waits for its return
            raise
        return cls(jobs, runner)

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """The future of ``fn(connection)`` on the thread, after every job handed in before it.

        Cancelling the future before the job starts skips the job. After :meth:`close`, the
        future holds sqlite3's error for a closed connection.
        """
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(sqlite3.ProgrammingError("Cannot operate on a closed database."))
        else:
            self._jobs.put(_Job(fn, future))
        return future

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn(connection)`` on the thread (see :meth:`submit`)."""
        return await self.submit(fn)

    async def execute(self, sql: str, parameters: Any = ()) -> Executed:
        return await self.run(lambda db: Executed(db.execute(sql, parameters).rowcount))

    async def executemany(self, sql: str, rows: Iterable[Any]) -> Executed:
        return await self.run(lambda db: Executed(db.executemany(sql, rows).rowcount))

    async def execute_fetchall(self, sql: str, parameters: Any = ()) -> list[Any]:
        return await self.run(lambda db: db.execute(sql, parameters).fetchall())

    async def commit(self) -> None:
        await self.run(lambda db: db.commit())

    async def rollback(self) -> None:
        await self.run(lambda db: db.rollback())

    async def close(self) -> None:
        """Close the connection once the jobs handed in before have run, and join the thread.

        An error closing the connection is raised, after the thread has ended all the same.
        """
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._jobs.put(_Stop(done))
        try:
            await done
        finally:
            # Cancelled, this does not wait: the thread ends on its own after the jobs before.
            if done.done() and not done.cancelled():
                self._runner.join()  # its last step was to report: it is returning now


def _serve(
    connect: Callable[[], sqlite3.Connection],
    jobs: queue.SimpleQueue[_Job | _Stop],
    ready: asyncio.Future[None],
) -> None:
    """The thread's body. It holds no reference to its :class:`Worker`, so that a worker
    dropped unclosed can be collected (and its thread stopped)."""
    try:
        db = connect()
    except BaseException as exc:  # noqa: BLE001 (the opener's error, handed back)
        _report(ready, None, exc)
        return
    _report(ready, None, None)
    loop = ready.get_loop()
    stop: _Stop | None = None
    try:
        while True:
            try:
                job = jobs.get(timeout=_IDLE_CHECK_SECONDS)
            except queue.Empty:
                if threading.main_thread().is_alive() or loop.is_running():
                    continue
                break
            if isinstance(job, _Stop):
                stop = job
                break
            # Read without a lock: a stale answer only means that the job runs and its result
            # is dropped, as if its caller had been cancelled a moment later.
            if job.future.cancelled():
                continue
            try:
                result = job.fn(db)
            except BaseException as exc:  # noqa: BLE001 (the caller's error, handed back)
                _report(job.future, None, exc)
            else:
                _report(job.future, result, None)
    finally:
        failed: BaseException | None = None
        try:
            db.close()
        except BaseException as exc:  # noqa: BLE001 (reported to close())
            failed = exc
        if stop is not None and stop.future is not None:
            _report(stop.future, None, failed)


def _report(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """Resolve ``future`` on its event loop; a loop that is closed by now has nobody waiting."""
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(_resolve, future, result, exc)


def _resolve(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # its caller was cancelled
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _abandoned(jobs: queue.SimpleQueue[_Job | _Stop]) -> None:
    warnings.warn(
        "an SQLite outbox storage was dropped without aclose(); its connection is closed now",
        ResourceWarning,
        stacklevel=1,
    )
    jobs.put(_Stop(None))
