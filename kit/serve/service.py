"""The service behind ``etrusted-kit serve``: the webhook routes of every source, the order-feed
pollers of the sources whose feed is on, and the flusher, in one process, supervised as one.

:meth:`Service.run` opens the outbox and the eTrusted client, starts the listener and the
flusher, then the pollers (:mod:`kit.serve.polling`), and returns only when all have stopped:

- :meth:`Service.stop` (the CLI calls it on SIGTERM/SIGINT) closes the listening socket first,
  so nothing new gets in, and stops the pollers; lets the requests in flight and a page being
  polled finish, for at most :attr:`ServeSettings.shutdown_grace` (a page cut off is read
  again by the next poll: its checkpoint was not saved); then stops the flusher gracefully
  (its in-flight POSTs get :attr:`FlusherConfig.grace_period`). Every delivery answered 2xx
  was committed before its answer, so nothing a platform was told is stored is lost by
  stopping. A second ``stop()``
  makes the flusher abandon its in-flight POSTs at once (they become ``in_doubt``, and are
  reconciled before any resend).
- A part that fails stops the whole service: a flusher that stops on its own (a moved outbox,
  a missing schema, a bug) closes the listener the same graceful way, and ``run()`` raises
  :class:`~kit.errors.ServiceError`. A listener that cannot bind fails ``run()`` before the
  flusher starts. A process that went on taking webhooks with nothing sending them, or
  sending with nothing taking webhooks in, would look healthy and do half its job.
- A poller is the exception: one whose credentials the platform refuses stops alone, logs an
  ERROR and shows ``failed`` in :attr:`Service.pollers`, while webhooks keep coming in (the
  poll is the safety net under them, not the intake itself).

With an ``[admin]`` table in the configuration, an admin listener on a port of its own serves
``/healthz``, ``/readyz``, ``/metrics`` and the operator page at ``/`` (:mod:`kit.admin`). It
opens after the webhook listener and closes last, so ``/readyz`` answers 503 while the service
drains. It answers only the host names ``[admin]`` allows (:mod:`kit.admin.hosts`). The
figures are :attr:`Service.metrics`, also without the admin listener.

Everything comes in as objects (:class:`~kit.configfile.KitConfig`,
:class:`~kit.config.ClientConfig`, :class:`~kit.flusher.FlusherConfig`,
:class:`ServeSettings`); nothing here reads the environment or installs signal handlers, so an
application can run a service under its own supervision.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import attrs

from kit import admin
from kit.client import ETrustedClient
from kit.config import ClientConfig
from kit.configfile import KitConfig
from kit.errors import ConfigError, KitError, ServiceError
from kit.feeds.checkpoint import checkpoints_for
from kit.feeds.lease import leases_for
from kit.feeds.runner import FeedRunner, FeedSource
from kit.flusher import Flusher, FlusherConfig, FlusherStats, RunningFlusher
from kit.journal import Intake, Journal, journal_for
from kit.metrics import Metrics
from kit.metrics.feeds import FeedHealth
from kit.outbox import Outbox
from kit.serve.listener import Address, Listener
from kit.serve.polling import Poller, PollerHealth
from kit.serve.settings import ServeSettings
from kit.webhooks import Webhooks

logger = logging.getLogger(__name__)


@attrs.frozen
class Route:
    """One source's webhook route."""

    source: str
    adapter: str
    path: str


@attrs.frozen
class Listening:
    """Where a started service takes webhooks in: its bound addresses and its routes."""

    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]
    admin: Address | None = None  # the admin listener's address, when [admin] is configured

    @property
    def url(self) -> str:
        """The base URL of the first bound address (``http://127.0.0.1:8080``)."""
        return self.addresses[0].url


def _routes(config: KitConfig, settings: ServeSettings) -> tuple[Route, ...]:
    return tuple(
        Route(source.name, source.adapter, settings.webhooks.route(source.name))
        for source in config.sources
    )


