"""on_stop_signals: calls back while inside, and gives the application its handlers back."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest
from flusher_doubles import wait_until

from kit.signals import on_stop_signals


@pytest.fixture
def own_handlers() -> Iterator[list[int]]:
    """An application's own Python-level handlers for SIGTERM and SIGINT."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in saved:
        signal.signal(sig, handler)
    try:
        yield received
    finally:
        for sig, before in saved.items():
            signal.signal(sig, before)


async def test_signals_inside_the_block_reach_the_callback(own_handlers: list[int]) -> None:
    stops: list[str] = []
    with on_stop_signals(lambda: stops.append("stop")):
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_until(lambda: stops)
    assert stops == ["stop"]
    assert own_handlers == []  # the application's handler was not called meanwhile


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_the_applications_handler_is_back_after_the_block(
    own_handlers: list[int], sig: signal.Signals
) -> None:
    before = signal.getsignal(sig)
    with on_stop_signals(lambda: None):
        pass
    assert signal.getsignal(sig) is before
    os.kill(os.getpid(), sig)
    await wait_until(lambda: own_handlers)
    assert own_handlers == [sig]


async def test_whatever_handled_sigint_before_is_back_after_the_block() -> None:
    """Under ``asyncio.run`` that is asyncio's own handler (Ctrl-C cancels the main task);
    without our restoring it, SIGINT would be left to the default of killing the process."""
    before = signal.getsignal(signal.SIGINT)
    assert callable(before)
    with on_stop_signals(lambda: None):
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before
