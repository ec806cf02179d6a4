"""``etrusted-kit import``: refused rows on stderr by line as they are found, a summary on
stdout, exit 3 when rows were refused, 1 when the file cannot be used at all; a progress bar
on a terminal only."""

from __future__ import annotations

import io
import json
from pathlib import Path

from adapters.importer import Progress
from kit.cli.import_cmd import _Bar

from .files import config_text
from .test_import_rows import GOOD_AND_BAD


def _files(tmp_path: Path, text: str, *, extra: str = "") -> tuple[str, str]:
    data = tmp_path / "orders.csv"
    data.write_text(text, encoding="utf-8")
    config = tmp_path / "kit.toml"
    config.write_text(config_text(str(tmp_path / "outbox.db"), extra=extra), encoding="utf-8")
    return str(data), str(config)


async def test_import_then_import_again(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The first run reports each bad row with its line and exits 3; the second finds every
    transaction imported before."""
    data, config = _files(tmp_path, GOOD_AND_BAD)
    first = await run("import", data, "--source", "legacy", "--config", config)
    assert first.code == 3
    assert (
        first.err.splitlines()[0] == "line 5: email: not a valid e-mail address (transaction 1044)"
    )
    assert len(first.err.splitlines()) == 7
    assert first.out.splitlines() == [
        f"import of {data} (csv, by extension .csv)",
        "  11 rows: 4 taken, 7 refused",
        "  3 transactions, 0 imported before (unchanged)",
        "  3 enqueued",
    ]
    again = await run("import", data, "--source", "legacy", "--config", config, "--json")
    assert again.code == 3
    report = json.loads(again.out)
    assert (report["transactions"], report["duplicates"], report["outcomes"]) == (3, 3, {})
    assert report["errors"][0] == {
        "line": 5,
        "reason": "email: not a valid e-mail address",
        "reference": "1044",
    }
    assert again.err == ""  # --json: the errors are in the report


async def test_a_file_without_a_required_column_exits_1(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data, config = _files(
        tmp_path, "transaction_reference,transaction_date,consent\n1,2025-03-01,yes\n"
    )
    result = await run("import", data, "--source", "legacy", "--config", config)
    assert result.code == 1
    assert "line 1: the header has no column email" in result.err


async def test_only_an_import_source_takes_files(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shop = (
        '\n[[sources]]\nname = "shop"\nadapter = "shopify"\nshop_domain = "a.myshopify.com"\n'
        'webhook_secrets = ["s"]\nchannel_id = "chl-1"\n'
    )
    data, config = _files(tmp_path, GOOD_AND_BAD, extra=shop)
    result = await run("import", data, "--source", "shop", "--config", config)
    assert result.code == 1
    assert 'import needs a source with adapter = "import"' in result.err
    missing = await run("import", data, "--source", "nope", "--config", config)
    assert "no source 'nope' in the configuration file; its sources: legacy, shop" in missing.err


async def test_a_dry_run_writes_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Not even the database file: with none yet, nothing was imported before."""
    data, config = _files(tmp_path, GOOD_AND_BAD)
    result = await run("import", data, "--source", "legacy", "--config", config, "--dry-run")
    assert result.code == 3
    lines = result.out.splitlines()
    assert lines[0] == f"dry run: import of {data} (csv, by extension .csv)"
    assert lines[-2:] == ["  3 would be enqueued", "  nothing was written"]
    assert not (tmp_path / "outbox.db").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_rows_and_rate_on_a_terminal_only() -> None:
    terminal, pipe = _Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        bar = _Bar(1000, stream)
        bar(Progress(bytes_read=500, rows=2000, transactions=1000))
        bar.close()
    assert pipe.getvalue() == ""
    shown = terminal.getvalue()
    assert "50%" in shown
    assert "rows=2000" in shown
    assert "rows/s" in shown


async def test_config_check_says_an_import_source_takes_no_webhooks(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, config = _files(tmp_path, GOOD_AND_BAD)
    result = await run("config", "check", config)
    assert result.code == 0
    assert "source legacy: adapter import, no webhooks, channel" in result.out
