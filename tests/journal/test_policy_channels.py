"""The channel of an invite, through the intake: per locale, then per language, then the
source's ``channel_id``; without any, the order is skipped with ``no_channel``."""

from __future__ import annotations

from typing import Any

import pytest

from kit.domain import SkipReason
from kit.policy import Enqueue, Skipped

from .conftest import Kit, decided, deliver, history, outcomes
from .deliveries import KEY, fulfilled_order

CHANNEL_DE = "chl-00000000-0000-4000-8000-0000000000de"
CHANNEL_FR = "chl-00000000-0000-4000-8000-0000000000f2"
CHANNEL_EN = "chl-00000000-0000-4000-8000-0000000000e1"
BY_LOCALE = {"de": CHANNEL_DE, "fr_FR": CHANNEL_FR}


def in_locale(locale: str | None) -> dict[str, Any]:
    order = fulfilled_order()
    if locale is None:
        order.pop("customer_locale")
    else:
        order["customer_locale"] = locale
    return order


@pytest.mark.parametrize(
    ("locale", "channel"),
    [
        pytest.param("de", CHANNEL_DE, id="language"),
        pytest.param("de-CH", CHANNEL_DE, id="regional-language"),
        pytest.param("fr-FR", CHANNEL_FR, id="locale"),
        pytest.param("en", CHANNEL_EN, id="unlisted"),
        pytest.param("tlh", CHANNEL_EN, id="unknown"),
        pytest.param(None, CHANNEL_EN, id="none"),
    ],
)
async def test_the_channel_follows_the_orders_locale(
    kit: Kit, locale: str | None, channel: str
) -> None:
    policy = {"channel_id": CHANNEL_EN, "channels_by_locale": BY_LOCALE}
    result = await deliver(kit, in_locale(locale), "orders/fulfilled", "w-1", policy=policy)

    assert decided(result) == [("enqueue", "enqueued")]
    (journaled,) = result.decisions
    assert isinstance(journaled.decision, Enqueue)
    assert journaled.decision.channel_id == channel
    body = (await kit.outbox.get(KEY)).body()
    assert body is not None
    assert body["channel"] == {"id": channel, "type": "etrusted"}
    assert outcomes(await history(kit)) == [("enqueue", "enqueued")]


async def test_without_a_channel_for_the_locale_the_order_is_skipped(kit: Kit) -> None:
    policy = {"channel_id": None, "channels_by_locale": BY_LOCALE}
    result = await deliver(kit, in_locale("en"), "orders/fulfilled", "w-1", policy=policy)

    assert decided(result) == [("skipped", "recorded")]
    assert result.decisions[0].decision == Skipped(
        key=KEY, reason=SkipReason.NO_CHANNEL, detail="no channel for locale 'en_GB'"
    )
    assert await kit.storage.get(KEY) is None
    assert outcomes(await history(kit)) == [("skipped", "recorded")]
