"""The framework-neutral entry points, without a server: ``ingest`` with a body in hand and
``ingest_stream`` with chunks still arriving; the settings; building from a config file."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from journal.conftest import Kit
from journal.conftest import source as shop_source
from journal.deliveries import CHANNEL, KEY, ORDER_ID, SECRET, SHOP, fulfilled_order

from kit.adapters import DeliveryIdentity
from kit.configfile import parse_config
from kit.domain import Skip
from kit.errors import ConfigError, VerificationError
from kit.journal.ingest import IntakeSource
from kit.journal.records import StreamHistory
from kit.outbox import State
from kit.outbox.sqlite import SQLiteStorage
from kit.webhooks import WebhookAnswer, Webhooks, WebhookSettings

from .conftest import delivery, open_kit


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    path = tmp_path / "outbox.db"
    opened = await open_kit("sqlite", SQLiteStorage(path), None)
    yield opened
    await opened.aclose()


def webhooks_for(kit: Kit, **settings: Any) -> Webhooks:
    return Webhooks(kit.intake, [shop_source()], WebhookSettings(**settings))


async def test_ingest_takes_header_pairs_in_any_case(kit: Kit) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    pairs = [(name.upper(), value) for name, value in headers.items()]

    answer = await webhooks_for(kit).ingest("my-shop", pairs, raw)

    assert answer == WebhookAnswer(200, {"status": "accepted", "delivery_id": "w-1"})
    assert answer.ok
    assert answer.headers == {}
    assert (await kit.outbox.get(KEY)).state is State.PENDING


async def test_ingest_refuses_a_body_over_the_cap_it_was_handed(kit: Kit) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")

    answer = await webhooks_for(kit, max_body_bytes=len(raw) - 1).ingest("my-shop", headers, raw)

    assert (answer.status, answer.body) == (413, {"error": "body_too_large"})
    assert await kit.outbox.storage.get(KEY) is None


async def test_ingest_answers_an_unknown_source_with_404_and_logs_it(
    kit: Kit, caplog: pytest.LogCaptureFixture
) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")

    answer = await webhooks_for(kit).ingest("nobody", headers, raw)

    assert (answer.status, answer.body) == (404, {"error": "unknown_source"})
    (record,) = [r for r in caplog.records if getattr(r, "action", "") == "webhook.refused"]
    assert (record.__dict__["source"], record.__dict__["status"]) == ("'nobody'", 404)
    assert await kit.intake.journal.history("nobody", ORDER_ID) == StreamHistory()
    assert await kit.outbox.storage.get(KEY) is None


async def test_ingest_stream_refuses_a_declared_length_without_reading(kit: Kit) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    headers["Content-Length"] = str(len(raw))
    read: list[bytes] = []

    async def body() -> AsyncIterator[bytes]:
        read.append(raw)
        yield raw

    answer = await webhooks_for(kit, max_body_bytes=100).ingest_stream("my-shop", headers, body())

    assert answer.status == 413
    assert read == []


@pytest.mark.parametrize("declared", ["\u00b2", "\u0661\u0662", " 12x", ""])
async def test_a_content_length_that_is_no_decimal_number_is_not_a_declared_length(
    kit: Kit, declared: str
) -> None:
    """Only ASCII digits declare a length; anything else (a superscript two, Arabic-Indic
    digits) is no declaration, so the body is read under the cap and taken in."""
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")
    headers["Content-Length"] = declared

    answer = await webhooks_for(kit).ingest("my-shop", headers, raw)

    assert (answer.status, answer.body["status"]) == (200, "accepted")


async def test_ingest_stream_answers_400_when_the_stream_breaks_off(kit: Kit) -> None:
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")

    async def body() -> AsyncIterator[bytes]:
        yield raw[:100]
        raise ConnectionResetError("the sender went away")

    answer = await webhooks_for(kit).ingest_stream("my-shop", headers, body())

    assert (answer.status, answer.body) == (400, {"error": "unreadable_body"})
    assert await kit.outbox.storage.get(KEY) is None


async def test_ingest_never_raises_for_headers_it_cannot_read(kit: Kit) -> None:
    answer = await webhooks_for(kit).ingest("my-shop", [("only-a-name",)], b"{}")  # type: ignore[list-item]

    assert (answer.status, answer.body) == (500, {"error": "internal_error"})


async def test_from_config_serves_every_source_of_the_file(kit: Kit) -> None:
    config = parse_config(
        f"""
        [[sources]]
        name = "my-shop"
        adapter = "shopify"
        shop_domain = "{SHOP}"
        webhook_secrets = [{{ env = "SHOPIFY_WEBHOOK_SECRET" }}]
        channel_id = "{CHANNEL}"

        [[sources.triggers]]
        on = "order_fulfilled"
        event_type = "order_shipped"
        delay = "3d"

        [[sources]]
        name = "outlet"
        adapter = "shopify"
        shop_domain = "outlet.myshopify.com"
        webhook_secrets = ["shpss_outlet"]
        channel_id = "{CHANNEL}"
        """,
        environ={"SHOPIFY_WEBHOOK_SECRET": SECRET},
    )
    webhooks = Webhooks.from_config(kit.intake, config, WebhookSettings(path_prefix="/hooks"))
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1")

    assert webhooks.sources == ("my-shop", "outlet")
    assert webhooks.route("outlet") == "/hooks/outlet"
    assert (await webhooks.ingest("my-shop", headers, raw)).status == 200
    assert (await webhooks.ingest("outlet", headers, raw)).status == 401


def test_two_sources_of_one_name_are_refused(kit: Kit) -> None:
    with pytest.raises(ConfigError, match="my-shop"):
        Webhooks(kit.intake, [shop_source(), shop_source()])


@pytest.mark.parametrize(
    "settings",
    [
        {"max_body_bytes": 0},
        {"max_body_bytes": -1},
        {"max_body_bytes": True},
        {"max_body_bytes": "2097152"},
        {"retry_after": 0},
        {"path_prefix": "webhooks"},
        {"path_prefix": "/webhooks/"},
        {"path_prefix": "/{source}"},
        {"path_prefix": "/web hooks"},
        {"path_prefix": "//"},
    ],
)
def test_settings_refuse_what_would_break_the_routes_or_the_cap(
    settings: dict[str, object],
) -> None:
    (name,) = settings
    with pytest.raises(ConfigError, match=name):
        WebhookSettings(**settings)  # type: ignore[arg-type]


def test_settings_defaults() -> None:
    settings = WebhookSettings()
    assert (settings.max_body_bytes, settings.path_prefix) == (2 * 1024 * 1024, "/webhooks")
    assert WebhookSettings(path_prefix="").route("my-shop") == "/my-shop"


async def test_a_refusal_is_logged_at_warning(kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    headers, raw = delivery(fulfilled_order(), "orders/fulfilled", "w-1", secret="wrong")

    await webhooks_for(kit).ingest("my-shop", headers, raw)

    assert [r.levelno for r in caplog.records if getattr(r, "action", "") == "webhook.refused"] == [
        logging.WARNING
    ]


class _Grumpy:
    """A third-party adapter whose verification reason is a sentence, not a word."""

    platform = "grumpy"
    account = "grumpy-account"

    def verify(self, headers: Mapping[str, str], raw_body: bytes, secrets: Sequence[str]) -> None:
        raise VerificationError("Signature mismatch for key sk_live_123!", "no match")

    def identify(self, headers: Mapping[str, str], raw_body: bytes) -> DeliveryIdentity:
        raise AssertionError("not verified")

    def parse(self, headers: Mapping[str, str], raw_body: bytes, *, received_at: datetime) -> Skip:
        raise AssertionError("not verified")


async def test_a_verification_reason_that_is_not_a_word_is_not_shown(kit: Kit) -> None:
    """The sender sees a fixed word; whatever an adapter put in its reason stays in the log."""
    grumpy = IntakeSource(name="grumpy", adapter=_Grumpy(), policy=shop_source().policy)

    answer = await Webhooks(kit.intake, [grumpy]).ingest("grumpy", {}, b"{}")

    assert (answer.status, answer.body) == (401, {"error": "verification_failed"})