class Service:
    """Runs the webhook intake of every configured source and the flusher as one service.

    Construction checks the configuration and opens nothing. ``on_listening`` is called once,
    when the listener is bound and the flusher started (the CLI prints its line then); the same
    value is :attr:`listening` from then on. ``storage_options`` go to
    :meth:`Outbox.from_url <kit.outbox.Outbox.from_url>` (``durability``, pool sizes). A
    service runs once.
    """

    def __init__(
        self,
        config: KitConfig,
        client: ClientConfig,
        flusher: FlusherConfig | None = None,
        settings: ServeSettings | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
        on_listening: Callable[[Listening], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if not config.sources:
            raise ConfigError(
                "no [[sources]] in the configuration: serve would have no webhook route to "
                "offer (add a [[sources]] table for each shop)"
            )
        if config.outbox.url is None:
            raise ConfigError("serve needs an outbox: set [outbox] url")
        self._config = config
        self._client_config = client
        self._flusher_config = flusher or FlusherConfig()
        self._flusher_config.check_client(client)
        self._settings = settings or ServeSettings()
        self._storage_options = dict(storage_options or {})
        self._on_listening = on_listening
        self._routes = _routes(config, self._settings)
        self._stopping = asyncio.Event()
        self._stop_requested = False
        self._ran = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._built: Flusher | None = None
        self._flusher: Flusher | None = None
        self._handle: RunningFlusher | None = None
        self._listening: Listening | None = None
        self._pollers: tuple[Poller, ...] = ()
        self._outbox: Outbox | None = None
        self._admin: Listener | None = None
        self._metrics = metrics or Metrics(sources=(s.name for s in config.sources))

    @property
    def metrics(self) -> Metrics:
        """The service's metrics (:class:`~kit.metrics.Metrics`), readable without HTTP."""
        return self._metrics

    async def readiness(self) -> admin.Readiness:
        """What ``/readyz`` answers: the database, the flusher and the intake, each checked."""
        return await admin.readiness(self._outbox, self._handle, self._accepting)

    def _page_outbox(self) -> Outbox | None:
        return self._outbox

    def _journal(self) -> Journal | None:
        return None if self._outbox is None else journal_for(self._outbox)

    def _accepting(self) -> bool:
        return self._listening is not None and not self._stop_requested

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    @property
    def listening(self) -> Listening | None:
        """Where the service listens, once it does (None before, and after it stopped)."""
        return self._listening

    @property
    def flusher(self) -> RunningFlusher | None:
        """The running flusher's handle (``healthy``, ``failure``, ``stats``), while it runs."""
        return self._handle

    @property
    def pollers(self) -> tuple[PollerHealth, ...]:
        """Each started poller's state (``polling``, ``standby``, ``failed`` with its reason):
        what a readiness check reads; empty before they start and for a service that polls
        nothing."""
        return tuple(poller.health for poller in self._pollers)

    @property
    def flusher_owner(self) -> str | None:
        """The flusher's owner name (its leases carry it), once :meth:`run` built it."""
        return None if self._built is None else self._built.owner

    @property
    def stats(self) -> FlusherStats | None:
        """The flusher's counters, once :meth:`run` built it; also after a failure."""
        return None if self._built is None else self._built.stats

    def stop(self) -> None:
        """Stop gracefully (see the module docs); a second call hurries the flusher.

        Idempotent, and safe to call from another thread or before :meth:`run` got going.
        """
        loop = self._loop
        if loop is not None and threading.get_ident() != self._thread:
            loop.call_soon_threadsafe(self._stop)
        else:
            self._stop()

    def _stop(self) -> None:
        if self._stop_requested and self._flusher is not None:
            # Two calls of Flusher.stop() abandon its in-flight POSTs, however many it had.
            self._flusher.stop()
            self._flusher.stop()
        self._stop_requested = True
        self._stopping.set()

    async def run(self) -> FlusherStats:
        """Serve until :meth:`stop`; returns the flusher's counters after a graceful stop.

        Raises :class:`~kit.errors.ServiceError` when a part failed (after stopping the rest),
        :class:`~kit.errors.ConfigError` for a source that cannot be built or an address that
        cannot be bound, and the outbox's own errors when it cannot be opened. Cancelling
        ``run()`` stops the service the graceful way and then re-raises.
        """
        if self._ran:
            raise KitError("this service has run already; build another to serve again")
        self._ran = True
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        url = self._config.outbox.url
        assert url is not None  # checked in __init__
        # Everything that can be refused is built before anything opens: an unknown adapter
        # or a bad source fails here, with no database opened and no port bound.
        outbox = Outbox.from_url(url.value, **self._storage_options)
        webhooks = Webhooks.from_config(
            Intake(outbox, observer=self._metrics),
            self._config,
            settings=self._settings.webhooks,
            observer=self._metrics,
        )
        listener = Listener(
            host=self._settings.host,
            port=self._settings.port,
            grace=self._settings.shutdown_grace,
        )
        webhooks.install(listener.app)
        admin_listener = self._admin_listener()
        feeds = [feed for feed in map(FeedSource.polled, self._config.sources) if feed is not None]
        try:
            async with (
                outbox,
                ETrustedClient(self._client_config) as client,
                aiohttp.ClientSession() as session,
            ):
                self._outbox = outbox
                flusher = self._built = Flusher(
                    outbox, client, self._flusher_config, observer=self._metrics
                )
                self._metrics.watch(
                    outbox=outbox,
                    flusher=flusher,
                    running=lambda: self._handle is not None and self._handle.healthy,
                )
                self._pollers = tuple(
                    self._poller(feed, outbox, session, flusher.owner) for feed in feeds
                )
                self._watch_feeds(feeds, outbox)
                await listener.start()
                try:
                    if admin_listener is not None:
                        await admin_listener.start()
                    return await self._supervise(flusher, listener)
                finally:
                    await listener.close()
                    if admin_listener is not None:
                        await admin_listener.close()
        finally:
            self._listening = None
            self._outbox = None
            logger.info("serve stopped", extra={"action": "serve_stopped"})

    def _watch_feeds(self, feeds: list[FeedSource], outbox: Outbox) -> None:
        intervals = {
            feed.name: feed.feed.poll_interval.total_seconds()
            for feed in feeds
            if feed.feed.poll_interval is not None
        }
        if intervals:
            self._metrics.watch_feeds(
                checkpoints_for(outbox),
                intervals,
                lambda: [FeedHealth(p.source, not p.healthy) for p in self.pollers],
            )

    def _admin_listener(self) -> Listener | None:
        settings = self._config.admin
        if settings is None:
            return None
        listener = Listener(host=settings.host, port=settings.port, grace=1.0)
        admin.refuse_other_hosts(listener.app, settings.host_names, open_paths=admin.MACHINE_PATHS)
        admin.install(listener.app, self._metrics, self.readiness)
        token = None if settings.token is None else settings.token.value
        admin.install_page(
            listener.app,
            admin.PageSources(self._page_outbox, self._journal, token, settings.public_url),
        )
        if settings.exposed_without_token:
            logger.warning(
                "the admin listener on %s has no [admin] token: the operator page (references,"
                " error texts, decisions) is readable by anyone who can reach it, and retries"
                " are off",
                settings.host or "every interface",
                extra={"action": "admin.exposed_without_token", "host": settings.host},
            )
        self._admin = listener
        return listener

    def _poller(
        self, feed: FeedSource, outbox: Outbox, session: aiohttp.ClientSession, holder: str
    ) -> Poller:
        interval = feed.feed.poll_interval
        assert interval is not None  # FeedSource.polled() keeps only feeds that poll
        runner = FeedRunner(
            feed,
            intake=Intake(outbox, observer=self._metrics),
            checkpoints=checkpoints_for(outbox),
            session=session,
        )
        return Poller(
            runner,
            interval,
            leases=leases_for(outbox),
            holder=holder,
            lease_ttl=self._settings.feed_lease,
            grace=self._settings.shutdown_grace,
        )

    async def _supervise(self, flusher: Flusher, listener: Listener) -> FlusherStats:
        handle: RunningFlusher | None = None
        polling: list[asyncio.Future[None]] = []
        try:
            async with flusher.running() as handle:
                self._flusher, self._handle = flusher, handle
                self._announce(listener)
                polling = [asyncio.ensure_future(poller.run()) for poller in self._pollers]
                try:
                    flusher_ended = await self._until_stopped_or_ended(handle)
                except asyncio.CancelledError:
                    self._stop()
                    await asyncio.gather(listener.close(), self._stop_polling(polling))
                    raise
                if flusher_ended:
                    logger.error(
                        "the flusher stopped: serve stops too",
                        extra={"action": "serve_part_failed", "part": "flusher"},
                    )
                else:
                    logger.info("serve stopping", extra={"action": "serve_stopping"})
                # first: in-flight requests and polled pages enqueue before the flusher stops
                await asyncio.gather(listener.close(), self._stop_polling(polling))
        except KitError as exc:
            if handle is None or handle.failure is not exc:
                raise
            raise ServiceError(
                "flusher", f"serve stopped because the flusher failed: {exc}"
            ) from exc
        finally:
            self._flusher = self._handle = None
            await self._stop_polling(polling)
        if not self._stop_requested:
            raise ServiceError("flusher", "serve stopped because the flusher ended on its own")
        return flusher.stats

    async def _stop_polling(self, polling: list[asyncio.Future[None]]) -> None:
        """Stop every poller; each lets its page in flight finish within the grace."""
        for poller in self._pollers:
            poller.stop()
        if polling:
            await asyncio.gather(*polling, return_exceptions=True)

    async def _until_stopped_or_ended(self, handle: RunningFlusher) -> bool:
        """Wait for a stop request or for the flusher to end; True when the flusher ended."""
        stop = asyncio.ensure_future(self._stopping.wait())
        ended = asyncio.ensure_future(handle.wait())
        try:
            done, _ = await asyncio.wait({stop, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in (stop, ended):
                waiter.cancel()  # handle.wait() is shielded: the flusher keeps running
            # Collects the flusher's error too (raised again when its block is left).
            await asyncio.gather(stop, ended, return_exceptions=True)
        return ended in done and stop not in done

    def _announce(self, listener: Listener) -> None:
        admin_at = None if self._admin is None else self._admin.addresses[0]
        self._listening = Listening(listener.addresses, self._routes, admin_at)
        logger.info(
            "serve listening on %s",
            self._listening.url,
            extra={
                "action": "serve_started",
                "url": self._listening.url,
                "routes": [route.path for route in self._routes],
            },
        )
        if self._on_listening is not None:
            self._on_listening(self._listening)


__all__ = ["Listening", "Route", "Service"]
