"""The documentation's examples: every Python block compiles, every complete program runs,
every configuration example loads.

Blocks are the fenced ```python blocks of ``docs/**/*.md`` and ``README.md``. The first line of a
block says what it is:

``# test: run``
    A complete program. It runs in a subprocess, in a fresh temporary directory, against a fresh
    sandbox that has the event type ``order_shipped``. It gets the sandbox in the variables the
    CLI reads (``ETRUSTED_API_URL``, ``ETRUSTED_TOKEN_URL``, ``ETRUSTED_CLIENT_ID``,
    ``ETRUSTED_CLIENT_SECRET``) and a channel in ``ETRUSTED_CHANNEL_ID``.
``# test: postgres``
    The same, plus a fresh PostgreSQL schema: ``DATABASE_URL`` is a DSN whose ``search_path`` is
    that schema, ``ETRUSTED_KIT_DB`` the outbox URL with ``?schema=``. Runs only with ``pg_dsn``.
``# test: pytest``
    A test module, run by pytest in a subprocess with warnings as errors.
no marker
    A sketch (a FastAPI app, a fragment with top-level ``await``): it must compile.

A program passes when it exits 0 and its stderr shows no traceback, unclosed resource or
never-awaited coroutine. ```sql blocks whose first line is ``-- test: postgres`` or
``-- test: sqlite`` run against a freshly migrated outbox holding a few entries; in the
PostgreSQL ones ``etrusted_kit.`` is replaced by the test's schema.

```toml blocks are configuration files and load through the kit's own loader
(:func:`kit.configfile.parse_config`), each ``{ env = "NAME" }`` given a value. Their first line
may say otherwise:

``# test: source``
    The keys of one ``adapter = "shopify"`` ``[[sources]]`` table: the test puts the source's
    required keys (and a ``channel_id``, unless the block sets a channel) above them.
``# test: syntax``
    Another program's file (a ``pyproject.toml``, Shopify's ``shopify.app.toml``): it must be
    valid TOML.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import sqlite3
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import pytest
from builders import key, order

from kit.configfile import parse_config
from kit.outbox import Outbox
from kit.sandbox import SEEDED_CHANNEL_IDS, SandboxConfig
from kit.testing import running_sandbox

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
# Pages of this documentation set that must show at least one example that really runs.
MUST_RUN = ("adapters.md", "etrusted-api.md", "outbox.md", "postgres.md", "testing.md")

PYTHON_MODES = frozenset({"run", "postgres", "pytest"})
SQL_MODES = frozenset({"postgres", "sqlite"})
TOML_MODES = frozenset({"source", "syntax"})
MARKER = re.compile(r"^\s*(?:#|--)\s*test:\s*(?P<mode>\S+)\s*$")
OPENING = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)")
CLOSING = re.compile(r"^[ \t]*```[ \t]*$")
PROGRAM_TIMEOUT = 60.0
# What a clean program never prints, whatever it logs.
BAD_STDERR = (
    "Traceback (most recent call last)",
    "Exception ignored",
    "ResourceWarning",
    "Unclosed",
    "was never awaited",
    "Task was destroyed",
)


@attrs.frozen(kw_only=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    mode: str | None  # the ``test:`` marker, if any

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def extract(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, dedented to its fence."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = OPENING.match(lines[index])
        if opening is None:
            index += 1
            continue
        start, indent = index, len(opening["indent"])
        body: list[str] = []
        index += 1
        while index < len(lines) and not CLOSING.match(lines[index]):
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        index += 1  # past the closing fence
        first = next((ln for ln in body if ln.strip()), "")
        marker = MARKER.match(first)
        blocks.append(
            Block(
                path=path,
                line=start + 1,
                lang=opening["lang"].lower(),
                code="\n".join(body) + "\n",
                mode=marker["mode"] if marker else None,
            )
        )
    return blocks


ALL_BLOCKS = [b for path in DOC_FILES if path.is_file() for b in extract(path)]
PYTHON_BLOCKS = [b for b in ALL_BLOCKS if b.lang in ("python", "py")]
SQL_BLOCKS = [b for b in ALL_BLOCKS if b.lang == "sql" and b.mode is not None]
TOML_BLOCKS = [b for b in ALL_BLOCKS if b.lang == "toml"]


def _params(blocks: list[Block], *, postgres_mode: str = "postgres") -> list[Any]:
    return [
        pytest.param(b, id=b.id, marks=[pytest.mark.postgres] if b.mode == postgres_mode else [])
        for b in blocks
    ]


# -- the documents themselves ------------------------------------------------------------------


def test_extract_finds_fences_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\n# test: run\nprint(1)\n```\n\n- item\n\n  ```sh\n  ls\n  ```\n"
        "```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    blocks = extract(page)
    assert [(b.line, b.lang, b.mode) for b in blocks] == [
        (2, "python", "run"),
        (9, "sh", None),
        (12, "python", None),
    ]
    assert blocks[0].code == "# test: run\nprint(1)\n"
    assert blocks[1].code == "ls\n"


@pytest.mark.parametrize("name", MUST_RUN)
def test_each_page_has_examples_that_run(name: str) -> None:
    path = ROOT / "docs" / name
    assert path.is_file(), f"docs/{name} is missing"
    runnable = [b for b in PYTHON_BLOCKS if b.path == path and b.mode in PYTHON_MODES]
    assert runnable, f"docs/{name} has no Python example marked to run"


@pytest.mark.parametrize("block", _params(PYTHON_BLOCKS, postgres_mode="-"))
def test_python_block_compiles(block: Block) -> None:
    if block.mode is not None:
        assert block.mode in PYTHON_MODES, f"{block.id}: unknown marker 'test: {block.mode}'"
        # A program to run must be complete: no top-level await.
        compile(block.code, block.id, "exec", dont_inherit=True)
        return
    compile(block.code, block.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


@pytest.mark.parametrize("block", _params(SQL_BLOCKS, postgres_mode="-"))
def test_sql_markers_are_known(block: Block) -> None:
    assert block.mode in SQL_MODES, f"{block.id}: unknown marker 'test: {block.mode}'"


# -- running the programs ----------------------------------------------------------------------


def _environ(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # the kit's own variables were removed by the autouse fixture
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


async def _run(argv: list[str], *, cwd: Path, env: dict[str, str], what: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(PROGRAM_TIMEOUT):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.communicate()
        pytest.fail(f"{what} did not finish within {PROGRAM_TIMEOUT:g} s")
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    report = f"{what} exited {proc.returncode}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    assert proc.returncode == 0, report
    bad = [marker for marker in BAD_STDERR if marker in stderr]
    assert not bad, f"{what}: stderr shows {bad}\n{report}"


def _sandbox_config() -> SandboxConfig:
    # The documented precondition: `etrusted-kit event-types create order_shipped` was run.
    return SandboxConfig(event_types=("checkout", "order_shipped"))


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


async def _run_block(block: Block, tmp_path: Path, **extra_env: str) -> None:
    async with running_sandbox(_sandbox_config()) as server:
        env = _environ(
            ETRUSTED_API_URL=server.url,
            ETRUSTED_TOKEN_URL=server.token_url,
            ETRUSTED_CLIENT_ID=server.sandbox.config.client_id,
            ETRUSTED_CLIENT_SECRET=server.sandbox.config.client_secret,
            ETRUSTED_CHANNEL_ID=SEEDED_CHANNEL_IDS[0],
            **extra_env,
        )
        if block.mode == "pytest":
            (tmp_path / "pytest.ini").write_text(
                "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
                "filterwarnings =\n    error\n",
                encoding="utf-8",
            )
            (tmp_path / "test_example.py").write_text(block.code, encoding="utf-8")
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            await _run([*argv, "test_example.py"], cwd=tmp_path, env=env, what=block.id)
            return
        (tmp_path / "example.py").write_text(block.code, encoding="utf-8")
        argv = [sys.executable, "-W", "always::ResourceWarning", "example.py"]
        await _run(argv, cwd=tmp_path, env=env, what=block.id)


LEAKS_A_SESSION = """\
import asyncio
import aiohttp

