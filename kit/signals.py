"""Signal handling for the long-running commands.

Installed as a context manager so it only applies while a flusher runs in the main thread. On
leaving, the Python-level handlers that were there before (``signal.signal``, or the default
``KeyboardInterrupt`` for SIGINT) are put back, so an embedding application keeps its own.

The limit: handlers an application registered with ``loop.add_signal_handler`` cannot be read
back through asyncio's public API. Ours replaces such a handler for the duration of the block,
and afterwards that signal gets the Python-level handler that was in place (for a loop handler,
a no-op): register loop handlers again after the block if you use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on every SIGINT/SIGTERM while inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}
    for sig in STOP_SIGNALS:
        before = signal.getsignal(sig)
        try:
            loop.add_signal_handler(sig, callback)
        except (NotImplementedError, RuntimeError):  # e.g. Windows
            continue
        previous[sig] = before
    try:
        yield
    finally:
        for sig, before in previous.items():
            loop.remove_signal_handler(sig)  # leaves SIG_DFL (or the default for SIGINT)
            if before is not None:  # None: installed outside Python, cannot be restored
                signal.signal(sig, before)
