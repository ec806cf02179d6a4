"""The SQLite outbox's own thread: it alone uses the connection, runs jobs in order, reports each
job's outcome to its caller, skips jobs whose caller left, and never outlives the storage."""

from __future__ import annotations

import asyncio
import functools
import os
import sqlite3
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kit.errors import StorageError, StorageUnavailableError
from kit.outbox._sqlite_worker import Worker
from kit.outbox.sqlite import SQLiteStorage

WAIT = 10.0  # seconds: the bound on every wait for another thread
REPO = Path(__file__).resolve().parents[2]


def opener(path: Path) -> Callable[[], sqlite3.Connection]:
    return functools.partial(sqlite3.connect, path, isolation_level=None)


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[Worker]:
    w = await Worker.start(opener(tmp_path / "w.db"), name="test-worker")
    try:
        yield w
    finally:
        await w.close()


def current(db: sqlite3.Connection) -> threading.Thread:
    return threading.current_thread()


def outbox_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "kit.outbox.sqlite"}


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, WAIT)


# -- the thread and its connection ----------------------------------------------------------


async def test_every_job_runs_on_the_one_thread_that_owns_the_connection(worker: Worker) -> None:
    threads = {await worker.run(current) for _ in range(3)}
    assert len(threads) == 1
    assert threads != {threading.current_thread()}
    leaked: list[sqlite3.Connection] = []
    await worker.run(leaked.append)
    with pytest.raises(sqlite3.ProgrammingError, match="thread"):
        leaked[0].execute("SELECT 1")  # sqlite3 itself refuses any other thread


async def test_jobs_run_in_the_order_they_were_handed_in(worker: Worker) -> None:
    await worker.execute("CREATE TABLE t (n INTEGER)")
    await asyncio.gather(*(worker.execute("INSERT INTO t VALUES (?)", (n,)) for n in range(20)))
    assert await worker.execute_fetchall("SELECT n FROM t ORDER BY rowid") == [
        (n,) for n in range(20)
    ]


async def test_statements_report_their_row_counts(worker: Worker) -> None:
    await worker.execute("CREATE TABLE t (n INTEGER)")
    assert (await worker.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])).rowcount == 3
    assert (await worker.execute("DELETE FROM t WHERE n > ?", (1,))).rowcount == 2


async def test_a_transaction_spans_jobs_until_commit_or_rollback(worker: Worker) -> None:
    await worker.execute("CREATE TABLE t (n INTEGER)")
    await worker.execute("BEGIN")
    await worker.execute("INSERT INTO t VALUES (1)")
    await worker.rollback()
    await worker.execute("BEGIN")
    await worker.execute("INSERT INTO t VALUES (2)")
    await worker.commit()
    assert await worker.execute_fetchall("SELECT n FROM t") == [(2,)]


async def test_a_jobs_exception_reaches_its_caller_alone(worker: Worker) -> None:
    class Refused(Exception):
        pass

    def refuse(db: sqlite3.Connection) -> None:
        raise Refused("this job's own")

    results = await asyncio.gather(
        worker.run(lambda db: 1),
        worker.run(refuse),
        worker.run(lambda db: 3),
        return_exceptions=True,
    )
    assert results[0] == 1
    assert results[2] == 3
    assert isinstance(results[1], Refused)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await worker.execute("SELECT * FROM missing")
    assert await worker.run(lambda db: "still serving") == "still serving"


# -- cancellation ---------------------------------------------------------------------------


async def test_a_job_whose_caller_left_before_it_started_is_skipped(worker: Worker) -> None:
    inside, gate = threading.Event(), threading.Event()
    ran: list[str] = []

    def block(db: sqlite3.Connection) -> None:
        inside.set()
        gate.wait(WAIT)

    blocking = asyncio.ensure_future(worker.run(block))
    await wait_for(inside)
    waiting = asyncio.ensure_future(worker.run(lambda db: ran.append("skipped one")))
    await asyncio.sleep(0)  # handed in, behind the blocking job
    waiting.cancel()
    gate.set()
    await blocking
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await worker.run(lambda db: ran.append("next"))
    assert ran == ["next"]


