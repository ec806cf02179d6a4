"""The documentation's command lines, which tests/test_docs.py does not run.

test_docs.py runs the Python programs of the docs and compiles the sketches, but it never looks
at the ``sh``/``console`` blocks or at inline ``etrusted-kit ...`` spans. These tests:

- parse every documented ``etrusted-kit`` command line with the real argument parser, so a flag
  that is renamed or removed fails here instead of in an operator's shell;
- run the README's daemon walk-through (enqueue, flush --once, status, entries, dead retry,
  event-types list) against a sandbox, with the exit codes docs/outbox.md promises;
- pin down how a 409 on POST /events is treated (in doubt, not parked), as
  docs/guarantees.md's failure table states.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import CHANNEL
from builders import event as _event
from cli_helpers import Run

from kit.cli import build_parser
from kit.client import ETrustedClient
from kit.flusher import Flusher, FlusherConfig
from kit.outbox import Outbox, State
from kit.retry import Backoff
from kit.sandbox import Fault, FaultKind, SandboxConfig, SandboxServer
from kit.testing import running_sandbox

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]

FENCE = re.compile(r"^\s*```(?P<lang>[\w+-]*)\s*$")
INLINE = re.compile(r"`(etrusted-kit [^`]+)`")
# Placeholders the docs use in command lines, and a value each can be parsed with.
PLACEHOLDERS = {
    "KEY...": "some-key",
    "KEY": "some-key",
    "EMAIL": "ada@example.com",
    "NAME": "order_shipped",
    "N": "30",
    "resend|park": "park",
}


def _shell_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``etrusted-kit`` command lines of the sh/console blocks, continuation lines joined."""
    in_block, lang = False, ""
    pending: tuple[int, str] | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fence = FENCE.match(line)
        if fence is not None:
            in_block, lang = (not in_block), fence["lang"]
            continue
        if not in_block or lang not in ("sh", "console", "bash", "shell"):
            continue
        text = line.strip()
        if pending is not None:
            start, joined = pending
            joined += " " + text.rstrip("\\").strip()
            pending = (start, joined) if text.endswith("\\") else None
            if pending is None:
                yield start, joined
            continue
        text = text.removeprefix("$ ")
        if not text.startswith("etrusted-kit "):
            continue
        if text.endswith("\\"):
            pending = (number, text.rstrip("\\").strip())
            continue
        yield number, text


def _inline_lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        for match in INLINE.finditer(line):
            yield number, match.group(1)


def _documented_commands() -> list[Any]:
    actions = build_parser()._actions
    (sub,) = [a for a in actions if isinstance(a, argparse._SubParsersAction)]
    subcommands = set(sub.choices)
    params = []
    for path in DOC_FILES:
        for number, text in [*_shell_lines(path), *_inline_lines(path)]:
            words = shlex.split(text, comments=True)
            # Inline prose such as `etrusted-kit flusher` or `etrusted-kit claims` (an
            # application_name) is not a command line.
            if len(words) < 2 or words[1].lstrip("-") not in subcommands | {"v"}:
                continue
            if words[-1] == "&":
                words = words[:-1]
            params.append(pytest.param(words[1:], id=f"{path.relative_to(ROOT)}:{number}"))
    return params


@pytest.mark.parametrize("argv", _documented_commands())
def test_documented_command_lines_parse(argv: list[str]) -> None:
    args = [PLACEHOLDERS.get(word, word) for word in argv]
    args = [re.sub(r"\$\w+", "scratch", a) for a in args]  # "$TMP/sandbox.json"
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:  # argparse: unknown flag, bad choice, missing argument
        pytest.fail(f"`etrusted-kit {' '.join(argv)}` is refused by the parser (exit {exc.code})")


# -- the README's daemon walk-through, against a sandbox -----------------------------------------


