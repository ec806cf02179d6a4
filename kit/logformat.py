"""How the command line writes log records: readable text on a terminal, JSON lines otherwise.

The kit logs with ``extra={"action": ..., "source": ..., "key": ...}``; those fields are what an
operator filters and alerts on, so both formats keep every one of them. Only the CLI installs
these formatters (a library must not configure logging for the application that embeds it).
"""

from __future__ import annotations

import enum
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Attributes every LogRecord has; whatever else a record carries came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}


class LogFormat(enum.StrEnum):
    AUTO = "auto"
    TEXT = "text"
    JSON = "json"

    def resolve(self, stream: TextIO) -> LogFormat:
        """``auto`` is text for a person at a terminal and JSON lines for a collector."""
        if self is not LogFormat.AUTO:
            return self
        isatty = getattr(stream, "isatty", None)
        return LogFormat.TEXT if isatty is not None and isatty() else LogFormat.JSON


def context(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call site passed in ``extra``, in the order it gave them."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


def _plain(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``: one line a person can scan."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = context(record)
        if not fields:
            return line
        head, sep, tail = line.partition("\n")  # keep a traceback below the fields
        pairs = " ".join(f"{k}={_text(_plain(v))}" for k, v in fields.items())
        return f"{head} [{pairs}]{sep}{tail}"


def _text(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' =[]"\n')) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the context fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in context(record).items():
            document.setdefault(key, _plain(value))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False)


def configure(verbosity: int, log_format: LogFormat, stream: TextIO | None = None) -> None:
    """Install one handler on the root logger. ``-v``/``-vv`` raise the kit's own loggers
    only: libraries stay at WARNING, because aiosqlite logs every statement with its
    parameters at DEBUG (customer e-mails, whole payloads) and HTTP libraries may log headers
    (tokens)."""
    root = logging.getLogger()
    if not root.handlers:  # as logging.basicConfig: an application's own handlers stay alone
        out = sys.stderr if stream is None else stream
        handler = logging.StreamHandler(out)
        chosen = log_format.resolve(out)
        handler.setFormatter(JsonFormatter() if chosen is LogFormat.JSON else TextFormatter())
        root.addHandler(handler)
        root.setLevel(logging.WARNING)
    # asyncpg's pool logs each failed reconnect at WARNING with a traceback; the kit already
    # says that the database is unavailable, once per try and with the wait before the next.
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
    kit_logger = logging.getLogger("kit")
    # Without -v the kit's loggers follow the root's level.
    kit_logger.setLevel(logging.WARNING - 10 * min(verbosity, 2) if verbosity else logging.NOTSET)


__all__ = ["JsonFormatter", "LogFormat", "TextFormatter", "configure", "context"]