async def main() -> None:
    aiohttp.ClientSession()

asyncio.run(main())
"""


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param("raise SystemExit(3)\n", "exited 3", id="exit-code"),
        pytest.param(LEAKS_A_SESSION, "Unclosed", id="unclosed-session"),
        pytest.param("def test_x() -> None:\n    assert 1 == 2\n", "exited 1", id="pytest"),
    ],
)
async def test_a_broken_example_fails(code: str, expected: str, tmp_path: Path) -> None:
    mode = "pytest" if "def test_" in code else "run"
    block = Block(path=tmp_path / "page.md", line=1, lang="python", code=code, mode=mode)
    with pytest.raises(AssertionError, match=expected):
        await _run_block(block, tmp_path)


RUN_BLOCKS = [b for b in PYTHON_BLOCKS if b.mode in ("run", "pytest")]
POSTGRES_BLOCKS = [b for b in PYTHON_BLOCKS if b.mode == "postgres"]


@pytest.mark.parametrize("block", _params(RUN_BLOCKS))
async def test_program_runs(block: Block, tmp_path: Path) -> None:
    await _run_block(block, tmp_path)


async def _create_schema(dsn: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("block", _params(POSTGRES_BLOCKS, postgres_mode="-"))
async def test_postgres_program_runs(
    block: Block, tmp_path: Path, pg_dsn: str, pg_schema: str
) -> None:
    await _create_schema(pg_dsn, pg_schema)
    await _run_block(
        block,
        tmp_path,
        DATABASE_URL=_with_query(pg_dsn, search_path=pg_schema),
        ETRUSTED_KIT_DB=_with_query(pg_dsn, schema=pg_schema),
    )


# -- the SQL a page tells operators to run -------------------------------------------------------


async def _fill(outbox: Outbox) -> None:
    await outbox.enqueue_many([order(n) for n in range(3)])
    await outbox.cancel(key("order-2"))


SQLITE_SQL = [b for b in SQL_BLOCKS if b.mode == "sqlite"]
POSTGRES_SQL = [b for b in SQL_BLOCKS if b.mode == "postgres"]


@pytest.mark.parametrize("block", _params(SQLITE_SQL))
async def test_sqlite_queries_run(block: Block, tmp_path: Path) -> None:
    db = tmp_path / "outbox.db"
    async with Outbox.from_url(str(db)) as outbox:
        await _fill(outbox)
    with sqlite3.connect(db) as conn:
        statement = ""
        for line in block.code.splitlines(keepends=True):
            statement += line
            if sqlite3.complete_statement(statement):
                conn.execute(statement).fetchall()
                statement = ""
    conn.close()
    assert not statement.strip(" \n;"), f"{block.id}: unfinished statement {statement!r}"


@pytest.mark.postgres
@pytest.mark.parametrize("block", _params(POSTGRES_SQL, postgres_mode="-"))
async def test_postgres_queries_run(block: Block, pg_dsn: str, pg_schema: str) -> None:
    import asyncpg

    async with Outbox.from_url(pg_dsn, schema=pg_schema) as outbox:
        await _fill(outbox)
    sql = re.sub(r"\betrusted_kit\.", f'"{pg_schema}".', block.code)
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(sql)  # no arguments: the simple protocol runs every statement
    finally:
        await conn.close()


# -- the configuration examples ------------------------------------------------------------------

# What a ``# test: source`` block is completed with, each key only where the block does not set
# it (a channel: unless the block sets ``channel_id`` or ``channels_by_locale``).
SOURCE_KEYS = {
    "name": '"my-shop"',
    "adapter": '"shopify"',
    "shop_domain": '"my-shop.myshopify.com"',
    "webhook_secrets": '[{ env = "SHOPIFY_WEBHOOK_SECRET" }]',
    "channel_id": '"chl-docs"',
}
ENV_NAME = re.compile(r'env\s*=\s*"([A-Za-z_][A-Za-z0-9_]*)"')


def _load_toml(block: Block) -> None:
    if block.mode is not None:
        assert block.mode in TOML_MODES, f"{block.id}: unknown marker 'test: {block.mode}'"
    if block.mode == "syntax":
        tomllib.loads(block.code)
        return
    text = block.code
    if block.mode == "source":
        sets = set(re.findall(r"^(\w+)\s*=", text, re.MULTILINE))
        if "channels_by_locale" in sets:
            sets.add("channel_id")
        head = [f"{key} = {value}" for key, value in SOURCE_KEYS.items() if key not in sets]
        text = "\n".join(["[[sources]]", *head, text])
    environ = {name: f"value-of-{name}" for name in ENV_NAME.findall(text)}
    parse_config(text, environ=environ, origin=block.id)


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in TOML_BLOCKS])
def test_toml_example_loads(block: Block) -> None:
    _load_toml(block)


@pytest.mark.parametrize(
    ("code", "mode"),
    [
        pytest.param('[outbox]\nurl = "x.db"\nsize = 3\n', None, id="unknown-key"),
        pytest.param("[[sources.triggers]]\ndelay = 3\n", "source", id="no-event-type"),
        pytest.param("[project\n", "syntax", id="not-toml"),
    ],
)
def test_a_broken_toml_example_fails(code: str, mode: str | None, tmp_path: Path) -> None:
    block = Block(path=tmp_path / "page.md", line=1, lang="toml", code=code, mode=mode)
    with pytest.raises(Exception):  # noqa: B017, PT011 - the loader's error or tomllib's
        _load_toml(block)
