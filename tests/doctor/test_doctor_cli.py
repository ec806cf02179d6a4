"""``etrusted-kit doctor`` against a sandbox account over loopback: a good setup passes, each
broken part is named in plain words, and ``--fix`` repairs what the API allows."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sys
from pathlib import Path

import pytest
from cli_helpers import PROCESS_DEADLINE, Run, run_kit

from kit.sandbox import SandboxServer

from .conftest import CHANNEL, OTHER_CHANNEL, SECRET_VARIABLE, TYPES, WEBHOOK_SECRET, write_config
from .doctor_helpers import deactivate, delete_type, invites_on, is_active, switch_invites

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")  # what a token's header looks like in any output


def check_lines(out: str) -> dict[str, str]:
    """The mark of each check's line: ``{"database": "✓", ...}``."""
    found = {}
    for line in out.splitlines():
        match = re.match(r"^(\S+) ([a-z ]+): ", line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text
    assert not JWT.search(text), "a token was printed"


async def test_a_good_setup_passes_every_check(run: Run, config: Path) -> None:
    """Everything set up: every check is ticked and the exit code is 0."""
    result = await run("doctor", "--config", str(config))
    assert result.code == 0, result.out
    marks = check_lines(result.out)
    assert set(marks) == {
        "configuration",
        "credentials",
        "channels",
        "event types",
        "invite settings",
        "database",
        "source secrets",
        "feeds",
        "clock",
    }
    assert marks.pop("feeds") == "-"  # webhooks only: no feed to try
    assert set(marks.values()) == {"✓"}
    assert "everything is set up" in result.out


async def test_each_broken_part_of_the_account_is_named(
    run: Run,
    tmp_path: Path,
    sandbox: SandboxServer,
    db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A missing type, an inactive type, invites off, a channel the account does not have and
    an unset webhook secret: one run names each, says how to fix it, and exits 1."""
    delete_type(sandbox, TYPES[1])
    deactivate(sandbox, TYPES[0])
    switch_invites(sandbox, TYPES[0], CHANNEL, on=False)
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    config = write_config(
        tmp_path / "shop.toml", sandbox, db=db, channels='channels_by_locale = { fr = "chl-gone" }'
    )
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    out = result.out
    marks = check_lines(out)
    for check in ("channels", "event types", "invite settings", "source secrets"):
        assert marks[check] == "✗", check
    for check in ("configuration", "credentials", "database", "clock"):
        assert marks[check] == "✓", check
    assert f"event type '{TYPES[1]}' (source my-shop) does not exist" in out
    assert f"event type '{TYPES[0]}' (source my-shop) is inactive" in out
    assert f"invites are switched off for '{TYPES[0]}' in channel {CHANNEL}" in out
    assert "channel chl-gone (source my-shop) does not exist" in out
    assert f"${SECRET_VARIABLE}, which is not set" in out
    assert f"event-types create {TYPES[1]}" in out  # the hint names the command
    no_secrets(out, sandbox.sandbox.config.client_secret)


async def test_fix_repairs_the_account_and_a_second_run_passes(
    run: Run, config: Path, sandbox: SandboxServer
) -> None:
    """``--fix --yes`` prints its plan, creates the missing type, activates the inactive one
    and switches invites on where the source sends, and then every check passes."""
    delete_type(sandbox, TYPES[1])
    deactivate(sandbox, TYPES[0])
    switch_invites(sandbox, TYPES[0], CHANNEL, on=False)

    fixed = await run("doctor", "--config", str(config), "--fix", "--yes")
    assert fixed.code == 0, fixed.out
    assert "--fix will:" in fixed.out
    assert f"create event type '{TYPES[1]}' (active)" in fixed.out
    assert f"activate event type '{TYPES[0]}'" in fixed.out
    assert is_active(sandbox, TYPES[0])
    assert is_active(sandbox, TYPES[1])
    assert invites_on(sandbox, TYPES[0], CHANNEL)
    assert invites_on(sandbox, TYPES[1], CHANNEL)
    # A channel no source sends to is left as it was: the new type's invites stay off there.
    assert not invites_on(sandbox, TYPES[1], OTHER_CHANNEL)

    again = await run("doctor", "--config", str(config))
    assert again.code == 0, again.out


async def test_fix_waits_for_settings_etrusted_creates_late(
    run: Run, tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A type created through the API gets its invite settings a moment later: --fix waits
    for them and switches them on, instead of failing or leaving invites off."""
    from kit.sandbox import SandboxConfig
    from kit.testing import running_sandbox

    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    late = SandboxConfig(event_types=("checkout", TYPES[0]), invite_settings_delay=1.0)
    async with running_sandbox(late) as server:
        config = write_config(tmp_path / "shop.toml", server, db=db)
        fixed = await run("doctor", "--config", str(config), "--fix", "--yes")
        assert fixed.code == 0, fixed.out
        assert invites_on(server, TYPES[1], CHANNEL)


async def test_fix_on_a_non_terminal_changes_nothing_without_yes(
    run: Run, config: Path, sandbox: SandboxServer
) -> None:
    """Without a terminal to ask on, --fix prints the plan and applies none of it."""
    deactivate(sandbox, TYPES[0])
    result = await run("doctor", "--config", str(config), "--fix")
    assert result.code == 1
    assert f"activate event type '{TYPES[0]}'" in result.out
    assert "not applied: pass --yes" in result.out
    assert not is_active(sandbox, TYPES[0])


async def test_bad_credentials_are_named_and_never_printed(
    run: Run, tmp_path: Path, sandbox: SandboxServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong client secret: the credentials check says eTrusted refused them, the account
    checks are skipped for that reason, and neither secret appears in the output."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    wrong = "not-the-sandbox-secret-1234"
    config = write_config(tmp_path / "shop.toml", sandbox, db=db, client_secret=wrong)
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    marks = check_lines(result.out)
    assert marks["credentials"] == "✗"
    assert marks["event types"] == marks["invite settings"] == marks["channels"] == "-"
    assert "refused the credentials" in result.out
    no_secrets(result.out + result.err, wrong, WEBHOOK_SECRET)


async def test_missing_credentials_name_the_variables(
    run: Run, tmp_path: Path, sandbox: SandboxServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No credentials anywhere: the credentials check names the variables to set."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    config = write_config(tmp_path / "shop.toml", sandbox, db=db)
    text = config.read_text().replace('client_secret = "sandbox-secret"', "")
    config.write_text(text.replace('client_id = "sandbox-client"', ""))
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert "ETRUSTED_CLIENT_ID and ETRUSTED_CLIENT_SECRET" in result.out


async def test_a_missing_database_is_named_and_not_created(
    run: Run, tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped outbox path is reported, not answered with a new empty database; --fix
    creates and migrates it, as serve would on a first start."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    path = tmp_path / "typo.db"
    config = write_config(tmp_path / "shop.toml", sandbox, db=f"sqlite:///{path}")
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert check_lines(result.out)["database"] == "✗"
    assert f"the outbox database {path} does not exist" in result.out
    assert not path.exists()

    fixed = await run("doctor", "--config", str(config), "--fix", "--yes")
    assert fixed.code == 0, fixed.out
    assert path.exists()


async def test_the_db_flag_wins_over_the_file(run: Run, tmp_path: Path, config: Path) -> None:
    """--db chooses the outbox checked, as it does for every other command."""
    other = tmp_path / "other.db"
    result = await run("doctor", "--config", str(config), "--db", str(other))
    assert result.code == 1
    assert f"the outbox database {other} does not exist" in result.out


async def test_json_is_one_document_with_every_problem(
    run: Run, config: Path, sandbox: SandboxServer
) -> None:
    """--json prints one document: ok, and each check with its status and problems."""
    switch_invites(sandbox, TYPES[1], CHANNEL, on=False)
    result = await run("doctor", "--config", str(config), "--json")
    assert result.code == 1
    doc = json.loads(result.out)
    assert doc["ok"] is False
    by_name = {c["name"]: c for c in doc["checks"]}
    invites = by_name["invite settings"]
    assert invites["status"] == "problem"
    (problem,) = invites["problems"]
    assert TYPES[1] in problem["message"]
    assert CHANNEL in problem["message"]
    assert problem["fix"].startswith("switch invites on")
    assert by_name["database"]["status"] == "ok"
    no_secrets(result.out, sandbox.sandbox.config.client_secret, WEBHOOK_SECRET)


async def test_json_fix_needs_yes_and_reports_outcomes(
    run: Run, config: Path, sandbox: SandboxServer
) -> None:
    """With --json nothing asks: --fix without --yes only plans; with it the document holds
    the plan, each outcome, the checks before and the checks after."""
    deactivate(sandbox, TYPES[0])
    planned = json.loads((await run("doctor", "--config", str(config), "--fix", "--json")).out)
    assert planned["fix"]["applied"] is False
    assert planned["fix"]["plan"] == [f"activate event type '{TYPES[0]}'"]
    assert not is_active(sandbox, TYPES[0])

    result = await run("doctor", "--config", str(config), "--fix", "--yes", "--json")
    assert result.code == 0
    doc = json.loads(result.out)
    assert doc["ok"] is True
    assert doc["fix"]["applied"] is True
    assert [o["ok"] for o in doc["fix"]["outcomes"]] == [True]
    assert {c["name"]: c["status"] for c in doc["before"]}["event types"] == "problem"


async def test_a_process_without_utf8_output_gets_ascii_marks(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run as a real process whose output cannot encode ✓: ASCII marks, same verdict."""
    monkeypatch.setenv("PYTHONIOENCODING", "ascii")
    result = await run_kit("doctor", "--config", str(config), cwd=tmp_path)
    assert result.code == 0, result.out + result.err
    assert "ok credentials: " in result.out
    assert "✓" not in result.out


async def _answer_prompt(config: Path, cwd: Path, answer: str) -> tuple[int, str]:
    """``doctor --fix`` as a real process whose stdin is a terminal; ``answer`` is typed once
    the question is on screen."""
    controller, terminal = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kit",
        "doctor",
        "--config",
        str(config),
        "--fix",
        cwd=cwd,
        env=dict(os.environ),
        stdin=terminal,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    os.close(terminal)
    seen = b""
    try:
        async with asyncio.timeout(PROCESS_DEADLINE):
            assert proc.stdout is not None
            while b"apply these fixes? [y/N]" not in seen:
                chunk = await proc.stdout.read(4096)
                assert chunk, seen.decode()
                seen += chunk
            os.write(controller, answer.encode() + b"\n")
            seen += await proc.stdout.read()
            code = await proc.wait()
    finally:
        os.close(controller)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return code, seen.decode()


async def test_fix_on_a_terminal_asks_before_changing_anything(
    tmp_path: Path, config: Path, sandbox: SandboxServer
) -> None:
    """On a terminal --fix shows the plan and asks: no leaves the account as it was, yes
    applies the plan and the run ends with every check passing."""
    deactivate(sandbox, TYPES[0])
    code, out = await _answer_prompt(config, tmp_path, "n")
    assert code == 1, out
    assert f"activate event type '{TYPES[0]}'" in out
    assert not is_active(sandbox, TYPES[0])

    code, out = await _answer_prompt(config, tmp_path, "y")
    assert code == 0, out
    assert is_active(sandbox, TYPES[0])
    assert "everything is set up" in out


async def test_fix_leaves_what_it_cannot_repair_to_the_operator(
    run: Run, tmp_path: Path, sandbox: SandboxServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel the account does not have cannot be created through the API: --fix says
    nothing here can be repaired, changes nothing, and exits 1."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    config = write_config(
        tmp_path / "shop.toml", sandbox, db=db, channels='channels_by_locale = { fr = "chl-gone" }'
    )
    result = await run("doctor", "--config", str(config), "--fix", "--yes")
    assert result.code == 1
    assert "none of these problems can be repaired here" in result.out
    assert sandbox.sandbox.request_count("*", "/event-types") == 1  # the one list, no change
    assert sandbox.sandbox.request_count("PATCH", "/") == 0
