"""``serve``'s admin listener, scraped as Prometheus would: the figures move with the work,
readiness says what is wrong, and a SIGTERM under load loses nothing."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from serve.serve_helpers import ROUTE, fulfilment, key_of, post, serve_env, wait_until

from kit.metrics import allowed
from kit.outbox import Outbox, State
from kit.sandbox import Fault, FaultKind, SandboxServer

from .admin_helpers import Admin, admin_config, serving_admin, value

SOURCE = "my-shop"


async def _post_all(url: str, order_ids: list[str]) -> list[int]:
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(post(session, url, fulfilment(o)) for o in order_ids))
    return [status for status, _ in answers]


async def _until_metric(admin: Admin, name: str, at_least: float, **labels: str) -> None:
    async def reached() -> bool:
        return value(await admin.metrics(), name, **labels) >= at_least

    await wait_until(reached, timeout=30, every=0.1)


async def test_counters_move_with_webhooks_and_deliveries(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """After N signed deliveries are answered and sent: N accepted webhooks, N enqueued and N
    delivered, N sends answered 2xx, N entries delivered, a webhook answer time observed N
    times, the flusher running and not paused; every label value is from its allowed set
    (no order id, no e-mail), and /healthz and /readyz answer 200."""
    config = admin_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    orders = [f"31{i:02d}" for i in range(5)]
    async with serving_admin(config, env=serve_env(), stderr_path=tmp_path / "e") as admin:
        assert await admin.get("/healthz") == (200, '{"alive": true}')
        assert await _post_all(admin.served.url, orders) == [200] * len(orders)
        # A refused one: a wrong signature is counted by its fixed word.
        headers, raw = fulfilment("3199")
        headers = {**headers, "X-Shopify-Hmac-Sha256": "AAAA"}
        async with aiohttp.ClientSession() as session:
            assert (await post(session, admin.served.url, (headers, raw)))[0] == 401
        await _until_metric(admin, "etrusted_kit_delivered_total", len(orders))
        # Results are written in batches: the stored states follow the counters shortly.
        await _until_metric(admin, "etrusted_kit_entries", len(orders), state="delivered")
        samples = await admin.metrics()
        status, ready = await admin.ready()
        admin.served.send_signal(signal.SIGTERM)
        assert await admin.served.wait() == 0, admin.served.stderr

    n = float(len(orders))
    assert status == 200, ready
    assert ready["ready"] is True
    assert set(ready["checks"]) == {"database", "flusher", "intake"}
    assert value(samples, "etrusted_kit_webhooks_total", source=SOURCE, answer="accepted") == n
    assert (
        value(samples, "etrusted_kit_webhooks_total", source=SOURCE, answer="verification_failed")
        == 1
    )
    assert value(samples, "etrusted_kit_webhook_answer_seconds_count", source=SOURCE) == n + 1
    assert value(samples, "etrusted_kit_enqueued_total", source=SOURCE) == n
    assert (
        value(
            samples,
            "etrusted_kit_decisions_total",
            source=SOURCE,
            outcome="enqueued",
            reason="none",
        )
        == n
    )
    assert (
        value(
            samples, "etrusted_kit_domain_events_total", source=SOURCE, event_kind="order_fulfilled"
        )
        == n
    )
    assert value(samples, "etrusted_kit_delivered_total") == n
    assert value(samples, "etrusted_kit_http_attempts_total", kind="send", status_class="2xx") == n
    assert value(samples, "etrusted_kit_delivery_latency_seconds_count") == n
    assert value(samples, "etrusted_kit_entries", state="delivered") == n
    assert value(samples, "etrusted_kit_entries", state="pending") == 0
    assert value(samples, "etrusted_kit_dead_total") == 0
    assert value(samples, "etrusted_kit_outbox_up") == 1
    assert value(samples, "etrusted_kit_flusher_running") == 1
    assert value(samples, "etrusted_kit_flusher_paused", pause="credentials") == 0
    sets = allowed([SOURCE])
    for (name, labels), _ in samples.items():
        for label, label_value in labels:
            if label in ("le", "quantile"):
                continue
            assert label in sets, (name, label)
            assert label_value in sets[label], (name, label, label_value)


async def test_sigterm_with_deliveries_and_webhooks_in_flight_loses_nothing(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """SIGTERM while eTrusted is slow to answer the flusher's POSTs and while webhooks are
    still coming in: every webhook answered 200 is in the outbox, every entry eTrusted
    created is recorded delivered exactly once, nothing is left claimed or in doubt, and
    serve exits 0."""
    sandbox.sandbox.add_fault(
        Fault(kind=FaultKind.LATE_ANSWER, method="POST", path="/events", delay=1.0)
    )
    config = admin_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    first = [f"32{i:02d}" for i in range(4)]
    later = [f"33{i:02d}" for i in range(12)]
    async with serving_admin(config, env=serve_env(), stderr_path=tmp_path / "e") as admin:
        url = admin.served.url
        assert await _post_all(url, first) == [200] * len(first)
        # Deliveries in flight: eTrusted got the POSTs and holds its answers back.
        await wait_until(lambda: _received(sandbox, len(first)), timeout=30, every=0.02)
        assert (await admin.ready())[0] == 200
        # One webhook surely in flight: its handler waits for the body when the signal comes.
        held = await _HeldDelivery.open(url, "3299")
        # More webhooks in flight: posted together with the signal.
        posting = asyncio.ensure_future(_post_statuses(url, later))
        await asyncio.sleep(0)  # the posts start connecting before the signal is sent
        admin.served.send_signal(signal.SIGTERM)
        held_status = await held.finish()
        statuses = await posting
        code = await admin.served.wait()

    assert code == 0, admin.served.stderr
    assert "Traceback" not in admin.served.stderr
    assert held_status == 200
    answered = ["3299"] + [o for o, s in zip(later, statuses, strict=True) if s == 200]
    async with Outbox.from_url(db) as outbox:
        stats = await outbox.stats()
        assert stats.counts[State.SENDING] == 0
        assert stats.counts[State.IN_DOUBT] == 0
        for order_id in first + answered:
            entry = await outbox.get(key_of(order_id))
            assert entry.state in (State.PENDING, State.DELIVERED), (order_id, entry.state)
        delivered = stats.counts[State.DELIVERED]
    created = sandbox.sandbox.accepted_events()
    assert len(created) == delivered >= len(first)
    references = [event.transaction_reference for event in created]
    assert len(set(references)) == len(references)  # no event created twice


class _HeldDelivery:
    """A signed delivery whose headers are sent with ``Expect: 100-continue``: once the
    "100 Continue" is back, its handler runs and waits for the body."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes):
        self._reader, self._writer, self._raw = reader, writer, raw

    @classmethod
    async def open(cls, url: str, order_id: str) -> _HeldDelivery:
        parts = urlsplit(url)
        assert parts.hostname is not None
        assert parts.port is not None
        headers, raw = fulfilment(order_id)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        writer.write(
            f"POST {ROUTE} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Length: {len(raw)}\r\nExpect: 100-continue\r\n{head}\r\n".encode()
        )
        await writer.drain()
        async with asyncio.timeout(10):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 Continue"), interim
        return cls(reader, writer, raw)

    async def finish(self) -> int:
        """Send the body; the answer's status."""
        try:
            self._writer.write(self._raw)
            await self._writer.drain()
            async with asyncio.timeout(10):
                response = await self._reader.read()  # until serve closes the connection
        finally:
            self._writer.close()
        return int(response.split(b" ", 2)[1])


