"""The read-only commands (``status``, ``entries``): they never create an outbox, and their
output may be cut short by a pipe. The pipe check runs a real ``python -m kit`` process.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from cli_helpers import Run, enqueue

from kit.outbox import Outbox

DEADLINE = 30.0  # only a hung process gets anywhere near it


async def test_entries_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """``etrusted-kit entries | head`` ends quietly when the reader goes away: no traceback."""
    db = str(tmp_path / "big.db")
    await enqueue(db, [f"p-{i}" for i in range(3000)])  # far more than a pipe buffer of JSON
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kit",
        "entries",
        "--json",
        "--db",
        db,
        stdout=write_end,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("ETRUSTED")},
    )
    os.close(write_end)
    assert proc.stderr is not None
    async with asyncio.timeout(DEADLINE):
        first = await asyncio.to_thread(os.read, read_end, 4096)  # what `| head -1` reads,
        assert first.startswith(b"{")
        os.close(read_end)  # ... before it exits
        err = await proc.stderr.read()
        await proc.wait()
    assert b"Traceback" not in err, err.decode()[-800:]


@pytest.mark.postgres
async def test_status_on_a_mistyped_postgres_schema_refuses_and_creates_nothing(
    run: Run, pg_dsn: str, pg_schema: str
) -> None:
    """A read-only command on a PostgreSQL schema without an outbox (a typo) exits 1 naming the
    schema, and creates nothing, rather than answering zeros from a schema it just created."""
    import asyncpg

    result = await run("status", "--db", f"{pg_dsn}?schema={pg_schema}")

    conn = await asyncpg.connect(pg_dsn)
    try:
        created = await conn.fetchval(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1", pg_schema
        )
    finally:
        await conn.close()
    assert created == 0, f"status created schema {pg_schema}: {result.out!r}"
    assert result.code == 1
    assert f"there is no outbox in schema {pg_schema!r}" in result.err


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An outbox URL not created yet, on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "old.db")
    return f"{request.getfixturevalue('pg_dsn')}?schema={request.getfixturevalue('pg_schema')}"


async def test_status_and_explain_of_a_moved_outbox_say_where_it_went(run: Run, db: str) -> None:
    """A moved outbox shows what it held when it was moved: status and explain still print
    that, and say on stderr, in one line, where the outbox went (without its password)."""
    await enqueue(db, ["p-1"])
    async with Outbox.from_url(db) as outbox:
        (entry,) = await outbox.entries()
        await outbox.storage.set_moved("postgresql://kit:s3cret@db.example/shop?schema=etk")
    async with Outbox.from_url(db) as outbox:
        plain = await run("status", "--db", db)
        explained = await run("explain", entry.key, "--db", db)
        await outbox.storage.set_moved(None)
    unmoved = (await run("status", "--db", db), await run("explain", entry.key, "--db", db))

    note = (
        "etrusted-kit: note: migrate-outbox moved this outbox to"
        " postgresql://kit@db.example/shop?schema=etk; what follows is as of the move\n"
    )
    assert (plain.code, plain.err) == (0, note)
    assert (explained.code, explained.err) == (0, note)
    assert (plain.out, explained.out) == (unmoved[0].out, unmoved[1].out)
    assert entry.key in explained.out
    assert [r.err for r in unmoved] == ["", ""]
