"""The three consent modes, through the intake, read from Shopify's e-mail marketing consent:
``all`` invites every order, ``unless_opted_out`` leaves out customers who withdrew their
consent, ``opted_in_only`` invites only customers who gave it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from kit.domain import SkipReason
from kit.outbox.types import State
from kit.policy import Cancel, Skipped

from .conftest import Kit, decided, deliver, history, outcomes
from .deliveries import KEY, SHIPPED_AT, fulfilled_order, updated


def with_consent(state: str | None) -> dict[str, Any]:
    """The fixture order; its customer ``subscribed``, ``unsubscribed`` or never asked."""
    order = fulfilled_order()
    if state is not None:
        order["customer"]["email_marketing_consent"] = {"state": state, "opt_in_level": None}
    return order


@pytest.mark.parametrize(
    ("mode", "state", "skipped"),
    [
        pytest.param("all", "unsubscribed", None, id="all-opted-out"),
        pytest.param("all", None, None, id="all-unknown"),
        pytest.param(
            "unless_opted_out", "unsubscribed", (SkipReason.OPTED_OUT, None), id="uoo-out"
        ),
        pytest.param("unless_opted_out", None, None, id="uoo-unknown"),
        pytest.param("unless_opted_out", "subscribed", None, id="uoo-in"),
        pytest.param(
            "opted_in_only",
            None,
            (SkipReason.NO_CONSENT, "marketing consent 'unknown'"),
            id="oio-unknown",
        ),
        pytest.param(
            "opted_in_only",
            "unsubscribed",
            (SkipReason.NO_CONSENT, "marketing consent 'opted_out'"),
            id="oio-out",
        ),
        pytest.param("opted_in_only", "subscribed", None, id="oio-in"),
    ],
)
async def test_the_consent_mode_decides_whose_orders_become_invites(
    kit: Kit, mode: str, state: str | None, skipped: tuple[SkipReason, str | None] | None
) -> None:
    result = await deliver(
        kit, with_consent(state), "orders/fulfilled", "w-1", policy={"consent": mode}
    )

    found = await history(kit)
    if skipped is None:
        assert decided(result) == [("enqueue", "enqueued")]
        assert (await kit.outbox.get(KEY)).state is State.PENDING
        assert outcomes(found) == [("enqueue", "enqueued")]
    else:
        reason, detail = skipped
        assert decided(result) == [("skipped", "recorded")]
        assert result.decisions[0].decision == Skipped(key=KEY, reason=reason, detail=detail)
        assert await kit.storage.get(KEY) is None
        assert outcomes(found) == [("skipped", "recorded")]


async def test_consent_withdrawn_while_the_invite_waits_withdraws_the_invite(kit: Kit) -> None:
    """Under ``unless_opted_out`` a later snapshot saying "unsubscribed" cancels the waiting
    entry with the reason ``opted_out``."""
    policy = {"consent": "unless_opted_out"}
    await deliver(kit, with_consent("subscribed"), "orders/fulfilled", "w-1", policy=policy)
    withdrawn = updated(with_consent("unsubscribed"), SHIPPED_AT + timedelta(hours=5))

    result = await deliver(kit, withdrawn, "orders/updated", "w-2", policy=policy)

    assert decided(result) == [("cancel", "cancelled")]
    assert result.decisions[0].decision == Cancel(key=KEY, reason=SkipReason.OPTED_OUT)
    assert (await kit.outbox.get(KEY)).state is State.CANCELLED
    found = await history(kit)
    assert outcomes(found) == [("enqueue", "enqueued"), ("cancel", "cancelled")]
    assert found.waiting == frozenset()
