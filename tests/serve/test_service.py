"""The service runner without the CLI: what an application embedding it relies on."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import aiohttp
import attrs
import pytest
from journal.deliveries import SECRET

from kit.configfile import AdminSettings, KitConfig, Secret, parse_config
from kit.errors import ConfigError, KitError, OutboxMovedError, ServiceError
from kit.flusher import FlusherConfig, FlusherStats
from kit.outbox import Outbox, State, storage_from_url
from kit.outbox.move import migrate_outbox
from kit.sandbox import Fault, FaultKind, SandboxServer
from kit.serve import Listening, ServeSettings, Service

from .serve_helpers import (
    ROUTE,
    SECRET_VARIABLE,
    SHOPIFY_SOURCE,
    fulfilment,
    key_of,
    post,
    wait_until,
)

FAST = FlusherConfig(poll_interval=0.05, grace_period=1.0)
LOOPBACK = ServeSettings(port=0, shutdown_grace=2.0)


def kit_config(db: str, sources: str = SHOPIFY_SOURCE) -> KitConfig:
    return parse_config(f'[outbox]\nurl = "{db}"\n{sources}', environ={SECRET_VARIABLE: SECRET})


def service(db: str, sandbox: SandboxServer) -> tuple[Service, asyncio.Future[Listening]]:
    """A service on a free loopback port, and the future its ``on_listening`` resolves."""
    listening: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
    built = Service(
        kit_config(db), sandbox.client_config(), FAST, LOOPBACK, on_listening=listening.set_result
    )
    return built, listening


async def _started(
    service: Service, listening: asyncio.Future[Listening]
) -> tuple[asyncio.Task[FlusherStats], Listening]:
    """Run the service as a task; return it once it listens."""
    task = asyncio.create_task(service.run())
    async with asyncio.timeout(30):
        done, _ = await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # raises why it did not start
    return task, listening.result()


async def test_an_embedded_service_takes_a_webhook_in_and_delivers_it(
    sandbox: SandboxServer, db: str
) -> None:
    """Built from objects alone (no CLI, no environment): ``on_listening`` reports the real
    port and the routes, a delivery goes in and out to eTrusted, and ``stop()`` ends
    ``run()`` with the flusher's counters."""
    served, future = service(db, sandbox)
    task, listening = await _started(served, future)
    assert served.listening == listening
    assert listening.addresses[0].port != 0
    assert [(r.source, r.adapter, r.path) for r in listening.routes] == [
        ("my-shop", "shopify", ROUTE)
    ]
    assert served.flusher is not None
    assert served.flusher.healthy
    async with aiohttp.ClientSession() as session:
        assert (await post(session, listening.url, fulfilment("4001")))[0] == 200

    async def delivered() -> bool:
        return served.stats is not None and served.stats.delivered == 1

    await wait_until(delivered)
    served.stop()
    stats = await asyncio.wait_for(task, 30)
    assert stats.delivered == 1
    assert served.listening is None
    assert served.flusher is None
    (accepted,) = sandbox.sandbox.accepted_events()
    assert accepted.transaction_reference == "#4001"


async def test_stop_from_another_thread_stops_the_service(sandbox: SandboxServer, db: str) -> None:
    """An application may call ``stop()`` from any thread (a GUI, a test runner, a signal
    library); the service still stops gracefully on its own loop."""
    served, future = service(db, sandbox)
    task, _ = await _started(served, future)
    thread = threading.Thread(target=served.stop)
    thread.start()
    thread.join()
    await asyncio.wait_for(task, 30)


async def test_cancelling_run_stops_gracefully_then_reraises(
    sandbox: SandboxServer, db: str
) -> None:
    """Cancelling ``run()`` (an application's task group unwinding) closes the listener and
    stops the flusher before the CancelledError goes on."""
    served, future = service(db, sandbox)
    task, listening = await _started(served, future)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    assert served.flusher is None
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(session, listening.url, fulfilment("4002"))
    async with Outbox.from_url(db) as outbox:
        assert (await outbox.stats()).counts[State.SENDING] == 0


async def test_a_failed_flusher_fails_run_with_service_error(
    sandbox: SandboxServer, db: str, tmp_path: Path
) -> None:
    """A part that fails stops the service: ``run()`` raises ServiceError naming the part,
    with the part's own error as its cause, and the listener is closed."""
    served, future = service(db, sandbox)
    task, listening = await _started(served, future)
    source = storage_from_url(db)
    await source.open(migrate=False)
    try:
        async with storage_from_url(f"sqlite:///{tmp_path / 'moved.db'}") as target:
            await migrate_outbox(source, target)
    finally:
        await source.aclose()
    with pytest.raises(ServiceError) as caught:
        await asyncio.wait_for(task, 30)
    assert caught.value.part == "flusher"
    assert isinstance(caught.value.__cause__, OutboxMovedError)
    assert "serve stopped because the flusher failed" in str(caught.value)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await post(session, listening.url, fulfilment("4003"))


