"""kit.testing.pytest_plugin: loaded by a test suite as a plugin, its fixtures give a sandbox
with the suite's own event types and an empty in-memory intake."""

from __future__ import annotations

import pytest

CONFTEST = 'pytest_plugins = ["kit.testing.pytest_plugin"]\n'

SUITE = """
import pytest

from kit.client import ETrustedClient
from kit.sandbox import SandboxConfig


@pytest.fixture
def etrusted_sandbox_config():
    return SandboxConfig(event_types=("stay_completed",))


async def test_the_sandbox_answers_with_the_suites_event_types(etrusted_sandbox):
    async with ETrustedClient(etrusted_sandbox.client_config(request_timeout=5.0)) as client:
        names = sorted(t.name for t in await client.list_event_types())
    assert names == ["stay_completed"]


async def test_the_memory_intake_starts_empty(etrusted_memory_intake):
    assert await etrusted_memory_intake.outbox.entries() == []
    assert etrusted_memory_intake.intake.journal is etrusted_memory_intake.journal
"""


def test_the_fixtures_work_from_a_suite_that_loads_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
