"""The HTTP intake: one handler for every push source, on aiohttp or any other framework.

A delivery goes through, in this order: the source is looked up (404), the body is read under
the cap (413), the adapter verifies its signature before anything parses it (401), parses it
(400), and :meth:`kit.journal.Intake.ingest_raw` stores it in one transaction. Only then is it
answered 200, for an accepted delivery, a duplicate and a delivery skipped on purpose alike, so
the platform never retries what is stored. A database failure answers 503 with
``Retry-After`` (nothing was stored, the retry is taken in as new), and so does an erasure
request while one of its invites is being sent; anything unexpected 500.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import TypeAlias

from aiohttp import web

from kit.adapters import normalise_headers
from kit.configfile.model import KitConfig
from kit.errors import (
    ConfigError,
    ErasureInFlightError,
    OutboxMovedError,
    PayloadError,
    StorageError,
    VerificationError,
)
from kit.journal.ingest import Intake, IntakeSource
from kit.journal.records import IngestResult
from kit.webhooks import refusals
from kit.webhooks.answer import WebhookAnswer, stored
from kit.webhooks.body import BodyTooLarge, BodyUnreadable, check_declared, read_capped
from kit.webhooks.observer import WebhookObserver
from kit.webhooks.settings import WebhookSettings

_CHUNK = 64 * 1024
HeadersIn: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
_Reader: TypeAlias = Callable[[int], Awaitable[bytes]]  # the body, given the cap


class Webhooks:
    """Takes push deliveries in for a set of sources, through one :class:`Intake`.

    Framework-neutral: :meth:`ingest` (a raw body in hand) and :meth:`ingest_stream` (chunks
    still arriving, capped while they come). On aiohttp: :meth:`install` adds
    ``POST {path_prefix}/{name}`` for each source, or route :meth:`handle` yourself under a
    path with a ``{source}`` part.
    """

    def __init__(
        self,
        intake: Intake,
        sources: Iterable[IntakeSource],
        settings: WebhookSettings = WebhookSettings(),  # noqa: B008 - frozen, shared safely
        *,
        observer: WebhookObserver | None = None,
    ) -> None:
        self._intake = intake
        self._settings = settings
        self._observer = observer
        self._sources: dict[str, IntakeSource] = {}
        for source in sources:
            if source.name in self._sources:
                raise ConfigError(f"two sources are called {source.name!r}")
            self._sources[source.name] = source

    @classmethod
    def from_config(
        cls,
        intake: Intake,
        config: KitConfig,
        settings: WebhookSettings = WebhookSettings(),  # noqa: B008
        *,
        observer: WebhookObserver | None = None,
    ) -> Webhooks:
        """Every ``[[sources]]`` table of the file, each with its adapter looked up by name."""
        sources = [IntakeSource.from_config(s) for s in config.sources]
        return cls(intake, sources, settings, observer=observer)

    @property
    def intake(self) -> Intake:
        return self._intake

    @property
    def settings(self) -> WebhookSettings:
        return self._settings

    @property
    def sources(self) -> tuple[str, ...]:
        """The source names, in the order they were given."""
        return tuple(self._sources)

    def route(self, source: str) -> str:
        """The path :meth:`install` gives ``source``."""
        return self._settings.route(source)

    # -- framework-neutral -----------------------------------------------------------------

    async def ingest(self, source: str, headers: HeadersIn, raw_body: bytes) -> WebhookAnswer:
        """Answer one delivery whose raw body was read already; never raises for bad input."""
        return await self._answer(source, headers, lambda _: _ready(raw_body))

    async def ingest_stream(
        self, source: str, headers: HeadersIn, chunks: AsyncIterable[bytes]
    ) -> WebhookAnswer:
        """Answer one delivery whose body is still arriving (Starlette's ``request.stream()``):
        refused on its ``Content-Length`` before a byte is read, and cut off as soon as the
        chunks pass the cap."""
        return await self._answer(source, headers, lambda limit: read_capped(chunks, limit))

    # -- aiohttp ---------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        """The aiohttp handler: the source is the route's ``{source}`` part."""
        source = request.match_info.get("source", "")
        answer = await self.ingest_stream(
            source, request.headers, request.content.iter_chunked(_CHUNK)
        )
        # No header dict at all for the usual answer: aiohttp copies even an empty one.
        headers = answer.headers or None
        return web.json_response(answer.body, status=answer.status, headers=headers)

    def install(self, app: web.Application) -> None:
        """Add ``POST {path_prefix}/{name}`` for each source to ``app``."""
        for name in self._sources:
            path = f"{self._settings.path_prefix}/{{source:{re.escape(name)}}}"
            # Unnamed: aiohttp wants route names of identifiers, and "2nd-shop" or "class" are
            # good source names.
            app.router.add_post(path, self.handle)

    # -- the one path every delivery takes --------------------------------------------------

    async def _answer(self, name: str, headers: HeadersIn, read: _Reader) -> WebhookAnswer:
        if self._observer is None:
            return (await self._decide(name, headers, read))[0]
        started = time.perf_counter()
        answer, result = await self._decide(name, headers, read)
        known = name if name in self._sources else None
        self._observer.answered(known, answer, result, time.perf_counter() - started)
        return answer

    async def _decide(
        self, name: str, headers: HeadersIn, read: _Reader
    ) -> tuple[WebhookAnswer, IngestResult | None]:
        source = self._sources.get(name)
        if source is None:
            return refusals.unknown_source(name), None
        try:
            lowered = normalise_headers(headers)
            limit = self._settings.max_body_bytes
            check_declared(lowered, limit)
            raw_body = await read(limit)
            if len(raw_body) > limit:
                raise BodyTooLarge(declared=False)
            result = await self._intake.ingest_raw(source, lowered, raw_body)
        except BodyTooLarge as exc:
            return refusals.too_large(name, exc, self._settings.max_body_bytes), None
        except BodyUnreadable as exc:
            return refusals.unreadable(name, exc), None
        except VerificationError as exc:
            return refusals.not_verified(name, exc), None
        except PayloadError as exc:
            return refusals.bad_payload(name, exc), None
        except (StorageError, OutboxMovedError) as exc:
            return refusals.storage_failed(name, exc, self._settings.retry_after), None
        except ErasureInFlightError as exc:
            return refusals.erasure_in_flight(name, exc, self._settings.retry_after), None
        except Exception:  # noqa: BLE001 - a bug: rolled back, logged with its traceback
            return refusals.crashed(name), None
        return stored(result), result


async def _ready(raw_body: bytes) -> bytes:
    return raw_body


__all__ = ["Webhooks"]
