"""The adapter contract as a pytest suite: run it against any push adapter.

Subclass :class:`AdapterContract` in a test module and give it an ``adapter_samples`` fixture
that returns the adapter's :class:`~kit.testing.adapter_checks.AdapterSamples`; pytest collects
every check of the contract for that class::

    class TestMyAdapter(AdapterContract):
        @pytest.fixture
        def adapter_samples(self) -> AdapterSamples:
            return AdapterSamples(plugin=plugin, config=..., secrets=[SECRET],
                                  accepted=[...], skipped=[...])

The checks themselves are in :mod:`kit.testing.adapter_checks`, callable without pytest. This
module imports pytest (and needs pytest-asyncio); :mod:`kit.testing` does not import it.
"""

from __future__ import annotations

import pytest

from kit.testing import adapter_checks as checks
from kit.testing.adapter_checks import AdapterSamples


class AdapterContract:
    """Every promise a push adapter makes to the intake, as tests."""

    def test_the_plugin_provides_the_contract(self, adapter_samples: AdapterSamples) -> None:
        checks.check_plugin(adapter_samples)

    def test_the_samples_verify(self, adapter_samples: AdapterSamples) -> None:
        checks.check_samples_verify(adapter_samples)

    def test_a_bad_signature_is_refused(self, adapter_samples: AdapterSamples) -> None:
        checks.check_bad_signature_refused(adapter_samples)

    @pytest.mark.asyncio
    async def test_a_refused_delivery_stores_nothing(self, adapter_samples: AdapterSamples) -> None:
        await checks.check_refused_stores_nothing(adapter_samples)

    @pytest.mark.asyncio
    async def test_a_replay_is_folded(self, adapter_samples: AdapterSamples) -> None:
        await checks.check_replay_folded(adapter_samples)

    @pytest.mark.asyncio
    async def test_a_skip_carries_a_reason(self, adapter_samples: AdapterSamples) -> None:
        await checks.check_skip_has_reason(adapter_samples)

    def test_an_unsigned_delivery_only_skips(self, adapter_samples: AdapterSamples) -> None:
        if not adapter_samples.unsigned:
            pytest.skip("the adapter takes no unsigned delivery (AdapterSamples.unsigned)")
        checks.check_unsigned_only_skip(adapter_samples)

    def test_parsing_is_deterministic(self, adapter_samples: AdapterSamples) -> None:
        checks.check_parse_deterministic(adapter_samples)

    def test_events_carry_the_envelope(self, adapter_samples: AdapterSamples) -> None:
        checks.check_event_envelope(adapter_samples)


__all__ = ["AdapterContract", "AdapterSamples"]