@pytest.fixture
async def sandbox_env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SandboxServer]:
    config = SandboxConfig(event_types=("checkout", "order_shipped"))
    async with running_sandbox(config) as server:
        monkeypatch.setenv("ETRUSTED_API_URL", server.url)
        monkeypatch.setenv("ETRUSTED_TOKEN_URL", server.token_url)
        monkeypatch.setenv("ETRUSTED_CLIENT_ID", server.sandbox.config.client_id)
        monkeypatch.setenv("ETRUSTED_CLIENT_SECRET", server.sandbox.config.client_secret)
        yield server


async def test_readme_daemon_walkthrough(
    run: Run, sandbox_env: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETRUSTED_KIT_DB", str(tmp_path / "outbox.db"))
    lines = [
        _event("order-1"),
        _event("order-1"),  # a redelivered webhook
        _event("order-2", email="not-an-email"),
        _event("order-3", type_="legacy_survey"),  # unknown in eTrusted: parked before sending
    ]
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(b) + "\n" for b in lines))

    # outbox.md: prints `enqueued N, duplicate N, invalid N`, exits 1 if any line was invalid.
    result = await run("enqueue", "events.jsonl")
    assert result.code == 1
    assert result.out.strip() == "enqueued 2, duplicate 1, invalid 1"
    assert "events.jsonl:3" in result.err
    assert "customer.email" in result.err

    assert (await run("flush", "--once")).code == 0

    status = await run("status", "--json")
    data = json.loads(status.out)
    expected = {"db", "counts", "oldest_pending_age_seconds", "oldest_due_age_seconds"}
    expected |= {"backing_off", "oldest_backing_off_age_seconds"}
    expected |= {"last_error", "blind_resends", "adopted", "holds"}
    assert set(data) == expected
    assert data["counts"]["delivered"] == 1
    assert data["counts"]["dead"] == 1

    dead = await run("entries", "--state", "dead", "--json")
    (entry,) = [json.loads(line) for line in dead.out.splitlines()]
    assert set(entry) == {
        "key", "state", "event_ref", "attempts", "sends", "last_error", "event_type",
        "channel_id", "transaction_reference", "created_at", "due_at", "delivered_at",
        "adopted", "blind_resends",
    }  # fmt: skip
    assert entry["transaction_reference"] == "order-3"

    listed = await run("dead", "list")
    assert listed.out.startswith(f"{entry['key']}\t")

    # outbox.md: `dead retry` and `dead drop` exit 1 when a named key was not dead.
    assert (await run("dead", "retry", f"{CHANNEL}:order_shipped:order-1")).code == 1
    assert (await run("dead", "retry", "--all")).code == 0
    assert (await run("event-types", "list")).code == 0


# -- docs/guarantees.md, failure table: a 409 on POST /events is in doubt --------------------------


async def test_a_409_on_post_events_is_in_doubt_not_parked(tmp_path: Path) -> None:
    """A 409 to POST /events is undocumented; if it ever means "already have it", the event
    exists, so the entry is in doubt: it is reconciled, not parked, as the failure table of
    docs/guarantees.md states."""
    config = SandboxConfig(event_types=("checkout", "order_shipped"), seed=1)
    fast = FlusherConfig(
        poll_interval=0.02,
        backoff=Backoff(base=0.01, cap=0.05),
        reconcile_delay=0.0,
        reconcile_interval=0.02,
        reconcile_window=0.3,
    )
    async with running_sandbox(config) as server:
        server.sandbox.add_fault(
            Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=409, times=1)
        )
        async with (
            Outbox.from_url(str(tmp_path / "outbox.db")) as outbox,
            ETrustedClient(server.client_config(request_timeout=1.0)) as client,
        ):
            await outbox.enqueue(_event("order-409"))
            flusher = Flusher(outbox, client, fast)
            await flusher.run_once()
            (entry,) = await outbox.entries()
            assert entry.state is State.IN_DOUBT, entry  # not DEAD, as one table row says
            assert flusher.stats.in_doubt == 1
            assert flusher.stats.dead == 0