async def test_a_service_runs_once(sandbox: SandboxServer, db: str) -> None:
    """A stop asked for before ``run()`` ends the run as soon as it started; a second
    ``run()`` is refused (its outbox and client were closed)."""
    served, _ = service(db, sandbox)
    served.stop()
    await asyncio.wait_for(served.run(), 30)
    with pytest.raises(KitError, match="has run already"):
        await served.run()


@pytest.mark.parametrize(
    ("host", "token", "warned"),
    [
        ("0.0.0.0", None, True),  # noqa: S104 - the exposure this test is about
        ("0.0.0.0", Secret("t0ken"), False),  # noqa: S104
        ("127.0.0.1", None, False),
    ],
    ids=["exposed-without-token", "exposed-with-token", "loopback-without-token"],
)
async def test_an_admin_listener_exposed_without_a_token_is_warned_about_at_start(
    sandbox: SandboxServer,
    db: str,
    caplog: pytest.LogCaptureFixture,
    host: str,
    token: Secret | None,
    warned: bool,
) -> None:
    """Bound beyond loopback with no token, the operator page is readable by anyone who can
    reach the port and its retry is off: serve says so once, at start."""
    listening: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
    admin = AdminSettings(host=host, port=0, token=token)
    served = Service(
        attrs.evolve(kit_config(db), admin=admin),
        sandbox.client_config(),
        FAST,
        LOOPBACK,
        on_listening=listening.set_result,
    )
    caplog.set_level(logging.WARNING, "kit.serve")
    task, _ = await _started(served, listening)
    served.stop()
    await asyncio.wait_for(task, 30)
    exposed = [
        r for r in caplog.records if getattr(r, "action", "") == "admin.exposed_without_token"
    ]
    assert len(exposed) == (1 if warned else 0)
    if warned:
        assert exposed[0].levelno == logging.WARNING
        assert "readable by anyone who can reach it" in exposed[0].getMessage()
        assert "retries are off" in exposed[0].getMessage()


def test_a_configuration_without_sources_is_refused(sandbox: SandboxServer, db: str) -> None:
    with pytest.raises(ConfigError, match=r"no \[\[sources\]\]"):
        Service(kit_config(db, sources=""), sandbox.client_config())


def test_a_configuration_without_an_outbox_is_refused(sandbox: SandboxServer, db: str) -> None:
    config = attrs.evolve(kit_config(db), outbox=KitConfig().outbox)
    with pytest.raises(ConfigError, match=r"set \[outbox\] url"):
        Service(config, sandbox.client_config())


def test_a_client_slower_than_half_a_lease_is_refused(sandbox: SandboxServer, db: str) -> None:
    """The flusher's own rule (a POST must end inside its lease) holds for a service too."""
    with pytest.raises(ConfigError, match="lease_seconds"):
        Service(
            kit_config(db),
            sandbox.client_config(request_timeout=10.0),
            FlusherConfig(lease_seconds=10.0),
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [("port", -1), ("port", 65536), ("port", True), ("host", " "), ("shutdown_grace", 0.0)],
)
def test_serve_settings_refuse_bad_values(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        ServeSettings(**{field: value})  # type: ignore[arg-type]


async def test_a_second_stop_abandons_the_flushers_posts_in_flight(
    sandbox: SandboxServer, db: str
) -> None:
    """The first stop waits for a POST in flight (up to the flusher's grace period); a second
    one abandons it at once. The entry is then in doubt, to be reconciled before any resend,
    never lost and never sent twice blind."""
    sandbox.sandbox.add_fault(
        Fault(kind=FaultKind.LATE_ANSWER, method="POST", path="/events", delay=60)
    )
    listening: asyncio.Future[Listening] = asyncio.get_running_loop().create_future()
    patient = attrs.evolve(FAST, grace_period=60.0)
    served = Service(
        kit_config(db),
        sandbox.client_config(request_timeout=25.0),
        patient,
        LOOPBACK,
        on_listening=listening.set_result,
    )
    task, url = await _started(served, listening)
    async with aiohttp.ClientSession() as session:
        assert (await post(session, url.url, fulfilment("4005")))[0] == 200

    async def posted() -> bool:  # accepted, its answer held back: the POST is in flight
        return len(sandbox.sandbox.accepted_events()) == 1

    await wait_until(posted)
    served.stop()
    served.stop()
    # Well inside the 25 s the POST would otherwise wait for its answer.
    await asyncio.wait_for(task, 15)
    async with Outbox.from_url(db) as outbox:
        assert (await outbox.get(key_of("4005"))).state is State.IN_DOUBT
