"""The CLI's log formats keep every context field a call site gave: text for a person at a
terminal, JSON lines for a collector, chosen by ``--log-format`` (``auto`` by the stream)."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import pytest
from builders import event
from cli_helpers import Result, run_kit

from kit.logformat import JsonFormatter, LogFormat, TextFormatter


def _record(**extra: object) -> logging.LogRecord:
    logger = logging.getLogger("kit.test")
    record = logger.makeRecord("kit.test", logging.WARNING, __file__, 1, "retry %s", ("k1",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_text_keeps_the_action_and_context_fields() -> None:
    line = TextFormatter().format(_record(action="retry", source="my-shop", attempt=3))
    assert "WARNING kit.test: retry k1" in line
    assert line.endswith("[action=retry source=my-shop attempt=3]")


def test_text_quotes_a_field_that_would_break_the_line_apart() -> None:
    line = TextFormatter().format(_record(action="x", reason="bad signature = wrong"))
    assert 'reason="bad signature = wrong"' in line


def test_json_is_one_object_per_line_with_the_fields_at_the_top() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record(action="post_crashed", key="shopify:a:1:order_shipped")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["level"] == "warning"
    assert document["message"] == "retry k1"
    assert document["action"] == "post_crashed"
    assert document["key"] == "shopify:a:1:order_shipped"
    assert "ValueError: boom" in document["exception"]


def test_a_context_field_cannot_replace_the_record_s_own_keys() -> None:
    document = json.loads(JsonFormatter().format(_record(level="spoofed")))
    assert document["level"] == "warning"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_text_on_a_terminal_and_json_elsewhere() -> None:
    assert LogFormat.AUTO.resolve(_Tty()) is LogFormat.TEXT
    assert LogFormat.AUTO.resolve(io.StringIO()) is LogFormat.JSON
    assert LogFormat.TEXT.resolve(io.StringIO()) is LogFormat.TEXT


async def _enqueue_one(tmp_path: Path, *options: str) -> Result:
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(event("order-1", email="ada@example.com")) + "\n")
    db = tmp_path / "o.db"
    return await run_kit(*options, "enqueue", str(events), "--db", str(db), cwd=tmp_path)


@pytest.mark.parametrize("chosen", ["auto", "json"])
async def test_a_piped_cli_writes_json_lines(tmp_path: Path, chosen: str) -> None:
    """A real ``python -m kit`` process with stderr piped, as under systemd or a container."""
    result = await _enqueue_one(tmp_path, "-v", "--log-format", chosen)
    assert result.code == 0, result.err
    lines = [json.loads(line) for line in result.err.splitlines() if line.strip()]
    assert lines, "with -v, opening the outbox logs at INFO"
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    assert any(line.get("action") == "outbox.open" for line in lines)


async def test_text_format_in_a_real_process_keeps_the_action(tmp_path: Path) -> None:
    result = await _enqueue_one(tmp_path, "-v", "--log-format", "text")
    assert result.code == 0, result.err
    assert "action=outbox.open" in result.err
