"""Progress for long commands: a tqdm bar when a person watches, nothing at all when piped.

One rule for every command (backfill, purge, migrate-outbox): the bar goes to stderr only when
stderr is a terminal, so a cron job's or a pipe's output stays what the command prints, and log
lines written while the bar shows print above it instead of through it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TextIO


class Progress:
    """A tqdm bar on a terminal; every method does nothing when ``stream`` is not one."""

    def __init__(
        self,
        stream: TextIO,
        *,
        desc: str,
        total: float | None = None,
        unit: str = "it",
        bar_format: str | None = None,
    ) -> None:
        self.bar: Any = None
        isatty = getattr(stream, "isatty", None)
        if isatty is not None and isatty():
            from tqdm import tqdm

            options: dict[str, Any] = {"bar_format": bar_format} if bar_format else {}
            self.bar = tqdm(total=total, file=stream, unit=unit, desc=desc, leave=True, **options)

    @property
    def shown(self) -> bool:
        return self.bar is not None

    def advance_to(self, n: float, **postfix: object) -> None:
        """Set how far it got (absolute, so a resumed count never double-counts)."""
        if self.bar is None:
            return
        self.bar.n = n
        if postfix:
            self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def logging(self) -> contextlib.AbstractContextManager[object]:
        """Log lines (a retry's warning) printed above the bar instead of through it."""
        if self.bar is None:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def progress(
    stream: TextIO, *, desc: str, total: float | None = None, unit: str = "it"
) -> Iterator[Progress]:
    """A :class:`Progress` with log lines redirected above it, closed on leaving."""
    bar = Progress(stream, desc=desc, total=total, unit=unit)
    try:
        with bar.logging():
            yield bar
    finally:
        bar.close()


__all__ = ["Progress", "progress"]
