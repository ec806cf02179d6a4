"""kit.testing.storage_contract as a backend author uses it: a few lines run the whole contract.

``ThirdPartyStorage`` stands for a backend written outside the kit; it runs through the same
entry point as docs/testing.md shows. The contract must also fail a backend that breaks it, and
importing :mod:`kit.testing` must not pull pytest into an application.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from kit.outbox.memory import InMemoryStorage
from kit.testing.storage_contract import Backend, StorageContract

ROOT = Path(__file__).resolve().parents[1]


class ThirdPartyStorage(InMemoryStorage):
    """A backend of someone else's, here the kit's in-memory one under another name."""


class TestThirdPartyBackend(StorageContract):
    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[Backend]:
        storage = ThirdPartyStorage()
        async with Backend("third-party", storage, another=lambda: storage) as opened:
            yield opened


BROKEN = textwrap.dedent(
    """
    from collections.abc import AsyncIterator

    import pytest_asyncio

    from kit.outbox.memory import InMemoryStorage
    from kit.testing.storage_contract import Backend, StorageContract


    class IgnoresTheLimit(InMemoryStorage):
        async def claim(self, *, owner, limit, lease_seconds, now):
            return await super().claim(
                owner=owner, limit=limit + 1, lease_seconds=lease_seconds, now=now
            )


    class TestBroken(StorageContract):
        @pytest_asyncio.fixture
        async def backend(self) -> AsyncIterator[Backend]:
            async with Backend("broken", IgnoresTheLimit()) as opened:
                yield opened
    """
)


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    ini = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    (tmp_path / "pytest.ini").write_text(ini)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contract_fails_a_backend_that_breaks_it(tmp_path: Path) -> None:
    """A backend that hands out more entries than asked for fails the contract (in pytest's
    strict asyncio mode, as a project without the kit's configuration runs it)."""
    (tmp_path / "test_broken.py").write_text(BROKEN)
    run = _pytest(tmp_path, "-k", "claim_oldest_due_first or claim_hands_out_a_lease")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAILED test_broken.py::TestBroken::test_claim_oldest_due_first_and_limit" in run.stdout
    assert "1 failed, 1 passed" in run.stdout


def test_importing_kit_testing_does_not_import_pytest() -> None:
    """An application may import kit.testing (the sandbox, the fake client) without pytest
    installed: only kit.testing.storage_contract needs it."""
    code = "import kit.testing, sys; assert 'pytest' not in sys.modules, 'pytest imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
