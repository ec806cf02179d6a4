"""The adapter contract fails adapters that break it: each check catches its own breakage.

The broken adapters are the Staybook example with one method spoiled, so every other promise
still holds and each failure is the check's own.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from kit.adapters import DeliveryIdentity, Headers
from kit.domain import Skip
from kit.errors import VerificationError
from kit.testing import adapter_checks as checks
from kit.testing.adapter_checks import AdapterSamples

from .conftest import ROOT, STAY

pytestmark = pytest.mark.usefixtures("stay_installed")

_counter = itertools.count()


def _any_signature(self: Any, headers: Headers, raw_body: bytes, secrets: Sequence[str]) -> None:
    return None


def _first_secret_only(self: Any, headers: Headers, raw: bytes, secrets: Sequence[str]) -> None:
    from stay_adapter.signature import verify_signature

    verify_signature(headers, raw, secrets[:1])


def _unsigned_passes(self: Any, headers: Headers, raw: bytes, secrets: Sequence[str]) -> None:
    from stay_adapter.signature import SIGNATURE_HEADER, verify_signature

    if SIGNATURE_HEADER in headers:
        verify_signature(headers, raw, secrets)


def _crashes_on_garbage(self: Any, headers: Headers, raw: bytes, secrets: Sequence[str]) -> None:
    from stay_adapter.signature import PREFIX, SIGNATURE_HEADER

    value = headers.get(SIGNATURE_HEADER)
    if value is None:
        raise VerificationError("missing_signature", "no signature")
    sent = bytes.fromhex(value.removeprefix(PREFIX))  # ValueError on a forged header
    digests = [hmac.new(s.encode(), raw, hashlib.sha256).digest() for s in secrets]
    if not any(hmac.compare_digest(sent, digest) for digest in digests):
        raise VerificationError("bad_signature", "no match")


def _new_id_each_time(self: Any, headers: Headers, raw_body: bytes) -> DeliveryIdentity:
    return DeliveryIdentity(f"d-{next(_counter)}")


def _skip_without_reason(self: Any, headers: Headers, raw: bytes, *, received_at: datetime) -> Any:
    parsed = self._good_parse(headers, raw, received_at=received_at)
    return Skip("no reason given") if isinstance(parsed, Skip) else parsed  # type: ignore[arg-type]


def _reads_the_clock(self: Any, headers: Headers, raw: bytes, *, received_at: datetime) -> Any:
    parsed = self._good_parse(headers, raw, received_at=received_at)
    if isinstance(parsed, Skip):
        return parsed
    return [attrs.evolve(e, occurred_at=datetime.now(UTC)) for e in parsed]


def _other_source(self: Any, headers: Headers, raw: bytes, *, received_at: datetime) -> Any:
    parsed = self._good_parse(headers, raw, received_at=received_at)
    if isinstance(parsed, Skip):
        return parsed
    return [attrs.evolve(e, source="somebody-else") for e in parsed]


def _other_platform(self: Any, headers: Headers, raw: bytes, *, received_at: datetime) -> Any:
    parsed = self._good_parse(headers, raw, received_at=received_at)
    if isinstance(parsed, Skip):
        return parsed
    return [attrs.evolve(e, platform="shopify") for e in parsed]


def _shopify_order(self: Any, headers: Headers, raw: bytes, *, received_at: datetime) -> Any:
    parsed = self._good_parse(headers, raw, received_at=received_at)
    if isinstance(parsed, Skip):
        return parsed
    return [attrs.evolve(e, platform="shopify", stream="5560002000042") for e in parsed]


def _broken_plugin(method: str, replacement: Callable[..., Any]) -> Any:
    """The example's plugin, building adapters with ``method`` replaced."""
    from stay_adapter import StayAdapter, StayPlugin

    broken = type("BrokenStayAdapter", (StayAdapter,), {method: replacement})
    broken._good_parse = StayAdapter.parse  # type: ignore[attr-defined]

    class BrokenPlugin(StayPlugin):
        def create(self, *, source: str, config: Any) -> Any:
            return broken(source=source, config=config)

    return BrokenPlugin()


def samples(plugin: Any) -> AdapterSamples:
    from stay_adapter import StayConfig
    from stay_adapter.samples import SAMPLE_PROPERTY, SAMPLE_SECRET, stay_completed

    return AdapterSamples(
        plugin=plugin,
        config=StayConfig(property_id=SAMPLE_PROPERTY),
        secrets=[SAMPLE_SECRET],
        accepted=[stay_completed("d-1")],
        skipped=[stay_completed("d-2", event="booking.created")],
    )


Check = Callable[[AdapterSamples], Awaitable[None] | None]


async def _run(check: Check, sample: AdapterSamples) -> None:
    outcome = check(sample)
    if outcome is not None:
        await outcome


