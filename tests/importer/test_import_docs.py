"""docs/adapters/import.md's examples are what the importer does: its source loads, its CSV
example prints the documented output, and its JSON-lines example is the same import."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kit.configfile import parse_config

PAGE = Path(__file__).resolve().parents[2] / "docs" / "adapters" / "import.md"


def _blocks(lang: str) -> list[str]:
    text = PAGE.read_text(encoding="utf-8")
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    (toml,) = _blocks("toml")
    config = tmp_path / "shop.toml"
    config.write_text(
        toml.replace('url = "etrusted-kit.db"', f'url = "{tmp_path / "outbox.db"}"'),
        encoding="utf-8",
    )
    (csv,) = _blocks("csv")
    (jsonl,) = _blocks("jsonl")
    (tmp_path / "orders.csv").write_text(csv, encoding="utf-8")
    (tmp_path / "orders.jsonl").write_text(jsonl, encoding="utf-8")
    return config, tmp_path / "orders.csv", tmp_path / "orders.jsonl"


def test_the_documented_source_loads() -> None:
    (toml,) = _blocks("toml")
    (source,) = parse_config(toml, environ={}).sources
    assert (source.adapter, source.webhook_secrets) == ("import", ())


async def test_the_csv_example_prints_what_the_page_shows(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, csv, _ = _files(tmp_path)
    (console,) = _blocks("console")
    shown = console.splitlines()
    assert shown[0] == "$ etrusted-kit import orders.csv --source legacy-shop --config shop.toml"
    result = await run("import", str(csv), "--source", "legacy-shop", "--config", str(config))
    assert result.code == 3
    assert result.err.splitlines() == shown[1:2]
    assert result.out.replace(str(csv), "orders.csv").splitlines() == shown[2:]


async def test_the_json_lines_example_is_the_same_import(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, csv, jsonl = _files(tmp_path)
    argv = ("--source", "legacy-shop", "--config", str(config), "--json")
    first = json.loads((await run("import", str(jsonl), *argv)).out)
    assert (first["format"], first["transactions"], first["bad_rows"]) == ("jsonl", 2, 1)
    assert first["errors"][0]["reason"] == "email: not a valid e-mail address"
    again = json.loads((await run("import", str(csv), *argv)).out)
    assert (again["transactions"], again["duplicates"], again["outcomes"]) == (2, 2, {})
