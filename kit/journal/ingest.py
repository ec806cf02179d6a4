"""The intake's core: one delivery in, journaled, decided and carried out in ONE transaction.

:class:`Intake` is what an HTTP handler (or a FastAPI/Starlette route, or a test) calls:
:meth:`Intake.ingest_raw` takes the headers and raw body of a push delivery, has the source's
adapter verify, identify and parse it, and hands the result to :meth:`Intake.ingest`, which
runs :func:`kit.journal.core.ingest_steps` in one transaction of the outbox's database. Once it
returns, the delivery, its events, every decision and every outbox entry are committed
together (or none of them is): answer 2xx then, and a platform's retry is a duplicate.

Errors: :class:`~kit.errors.VerificationError` (answer 401), :class:`~kit.errors.PayloadError`
(400), :class:`~kit.errors.StorageError` (5xx: the platform retries, and nothing was stored),
:class:`~kit.errors.ErasureInFlightError` (an erasure while one of its invites is being sent:
nothing was stored either; 503, and the platform's retry erases it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

import attrs

import kit
from kit.adapters import (
    DeliveryIdentity,
    ParseResult,
    PushAdapter,
    load_adapter,
    normalise_headers,
)
from kit.configfile.model import SourceConfig
from kit.domain import Skip
from kit.errors import ConfigError
from kit.journal.core import Plan
from kit.journal.protocol import Journal
from kit.journal.records import Delivery, IngestResult, IngestStatus
from kit.mapping import BodyFacts, event_body
from kit.outbox import Outbox
from kit.outbox.memory import InMemoryStorage
from kit.outbox.types import NewEntry
from kit.policy import PolicyConfig

logger = logging.getLogger(__name__)

SYSTEM = "etrusted-kit"


class IngestObserver(Protocol):
    """Watches every committed ingest, pushed or polled (metrics, for one); called once per
    delivery after its transaction, so it must be quick and must not raise."""

    def ingested(self, source: str, result: IngestResult) -> None: ...


@attrs.frozen(kw_only=True)
class IntakeSource:
    """One configured source as the intake needs it: its adapter, secrets and policy."""

    name: str
    adapter: PushAdapter
    policy: PolicyConfig
    secrets: tuple[str, ...] = attrs.field(default=(), repr=False)

    @classmethod
    def from_config(cls, config: SourceConfig) -> IntakeSource:
        """The source a ``[[sources]]`` table describes, its adapter looked up by name."""
        plugin = load_adapter(config.adapter)
        return cls(
            name=config.name,
            adapter=plugin.create(source=config.name, config=config.adapter_config),
            policy=config.policy,
            secrets=tuple(secret.value for secret in config.webhook_secrets),
        )


def journal_for(outbox: Outbox, *, clock: Callable[[], float] = time.time) -> Journal:
    """The journal that shares ``outbox``'s database and transactions; ``clock`` stamps its
    rows (use the outbox's, so that its ``purge`` ages both alike)."""
    storage = outbox.storage
    if isinstance(storage, InMemoryStorage):
        from kit.journal.memory import MemoryJournal

        # One journal per storage: its rows live in the journal object, not in a database.
        known = [c for c in storage.companions if isinstance(c, MemoryJournal)]
        return known[0] if known else MemoryJournal(storage, clock=clock)
    from kit.outbox.sqlite import SQLiteStorage

    if isinstance(storage, SQLiteStorage):
        from kit.journal.sqlite import SQLiteJournal

        return SQLiteJournal(storage, clock=clock)
    from kit.outbox.postgres import PostgresStorage  # imports without asyncpg

    if isinstance(storage, PostgresStorage):
        from kit.journal.postgres import PostgresJournal

        return PostgresJournal(storage, clock=clock)
    raise ConfigError(f"{type(storage).__name__} has no journal: use SQLite or PostgreSQL")


class Intake:
    """Takes deliveries in for every source, through one outbox and its journal."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        journal: Journal | None = None,
        clock: Callable[[], float] = time.time,
        system: str = SYSTEM,
        system_version: str = kit.__version__,
        observer: IngestObserver | None = None,
    ) -> None:
        self._outbox = outbox
        self._observer = observer
        self._journal = journal if journal is not None else journal_for(outbox, clock=clock)
        self._clock = clock
        self._system = system
        self._system_version = system_version

    @property
    def journal(self) -> Journal:
        return self._journal

    async def ingest_raw(
        self,
        source: IntakeSource,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        raw_body: bytes,
    ) -> IngestResult:
        """Verify, parse and ingest one push delivery (framework-neutral; see the module)."""
        lowered = normalise_headers(headers)
        adapter = source.adapter
        adapter.verify(lowered, raw_body, source.secrets)
        identity = adapter.identify(lowered, raw_body)
        now = self._clock()
        parsed = adapter.parse(lowered, raw_body, received_at=datetime.fromtimestamp(now, UTC))
        return await self.ingest(source, identity, parsed, received_at=now)

    async def ingest(
        self,
        source: IntakeSource,
        identity: DeliveryIdentity,
        parsed: ParseResult,
        *,
        received_at: float | None = None,
    ) -> IngestResult:
        """Journal a parsed delivery and carry out the policy's decisions, in one transaction."""
        plan = self._plan(source, identity, parsed, received_at)
        result = await self._journal.ingest(plan)
        self._after(source, [result])
        return result

    async def ingest_many(
        self,
        source: IntakeSource,
        deliveries: Sequence[tuple[DeliveryIdentity, ParseResult]],
        *,
        received_at: float | None = None,
    ) -> list[IngestResult]:
        """:meth:`ingest` for each delivery, all in ONE transaction (a file import's batch):
        a storage error leaves none of them journaled, so the whole batch may be sent again."""
        plans = [self._plan(source, i, p, received_at) for i, p in deliveries]
        results = await self._journal.ingest_many(plans)
        self._after(source, results)
        return results

    def _plan(
        self,
        source: IntakeSource,
        identity: DeliveryIdentity,
        parsed: ParseResult,
        received_at: float | None,
    ) -> Plan:
        events = () if isinstance(parsed, Skip) else tuple(parsed)
        delivery = Delivery(
            source=source.name,
            identity=identity,
            received_at=self._clock() if received_at is None else received_at,
            topic=next((e.topic for e in events if e.topic), None),
        )
        foreign = sorted({e.source for e in events} - {source.name})
        if foreign:
            raise ConfigError(f"source {source.name!r} got events of source {foreign[0]!r}")
        return Plan(
            delivery=delivery,
            parsed=parsed if isinstance(parsed, Skip) else events,
            policy=source.policy,
            prepare=self._prepare,
        )

    def _after(self, source: IntakeSource, results: Sequence[IngestResult]) -> None:
        """Wake the flusher for new entries; one log line (and observer call) per delivery."""
        if any(d.outcome.value in ("enqueued", "amended") for r in results for d in r.decisions):
            self._outbox.notify()
        for result in results:
            _log(source.name, result)
            if self._observer is not None:
                self._observer.ingested(source.name, result)

    def _prepare(
        self, facts: BodyFacts, *, event_type: str, channel_id: str, key: str, send_after: float
    ) -> NewEntry:
        body = event_body(
            facts,
            event_type=event_type,
            channel_id=channel_id,
            system=self._system,
            system_version=self._system_version,
        )
        return self._outbox.prepare(body, key=key, send_after=send_after)


def _log(source: str, result: IngestResult) -> None:
    """One line per delivery: ids, status and outcomes, never customer data."""
    if not logger.isEnabledFor(logging.INFO):
        return  # built for nobody otherwise, on every webhook
    outcomes: Sequence[str] = [f"{d.decision.kind}:{d.outcome.value}" for d in result.decisions]
    extra = {
        "action": "intake.ingest",
        "source": source,
        "delivery_id": result.delivery_id,
        "status": result.status.value,
    }
    if result.status is IngestStatus.SKIPPED and result.skip is not None:
        extra["reason"] = result.skip.reason.value
    logger.info(
        "delivery %s from %s: %s %s",
        result.delivery_id,
        source,
        result.status.value,
        " ".join(outcomes),
        extra=extra,
    )


__all__ = ["SYSTEM", "IngestObserver", "Intake", "IntakeSource", "journal_for"]
