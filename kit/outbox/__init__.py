"""The durable outbox: validate, key, store; wake the flusher.

:class:`Outbox` is what applications and adapters talk to. It validates each event against the
documented eTrusted rules before anything is stored (an invalid event is refused with every
offending field named, never parked for later), derives the dedupe key, and hands
:class:`~kit.outbox.types.NewEntry` rows to a :class:`~kit.outbox.protocol.Storage` backend.
Backends are chosen by URL: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, a plain path,
or ``postgresql://...``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from kit.errors import ConfigError, FieldError, OutboxError, ValidationError
from kit.outbox.protocol import Storage, SupportsExternalTransaction
from kit.outbox.types import (
    KEY_MARKER,
    AttemptRecord,
    EnqueueResult,
    Entry,
    ForgetResult,
    NewEntry,
    OutboxStats,
    State,
)
from kit.redact import redact_url
from kit.validation import validate_event_body

EventInput = Mapping[str, Any] | Any  # a wire dict, or a kit.models.Event


def default_key(body: Mapping[str, Any]) -> str:
    """channel id + event type + transaction reference: one invite per touchpoint and order."""
    return f"{body['channel']['id']}:{body['type']}:{body['transaction']['reference']}"


def email_hash(email: str) -> str:
    """How an e-mail is stored for ``forget_customer``: never in clear outside the payload.

    Never raises: an address with a lone surrogate is refused with the payload that holds it
    (``NewEntry.from_body``), so hashing it must not fail first."""
    return hashlib.sha256(email.strip().lower().encode("utf-8", "surrogatepass")).hexdigest()


def _epoch(value: datetime | float | None) -> float | None:
    if value is None or isinstance(value, float | int):
        return value
    if value.tzinfo is None:
        raise ConfigError("send_after must be timezone-aware (e.g. datetime.now(UTC))")
    return value.timestamp()


def storage_from_url(url: str, **options: Any) -> Storage:
    """Pick the backend for a database URL (or a plain SQLite file path)."""
    if url.startswith(("postgresql://", "postgres://")):
        from kit.outbox._pg_conn import _unparsable_url
        from kit.outbox.postgres import PostgresStorage

        # ``?schema=name`` selects the outbox's schema; the rest of the URL goes to asyncpg.
        with _unparsable_url(redact_url(url)):
            parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = [v for k, v in query if k == "schema"]
        if schema:
            options.setdefault("schema", schema[-1])
            rest = urlencode([(k, v) for k, v in query if k != "schema"])
            url = urlunsplit(parts._replace(query=rest))
        return PostgresStorage(url, **options)
    if "://" in url and not url.startswith("sqlite:"):
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"unsupported outbox URL scheme {scheme!r}: use sqlite:///path.db, a file path,"
            " or postgresql://..."
        )
    from kit.outbox.sqlite import SQLiteStorage

    return SQLiteStorage(url, **options)


def missing_sqlite_file(url: str) -> str | None:
    """The path of the SQLite file ``url`` names if that file does not exist, else None (also
    for PostgreSQL and in-memory URLs). Opening would create it: a command that only reads or
    checks an outbox asks this first, so a mistyped path is reported, not created empty."""
    if url.startswith(("postgresql://", "postgres://")):
        return None
    from kit.outbox.sqlite import MEMORY, sqlite_path_from_url

    path = sqlite_path_from_url(url) if url.startswith("sqlite:") else url
    return None if path == MEMORY or os.path.exists(path) else path


class Wakeup:
    """An in-process doorbell: enqueue rings it, a flusher waits on it (with a poll timeout)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def ring(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 (a poll bound, not a cancel scope)
        """True if rung (rings since the last wait count), False on timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        # Cleared in the same step that observed it, so no later ring can be lost.
        self._event.clear()
        return True


class Outbox:
    """The application's handle on the outbox. One per process and database is plenty."""

    def __init__(
        self,
        storage: Storage,
        *,
        clock: Callable[[], float] = time.time,
        allow_checkout: bool = False,
        owns_storage: bool = True,
        mark_events: bool = True,
    ) -> None:
        self.storage = storage
        self._clock = clock
        self._allow_checkout = allow_checkout
        self._owns_storage = owns_storage
        self._mark_events = mark_events
        self._bells: set[Wakeup] = set()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Outbox:
        return cls(storage_from_url(url, **options))

    async def open(self, *, migrate: bool = True) -> Self:
        await self.storage.open(migrate=migrate)
        return self

    async def aclose(self) -> None:
        if self._owns_storage:
            await self.storage.aclose()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- wake-ups ---------------------------------------------------------------------------

    def subscribe(self) -> Wakeup:
        bell = Wakeup()
        self._bells.add(bell)
        return bell

    def unsubscribe(self, bell: Wakeup) -> None:
        self._bells.discard(bell)

    def notify(self) -> None:
        """Ring every in-process flusher (e.g. after committing an ``enqueue_in`` transaction)."""
        for bell in self._bells:
            bell.ring()

    # -- writing ----------------------------------------------------------------------------

    def prepare(
        self,
        event: EventInput,
        *,
        key: str | None = None,
        send_after: datetime | float | None = None,
    ) -> NewEntry:
        """Validate and key one event without storing it. Raises ValidationError."""
        body = _as_body(event)
        validate_event_body(body, allow_checkout=self._allow_checkout)
        entry_key = key if key is not None else default_key(body)
        if self._mark_events:
            # Our key travels with the event, so reconciliation adopts only our own event.
            metadata = body.get("metadata")
            body["metadata"] = (
                {**metadata, KEY_MARKER: entry_key} if metadata else {KEY_MARKER: entry_key}
            )
        return NewEntry.from_body(
            entry_key,
            body,
            email_hash=email_hash(body["customer"]["email"]),
            send_after=_epoch(send_after),
        )

    async def enqueue(
        self,
        event: EventInput,
        *,
        key: str | None = None,
        send_after: datetime | float | None = None,
    ) -> EnqueueResult:
        """Store one event (its own transaction). A known key is a no-op with duplicate=True."""
        entry = self.prepare(event, key=key, send_after=send_after)
        (result,) = await self.storage.enqueue([entry], now=self._clock())
        if not result.duplicate:
            self.notify()
        return result

    async def enqueue_many(
        self, events: Iterable[EventInput | NewEntry], *, batch_size: int = 1000
    ) -> list[EnqueueResult]:
        """Store many events, one transaction per ``batch_size``.

        Every event is validated before the first batch is written, so an invalid one refuses
        the whole call (with all offending fields of all events) and stores nothing.
        """
        prepared: list[NewEntry] = []
        errors: list[FieldError] = []
        for index, event in enumerate(events):
            if isinstance(event, NewEntry):
                prepared.append(event)
                continue
            try:
                prepared.append(self.prepare(event))
            except ValidationError as exc:
                errors.extend(attrs.evolve(e, path=f"[{index}].{e.path}") for e in exc.errors)
        if errors:
            raise ValidationError(errors, subject="events")
        return await self.enqueue_entries(prepared, batch_size=batch_size)

    async def enqueue_entries(
        self, entries: Sequence[NewEntry], *, batch_size: int = 1000
    ) -> list[EnqueueResult]:
        """Store already prepared entries, one transaction per ``batch_size``."""
        if batch_size < 1:
            raise ConfigError("batch_size must be >= 1")
        results: list[EnqueueResult] = []
        for start in range(0, len(entries), batch_size):
            batch = entries[start : start + batch_size]
            results.extend(await self.storage.enqueue(batch, now=self._clock()))
        if any(not r.duplicate for r in results):
            self.notify()
        return results

    async def enqueue_in(
        self,
        connection: Any,
        event: EventInput,
        *,
        key: str | None = None,
        send_after: datetime | float | None = None,
    ) -> EnqueueResult:
        """Enqueue inside the caller's own open transaction on ``connection``.

        The row commits or rolls back with the caller's transaction. Call :meth:`notify` after
        committing to wake an in-process flusher at once (other flushers find it by polling).
        """
        if not isinstance(self.storage, SupportsExternalTransaction):
            raise ConfigError(
                f"{type(self.storage).__name__} cannot enqueue inside an external transaction"
            )
        entry = self.prepare(event, key=key, send_after=send_after)
        (result,) = await self.storage.enqueue_in(connection, [entry], now=self._clock())
        return result

    async def cancel(self, key: str) -> bool:
        """Withdraw a pending entry (e.g. an order cancelled during its hold-back window)."""
        return await self.storage.cancel(key, now=self._clock())

    async def retry_dead(self, keys: Sequence[str] | None = None) -> int:
        count = await self.storage.retry_dead(keys, now=self._clock())
        if count:
            self.notify()
        return count

    async def drop_dead(self, keys: Sequence[str] | None = None) -> int:
        return await self.storage.drop_dead(keys, now=self._clock())

    async def purge(self, *, older_than: float) -> int:
        """Remove payloads (customer data) of finished entries older than ``older_than`` s."""
        now = self._clock()
        return await self.storage.purge(before=now - older_than, now=now)

    async def forget_customer(self, email: str) -> ForgetResult:
        return await self.storage.forget_customer(email_hash(email), now=self._clock())

    # -- reading ----------------------------------------------------------------------------

    async def get(self, key: str) -> Entry:
        entry = await self.storage.get(key)
        if entry is None:
            raise OutboxError(f"no outbox entry with key {key!r}")
        return entry

    async def entries(
        self, *, state: State | None = None, limit: int = 100, after_id: int = 0
    ) -> list[Entry]:
        return await self.storage.entries(state=state, limit=limit, after_id=after_id)

    async def attempts(self, key: str) -> list[AttemptRecord]:
        return await self.storage.attempts(key)

    async def stats(self) -> OutboxStats:
        return await self.storage.stats()


def _as_body(event: EventInput) -> dict[str, Any]:
    if isinstance(event, Mapping):
        return dict(event)
    to_body = getattr(event, "to_body", None)
    if to_body is None:
        raise ValidationError([], subject=f"event of type {type(event).__name__}")
    body = to_body()
    if not isinstance(body, dict):
        raise ValidationError([], subject="event")
    return body


__all__ = [
    "EnqueueResult",
    "Entry",
    "NewEntry",
    "Outbox",
    "State",
    "Storage",
    "Wakeup",
    "default_key",
    "email_hash",
    "missing_sqlite_file",
    "storage_from_url",
]