async def _post_statuses(url: str, order_ids: list[str]) -> list[int]:
    """Each delivery's status, or 0 when the closed listener refused the connection."""
    async with aiohttp.ClientSession() as session:

        async def one(order_id: str) -> int:
            try:
                return (await post(session, url, fulfilment(order_id)))[0]
            except aiohttp.ClientError:
                return 0

        return list(await asyncio.gather(*(one(o) for o in order_ids)))


async def _received(sandbox: SandboxServer, n: int) -> bool:
    """eTrusted processed ``n`` POSTs (their answers are held back by the late-answer fault)."""
    return len(sandbox.sandbox.accepted_events()) >= n


async def test_readyz_is_503_while_etrusted_refuses_the_credentials(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """Credentials eTrusted refuses pause the flusher: /readyz answers 503 naming the flusher,
    the paused gauge is 1, and the database and intake checks still pass."""
    config = admin_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    text = config.read_text()
    secret = json.dumps(sandbox.sandbox.config.client_secret)
    config.write_text(text.replace(f"client_secret = {secret}", 'client_secret = "wrong"'))
    async with serving_admin(config, env=serve_env(), stderr_path=tmp_path / "e") as admin:
        assert await _post_all(admin.served.url, ["3400"]) == [200]

        async def refused() -> bool:
            return (await admin.ready())[0] == 503

        await wait_until(refused, timeout=30, every=0.1)
        _, ready = await admin.ready()
        samples = await admin.metrics()
    assert ready["ready"] is False
    assert ready["checks"]["flusher"]["ok"] is False
    assert "credentials" in ready["checks"]["flusher"]["detail"]
    assert ready["checks"]["database"]["ok"] is True
    assert ready["checks"]["intake"]["ok"] is True
    assert value(samples, "etrusted_kit_flusher_paused", pause="credentials") == 1


async def test_an_etrusted_outage_shows_in_the_backing_off_figures(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """While eTrusted answers 503 to every event, the entries back off: the backing-off count
    equals the entries posted and its oldest age grows, while nothing counts as delivered;
    5xx attempts are counted. Once eTrusted is back every entry is delivered and the
    backing-off count falls to 0."""
    fault = sandbox.sandbox.add_fault(
        Fault(kind=FaultKind.STATUS, method="POST", path="/events", status=503)
    )
    config = admin_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    orders = ["3500", "3501", "3502"]
    async with serving_admin(config, env=serve_env(), stderr_path=tmp_path / "e") as admin:
        assert await _post_all(admin.served.url, orders) == [200] * 3

        async def all_backing_off() -> bool:
            samples = await admin.metrics()
            return (
                value(samples, "etrusted_kit_backing_off_entries") == 3
                and value(samples, "etrusted_kit_oldest_backing_off_age_seconds") > 0.2
            )

        await wait_until(all_backing_off, timeout=30, every=0.1)
        during = await admin.metrics()
        sandbox.sandbox.remove_fault(fault)
        await _until_metric(admin, "etrusted_kit_delivered_total", 3)

        async def none_backing_off() -> bool:
            return value(await admin.metrics(), "etrusted_kit_backing_off_entries") == 0

        await wait_until(none_backing_off, timeout=30, every=0.1)
        admin.served.send_signal(signal.SIGTERM)
        assert await admin.served.wait() == 0
    assert value(during, "etrusted_kit_delivered_total") == 0
    assert value(during, "etrusted_kit_http_attempts_total", kind="send", status_class="5xx") >= 3
    assert value(during, "etrusted_kit_retries_total") >= 3