BREAKAGES = [
    pytest.param("verify", _any_signature, checks.check_bad_signature_refused,
                 "under a wrong secret was not refused", id="accepts-any-signature"),
    pytest.param("verify", _any_signature, checks.check_refused_stores_nothing,
                 "a tampered body was taken in", id="accepts-any-signature-intake"),
    pytest.param("verify", _first_secret_only, checks.check_samples_verify,
                 "does not verify under a rotation", id="tries-only-the-first-secret"),
    pytest.param("verify", _unsigned_passes, checks.check_bad_signature_refused,
                 "without X-Staybook-Signature", id="accepts-a-missing-signature"),
    pytest.param("verify", _crashes_on_garbage, checks.check_bad_signature_refused,
                 "with X-Staybook-Signature garbled raised ValueError", id="crashes-on-garbage"),
    pytest.param("identify", _new_id_each_time, checks.check_replay_folded,
                 "a redelivery was taken in again", id="new-identity-per-call"),
    pytest.param("identify", _new_id_each_time, checks.check_parse_deterministic,
                 "identify varies", id="identify-not-deterministic"),
    pytest.param("parse", _skip_without_reason, checks.check_skip_has_reason,
                 "is no reason", id="skip-without-reason"),
    pytest.param("parse", _reads_the_clock, checks.check_parse_deterministic,
                 "parse varies", id="parse-reads-the-clock"),
    pytest.param("parse", _other_source, checks.check_event_envelope,
                 "source 'somebody-else'", id="events-of-another-source"),
    pytest.param("parse", _other_platform, checks.check_event_envelope,
                 "platform 'shopify' on stream 'bk_", id="another-platform-on-its-own-stream"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "replacement", "check", "says"), BREAKAGES)
async def test_a_check_fails_the_adapter_that_breaks_its_promise(
    method: str, replacement: Callable[..., Any], check: Check, says: str
) -> None:
    """The spoiled adapter fails the check with a message naming the breakage."""
    with pytest.raises(AssertionError, match=says):
        await _run(check, samples(_broken_plugin(method, replacement)))


@pytest.mark.parametrize("check", [p.values[2] for p in BREAKAGES])
async def test_every_check_passes_the_unbroken_example(check: Check) -> None:
    """The same checks pass the example itself, so each failure above is the breakage's."""
    from stay_adapter import plugin

    await _run(check, samples(plugin))


def test_an_event_on_a_shopify_orders_stream_keeps_the_envelope() -> None:
    """A subscription app names the renewal it charged by the Shopify order it created
    (kit.renewals), so an event on platform ``shopify`` with a Shopify order's id as its
    stream keeps the envelope promise; on the adapter's own stream it does not (above)."""
    checks.check_event_envelope(samples(_broken_plugin("parse", _shopify_order)))


def test_an_unsigned_delivery_that_makes_an_event_fails() -> None:
    """An adapter that lets an unsigned delivery through and turns it into an invite fails."""
    from stay_adapter.samples import stay_completed

    unsigned = stay_completed("d-9").with_headers({"X-Staybook-Signature": ""})
    broken = attrs.evolve(samples(_broken_plugin("verify", _any_signature)), unsigned=[unsigned])
    with pytest.raises(AssertionError, match="an unsigned delivery parsed to"):
        checks.check_unsigned_only_skip(broken)


def test_an_unsigned_sample_the_adapter_refuses_is_reported() -> None:
    """A sample listed as unsigned that the adapter refuses is a mistake in the samples."""
    from stay_adapter import plugin
    from stay_adapter.samples import stay_completed

    unsigned = stay_completed("d-9").with_headers({"X-Staybook-Signature": ""})
    wrong = attrs.evolve(samples(plugin), unsigned=[unsigned])
    with pytest.raises(AssertionError, match="is refused unsigned"):
        checks.check_unsigned_only_skip(wrong)


def test_samples_that_do_not_verify_are_reported() -> None:
    """A sample signed with another secret fails early, before any check misleads."""
    from stay_adapter import plugin

    wrong = attrs.evolve(samples(plugin), secrets=["another-secret"])
    with pytest.raises(AssertionError, match="does not verify"):
        checks.check_samples_verify(wrong)


def test_the_pytest_suite_fails_an_adapter_that_accepts_any_signature(
    pytester: pytest.Pytester,
) -> None:
    """Run as a pytest class, the contract fails exactly the signature tests of an adapter
    whose verify accepts anything, and passes the rest."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        test_broken=f"""
        import sys
        sys.path[:0] = [{str(STAY)!r}, {str(ROOT / "tests")!r}]

        import pytest
        from kit.testing.adapter_contract import AdapterContract
        from examples.test_adapter_checks import _any_signature, _broken_plugin, samples

        class TestBroken(AdapterContract):
            @pytest.fixture
            def adapter_samples(self):
                return samples(_broken_plugin("verify", _any_signature))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=6, failed=2, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "FAILED test_broken.py::TestBroken::test_a_bad_signature_is_refused*",
            "FAILED test_broken.py::TestBroken::test_a_refused_delivery_stores_nothing*",
        ]
    )


def test_the_checks_and_builders_import_without_pytest() -> None:
    """Code outside pytest (a script, another test runner) can sign deliveries and run the
    checks: only kit.testing.adapter_contract and kit.testing.pytest_plugin need pytest."""
    code = (
        "import sys, kit.testing, kit.testing.adapter_checks; "
        "assert 'pytest' not in sys.modules, 'pytest imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