async def test_a_job_whose_caller_left_while_it_ran_runs_to_its_end(worker: Worker) -> None:
    await worker.execute("CREATE TABLE t (n INTEGER)")
    inside, gate = threading.Event(), threading.Event()

    def slow_insert(db: sqlite3.Connection) -> None:
        inside.set()
        gate.wait(WAIT)
        db.execute("INSERT INTO t VALUES (1)")

    task = asyncio.ensure_future(worker.run(slow_insert))
    await wait_for(inside)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task  # the caller does not wait for the job
    gate.set()
    # The next job starts only after the cancelled one ended, and sees its write.
    assert await worker.execute_fetchall("SELECT n FROM t") == [(1,)]


# -- the end of the thread ------------------------------------------------------------------


async def test_close_runs_the_jobs_handed_in_before_and_ends_the_thread(tmp_path: Path) -> None:
    worker = await Worker.start(opener(tmp_path / "w.db"), name="test-worker")
    thread = await worker.run(current)
    gate = threading.Event()
    last = asyncio.ensure_future(worker.run(lambda db: gate.wait(WAIT)))
    closing = asyncio.ensure_future(worker.close())
    await asyncio.sleep(0)
    assert not closing.done()
    gate.set()
    await closing
    assert await last is True
    assert not thread.is_alive()
    assert worker.closed
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await worker.run(current)
    await worker.close()  # idempotent


async def test_a_failed_open_leaves_no_thread(tmp_path: Path) -> None:
    threads: list[threading.Thread] = []

    def refuse() -> sqlite3.Connection:
        threads.append(threading.current_thread())
        raise sqlite3.OperationalError("unable to open database file")

    with pytest.raises(sqlite3.OperationalError, match="unable to open"):
        await Worker.start(refuse, name="test-worker")
    assert threads
    assert not threads[0].is_alive()


async def test_an_open_cancelled_while_connecting_leaves_no_thread(tmp_path: Path) -> None:
    inside, gate = threading.Event(), threading.Event()
    threads: list[threading.Thread] = []

    def slow_connect() -> sqlite3.Connection:
        threads.append(threading.current_thread())
        inside.set()
        gate.wait(WAIT)
        return sqlite3.connect(tmp_path / "w.db")

    starting = asyncio.ensure_future(Worker.start(slow_connect, name="test-worker"))
    await wait_for(inside)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    gate.set()
    await asyncio.to_thread(threads[0].join, WAIT)
    assert not threads[0].is_alive()


async def test_a_worker_dropped_unclosed_warns_and_ends_its_thread(tmp_path: Path) -> None:
    worker = await Worker.start(opener(tmp_path / "w.db"), name="test-worker")
    thread = await worker.run(current)
    with pytest.warns(ResourceWarning, match="aclose"):
        del worker  # nothing else refers to it: collected at once
    await asyncio.to_thread(thread.join, WAIT)
    assert not thread.is_alive()


# -- through the storage --------------------------------------------------------------------


async def test_a_storage_leaves_no_thread_after_aclose(tmp_path: Path) -> None:
    before = outbox_threads()
    async with SQLiteStorage(tmp_path / "outbox.db") as storage:
        assert len(outbox_threads() - before) == 1
        await storage.holds(now=0)
    assert outbox_threads() == before
    with pytest.raises(StorageError, match="closed"):
        await storage.holds(now=0)


async def test_a_storage_that_fails_to_open_leaves_no_thread(tmp_path: Path) -> None:
    before = outbox_threads()
    with pytest.raises(StorageUnavailableError):
        await SQLiteStorage(tmp_path).open()  # a directory: sqlite3 cannot open it
    holder = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    try:
        holder.execute("CREATE TABLE app_table (x)")
        holder.execute("BEGIN IMMEDIATE")  # refuses the switch to WAL after the connect
        with pytest.raises(StorageUnavailableError, match="locked"):
            await SQLiteStorage(tmp_path / "busy.db", busy_timeout=0.05).open()
    finally:
        holder.close()
    assert outbox_threads() == before


UNCLOSED = textwrap.dedent(
    """
    import asyncio, sys
    from kit.outbox.sqlite import SQLiteStorage

    KEPT = SQLiteStorage(sys.argv[1])  # referenced until the very end, never closed

    async def main():
        await KEPT.open()
        await KEPT.holds(now=0)

    asyncio.run(main())
    print("main done", flush=True)
    """
)


async def test_a_program_that_never_closes_its_storage_still_exits(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        UNCLOSED,
        str(tmp_path / "outbox.db"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), timeout=60)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == 0, err
    assert out == b"main done\n"
