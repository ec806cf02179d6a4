"""A progress bar on a terminal only: tqdm on stderr while a long command runs (``backfill``,
``import``); nothing at all when the stream is not a terminal, so piped output and logs stay
clean. Each command says what its bar counts; this draws it."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, TextIO


class TerminalBar:
    """``total`` in ``unit`` (``unit_scale`` for bytes); :meth:`show` moves it and its fields."""

    def __init__(
        self,
        stream: TextIO,
        *,
        desc: str,
        total: float,
        unit: str,
        unit_scale: bool = False,
        bar_format: str | None = None,
    ) -> None:
        self._bar: Any = None
        if stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                file=stream,
                unit=unit,
                unit_scale=unit_scale,
                bar_format=bar_format,
                desc=desc,
                leave=True,
            )

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def per_second(self, count: float) -> float:
        """``count`` over the time the bar has been shown (0 when it is not)."""
        if self._bar is None:
            return 0.0
        elapsed = float(self._bar.format_dict.get("elapsed", 0.0))
        return count / max(elapsed, 1e-6)

    def show(self, n: float, fields: Mapping[str, object]) -> None:
        if self._bar is None:
            return
        self._bar.n = n
        self._bar.set_postfix(dict(fields), refresh=False)
        self._bar.refresh()

    def logging(self) -> contextlib.AbstractContextManager[object]:
        """Log lines (a retry's warning) printed above the bar instead of through it."""
        if self._bar is None:
            return contextlib.nullcontext()
        from tqdm.contrib.logging import logging_redirect_tqdm

        return logging_redirect_tqdm()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


__all__ = ["TerminalBar"]
