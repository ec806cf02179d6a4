"""The adapter contract as plain checks: each raises :class:`AssertionError` naming what broke.

An adapter author describes the adapter once, as :class:`AdapterSamples` (the plugin, a config,
the secrets, and signed sample deliveries), and every check runs against that description:

* :func:`check_plugin`: the entry point's object and the adapter it builds provide the
  protocols, and the adapter calls itself by the plugin's name;
* :func:`check_samples_verify`: the samples are authentic (so the other checks mean something),
  also while a second secret is configured;
* :func:`check_bad_signature_refused`: a wrong secret, no secret and a tampered body are each
  refused with :class:`~kit.errors.VerificationError`, also without a header or with one
  garbled;
* :func:`check_refused_stores_nothing`: a refused delivery leaves the journal and outbox empty;
* :func:`check_replay_folded`: a redelivery (same :class:`~kit.adapters.DeliveryIdentity`) is
  journaled once through the real intake and enqueues nothing new;
* :func:`check_skip_has_reason`: a skipped sample is a :class:`~kit.domain.Skip` with a
  :class:`~kit.domain.SkipReason`, and the journal records it;
* :func:`check_unsigned_only_skip`: a delivery the platform sends unsigned (a creation ping)
  may pass ``verify`` without a secret, but is only ever skipped;
* :func:`check_parse_deterministic`: the same input gives equal identities and equal events;
* :func:`check_event_envelope`: events name the source, account and delivery, and the
  adapter's platform (or, for a renewal named by the Shopify order it created, Shopify's:
  :mod:`kit.renewals`).

:mod:`kit.testing.adapter_contract` runs them as a pytest class; this module needs no pytest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from kit.adapters import AdapterPlugin, ParseResult, PushAdapter, normalise_headers
from kit.domain import EVENT_TYPES, Skip, SkipReason
from kit.errors import VerificationError
from kit.journal import IngestStatus, IntakeSource
from kit.policy import PolicyConfig
from kit.renewals import SHOPIFY, shopify_order_stream
from kit.testing.deliveries import SignedDelivery
from kit.testing.intake import memory_intake

CONTRACT_CHANNEL = "chl-00000000-0000-4000-8000-000000000001"
WRONG_SECRET = "not-the-secret-of-this-source"  # noqa: S105 (a deliberately wrong value)
GARBLED = "t=x,v1=not hex, not base64!"  # a header value no platform sends


def _secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    return tuple(secrets)


def _deliveries(deliveries: Iterable[SignedDelivery]) -> tuple[SignedDelivery, ...]:
    return tuple(deliveries)


def _policy() -> PolicyConfig:
    return PolicyConfig(channel_id=CONTRACT_CHANNEL)


@attrs.frozen(kw_only=True)
class AdapterSamples:
    """What the contract needs to know about one adapter.

    ``accepted`` deliveries verify under ``secrets`` and parse to at least one domain event;
    ``skipped`` ones verify and parse to a :class:`~kit.domain.Skip`; ``unsigned`` ones are
    what the platform sends without a signature and the adapter acknowledges anyway (a
    webhook's creation ping), which it must skip. Give each its own delivery id: the replay
    check sends every sample twice. ``policy`` is the source's
    policy in the intake (it only needs a channel; the contract does not test policies).
    """

    plugin: AdapterPlugin[Any]
    config: Any
    secrets: tuple[str, ...] = attrs.field(converter=_secrets, repr=False)
    accepted: tuple[SignedDelivery, ...] = attrs.field(converter=_deliveries)
    skipped: tuple[SignedDelivery, ...] = attrs.field(converter=_deliveries)
    unsigned: tuple[SignedDelivery, ...] = attrs.field(converter=_deliveries, default=())
    source: str = "contract-source"
    policy: PolicyConfig = attrs.field(factory=_policy)
    received_at: datetime = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    clock: Callable[[], float] = time.time

    @property
    def deliveries(self) -> tuple[SignedDelivery, ...]:
        """The signed samples: every one of them must fail under a wrong secret."""
        return self.accepted + self.skipped

    def adapter(self) -> PushAdapter:
        """A fresh adapter bound to the source, as the intake builds it at start-up."""
        return self.plugin.create(source=self.source, config=self.config)

    def intake_source(self) -> IntakeSource:
        return IntakeSource(
            name=self.source, adapter=self.adapter(), policy=self.policy, secrets=self.secrets
        )


def _parse(adapter: PushAdapter, delivery: SignedDelivery, received_at: datetime) -> ParseResult:
    return adapter.parse(
        normalise_headers(delivery.headers), delivery.raw_body, received_at=received_at
    )


def _name(samples: AdapterSamples, delivery: SignedDelivery) -> str:
    for where, group in (
        ("accepted", samples.accepted),
        ("skipped", samples.skipped),
        ("unsigned", samples.unsigned),
    ):
        if delivery in group:
            return f"{samples.plugin.name}: {where}[{group.index(delivery)}]"
    return f"{samples.plugin.name}: {delivery!r}"


def check_plugin(samples: AdapterSamples) -> None:
    """The plugin and its adapter provide the protocols; names and config type agree."""
    plugin = samples.plugin
    assert isinstance(plugin, AdapterPlugin), f"{plugin!r} lacks name, config_type or create()"
    assert attrs.has(plugin.config_type), (
        f"{plugin.name}: config_type must be an attrs class (the config loader structures it)"
    )
    assert isinstance(samples.config, plugin.config_type), (
        f"{plugin.name}: the sample config is not a {plugin.config_type.__name__}"
    )
    adapter = samples.adapter()
    assert isinstance(adapter, PushAdapter), f"{plugin.name}: {adapter!r} is not a PushAdapter"
    assert adapter.platform == plugin.name, (
        f"the adapter calls itself {adapter.platform!r}, its plugin {plugin.name!r}"
    )


def check_samples_verify(samples: AdapterSamples) -> None:
    """Every sample verifies under the secrets, also with a wrong secret listed first (two
    are configured while one is rotated); there is at least one of each kind."""
    assert samples.accepted, "give at least one delivery the adapter turns into events"
    assert samples.skipped, "give at least one delivery the adapter skips on purpose"
    adapter = samples.adapter()
    rotation = (WRONG_SECRET, *samples.secrets)
    for delivery in samples.deliveries:
        headers = normalise_headers(delivery.headers)
        try:
            adapter.verify(headers, delivery.raw_body, samples.secrets)
        except VerificationError as exc:
            raise AssertionError(f"{_name(samples, delivery)} does not verify: {exc}") from exc
        try:
            adapter.verify(headers, delivery.raw_body, rotation)
        except VerificationError as exc:
            raise AssertionError(
                f"{_name(samples, delivery)} does not verify under a rotation (another secret "
                f"listed first): {exc}; try every secret"
            ) from exc


def _refused(
    adapter: PushAdapter, delivery: SignedDelivery, secrets: Sequence[str], what: str
) -> None:
    try:
        adapter.verify(normalise_headers(delivery.headers), delivery.raw_body, secrets)
    except VerificationError:
        return
    raise AssertionError(f"{adapter.platform}: {what} was not refused")


def _forged(
    samples: AdapterSamples, adapter: PushAdapter, delivery: SignedDelivery, what: str
) -> None:
    """A forged delivery is refused with VerificationError (anything else is a 500, not a
    401), or it passes as unsigned and only skips (:func:`check_unsigned_only_skip`)."""
    headers = normalise_headers(delivery.headers)
    try:
        adapter.verify(headers, delivery.raw_body, samples.secrets)
    except VerificationError:
        return
    except Exception as exc:
        raise AssertionError(f"{what} raised {exc!r}, not VerificationError") from exc
    parsed = _parse(adapter, delivery, samples.received_at)
    assert isinstance(parsed, Skip), f"{what} was taken in: {parsed!r}"


def check_bad_signature_refused(samples: AdapterSamples) -> None:
    """A wrong secret, no secret at all and a tampered body each raise VerificationError; so
    does a tampered body with any one header left out or garbled, unless it only skips (an
    unsigned ping): a missing signature is no licence, and a forged one no crash."""
    adapter = samples.adapter()
    for delivery in samples.deliveries:
        name = _name(samples, delivery)
        _refused(adapter, delivery, (WRONG_SECRET,), f"{name} under a wrong secret")
        _refused(adapter, delivery, (), f"{name} with no secret configured")
        tampered = delivery.tampered()
        _refused(adapter, tampered, samples.secrets, f"{name} with a tampered body")
        for header in delivery.headers:
            left_out = tampered.with_headers({header: ""})
            _forged(samples, adapter, left_out, f"{name} tampered, without {header}")
            garbled = tampered.with_headers({header: GARBLED})
            _forged(samples, adapter, garbled, f"{name} tampered, with {header} garbled")


async def check_refused_stores_nothing(samples: AdapterSamples) -> None:
    """A tampered delivery through the intake raises VerificationError and stores nothing."""
    source = samples.intake_source()
    async with memory_intake(clock=samples.clock) as kit:
        for delivery in samples.deliveries:
            forged = delivery.tampered()
            try:
                await kit.intake.ingest_raw(source, forged.headers, forged.raw_body)
            except VerificationError:
                pass
            except Exception as exc:  # the verdict must be 401, whatever else went wrong
                raise AssertionError(
                    f"{_name(samples, delivery)}: a tampered body raised {exc!r}, "
                    "not VerificationError"
                ) from exc
            else:
                raise AssertionError(f"{_name(samples, delivery)}: a tampered body was taken in")
        assert await kit.outbox.entries() == [], "a refused delivery enqueued an invite"
        for delivery in samples.accepted:
            for event in _events(samples, delivery):
                timeline = await kit.journal.timeline(samples.source, event.stream)
                assert not timeline.deliveries, "a refused delivery was journaled"


def _events(samples: AdapterSamples, delivery: SignedDelivery) -> Sequence[Any]:
    parsed = _parse(samples.adapter(), delivery, samples.received_at)
    assert not isinstance(parsed, Skip), f"{_name(samples, delivery)} was skipped: {parsed}"
    return parsed


async def check_replay_folded(samples: AdapterSamples) -> None:
    """Each sample sent twice is journaled once; the second answer is ``duplicate`` and
    changes neither the journal nor the outbox."""
    source = samples.intake_source()
    for delivery in samples.deliveries + samples.unsigned:
        name = _name(samples, delivery)
        async with memory_intake(clock=samples.clock) as kit:
            first = await kit.intake.ingest_raw(source, delivery.headers, delivery.raw_body)
            assert first.status is not IngestStatus.DUPLICATE, f"{name}: new, yet a duplicate"
            entries = await kit.outbox.entries()
            again = await kit.intake.ingest_raw(source, delivery.headers, delivery.raw_body)
            assert again.status is IngestStatus.DUPLICATE, (
                f"{name}: a redelivery was taken in again ({again.status.value}); does "
                "identify() give the same ids for the same delivery?"
            )
            assert again.delivery_id == first.delivery_id
            assert await kit.outbox.entries() == entries, f"{name}: the replay changed the outbox"
            if delivery in samples.accepted:
                for stream in sorted({e.stream for e in _events(samples, delivery)}):
                    timeline = await kit.journal.timeline(samples.source, stream)
                    assert len(timeline.deliveries) == 1, f"{name}: journaled more than once"


async def check_skip_has_reason(samples: AdapterSamples) -> None:
    """Skipped samples parse to a Skip with a SkipReason, which the journal records;
    accepted samples parse to domain events, never a Skip."""
    adapter = samples.adapter()
    for delivery in samples.skipped:
        name = _name(samples, delivery)
        parsed = _parse(adapter, delivery, samples.received_at)
        assert isinstance(parsed, Skip), f"{name} was not skipped: {parsed!r}"
        assert isinstance(parsed.reason, SkipReason), f"{name}: {parsed.reason!r} is no reason"
        async with memory_intake(clock=samples.clock) as kit:
            result = await kit.intake.ingest_raw(
                samples.intake_source(), delivery.headers, delivery.raw_body
            )
        assert result.status is IngestStatus.SKIPPED, f"{name}: the intake said {result.status}"
        assert result.skip is not None
        assert result.skip.reason is parsed.reason
    for delivery in samples.accepted:
        assert _events(samples, delivery), f"{_name(samples, delivery)} parsed to no event"


def check_unsigned_only_skip(samples: AdapterSamples) -> None:
    """An unsigned sample passes verify with no secret (else it is not unsigned), and parses
    to a Skip with a reason: an unsigned delivery that made an event would let anyone who
    can reach the route create invites."""
    adapter = samples.adapter()
    for delivery in samples.unsigned:
        name = _name(samples, delivery)
        headers = normalise_headers(delivery.headers)
        try:
            adapter.verify(headers, delivery.raw_body, ())
        except VerificationError as exc:
            raise AssertionError(f"{name} is refused unsigned, so list it as signed") from exc
        parsed = _parse(adapter, delivery, samples.received_at)
        assert isinstance(parsed, Skip), f"{name}: an unsigned delivery parsed to {parsed!r}"
        assert isinstance(parsed.reason, SkipReason), f"{name}: {parsed.reason!r} is no reason"


def check_parse_deterministic(samples: AdapterSamples) -> None:
    """Identify and parse twice, and on a second adapter of the same config: equal results."""
    first, second = samples.adapter(), samples.adapter()
    for delivery in samples.deliveries + samples.unsigned:
        name = _name(samples, delivery)
        headers = normalise_headers(delivery.headers)
        identity = first.identify(headers, delivery.raw_body)
        assert identity == first.identify(headers, delivery.raw_body), f"{name}: identify varies"
        assert identity == second.identify(headers, delivery.raw_body), f"{name}: identify varies"
        parsed = _parse(first, delivery, samples.received_at)
        assert parsed == _parse(first, delivery, samples.received_at), f"{name}: parse varies"
        assert parsed == _parse(second, delivery, samples.received_at), f"{name}: parse varies"


def _own_platform(adapter: PushAdapter, platform: str, stream: str) -> bool:
    """The adapter's own platform, or Shopify's on a Shopify order's stream: a subscription
    app names the renewal it charged by the order it created, so the shop's order webhooks
    land on the same key (:mod:`kit.renewals`)."""
    if platform == adapter.platform:
        return True
    return platform == SHOPIFY and shopify_order_stream(stream) == stream


def check_event_envelope(samples: AdapterSamples) -> None:
    """Every event is a domain event of this source, account and delivery, on a stream of
    the adapter's platform (or a Shopify order's, see :func:`_own_platform`)."""
    adapter = samples.adapter()
    for delivery in samples.accepted:
        name = _name(samples, delivery)
        identity = adapter.identify(normalise_headers(delivery.headers), delivery.raw_body)
        for event in _events(samples, delivery):
            assert isinstance(event, EVENT_TYPES), f"{name}: {event!r} is not a domain event"
            assert event.source == samples.source, f"{name}: source {event.source!r}"
            assert _own_platform(adapter, event.platform, event.stream), (
                f"{name}: platform {event.platform!r} on stream {event.stream!r}"
            )
            assert event.account == adapter.account, f"{name}: account {event.account!r}"
            assert event.delivery_id == identity.delivery_id, (
                f"{name}: delivery_id {event.delivery_id!r}, identify() says "
                f"{identity.delivery_id!r}"
            )
            assert event.stream, f"{name}: an event without a stream"


__all__ = [
    "CONTRACT_CHANNEL",
    "AdapterSamples",
    "check_bad_signature_refused",
    "check_event_envelope",
    "check_parse_deterministic",
    "check_plugin",
    "check_refused_stores_nothing",
    "check_replay_folded",
    "check_samples_verify",
    "check_skip_has_reason",
    "check_unsigned_only_skip",
]
