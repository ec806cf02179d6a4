"""Each exclusion of the trigger policy, through the intake: the journal names its reason and
the rule that matched, and the outbox holds no entry (or one without the excluded products).

Test orders are in ``test_ingest.py``; the rules' edge cases in ``tests/policy``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kit.domain import SkipReason
from kit.outbox.types import State
from kit.policy import Enqueue, Exclusions, Skipped

from .conftest import Kit, decided, deliver, history, outcomes, skus
from .deliveries import GIFT_CARD_LINE, KEY, fulfilled_order

Change = Callable[[dict[str, Any]], None]


def no_email(order: dict[str, Any]) -> None:
    order["email"] = order["contact_email"] = order["customer"]["email"] = None


def gift_cards_only(order: dict[str, Any]) -> None:
    order["line_items"] = [li for li in order["line_items"] if li["id"] == GIFT_CARD_LINE]


def setting(key: str, value: Any) -> Change:
    return lambda order: order.update({key: value})


def customer_tags(value: str) -> Change:
    return lambda order: order["customer"].update(tags=value)


def unchanged(order: dict[str, Any]) -> None:
    pass


CASES = [
    pytest.param({}, no_email, SkipReason.NO_EMAIL, None, id="no-email"),
    pytest.param({}, gift_cards_only, SkipReason.GIFT_CARD_ONLY, None, id="gift-card-only"),
    pytest.param(
        {"order_tags": ["wholesale"]},
        setting("tags", "VIP, Wholesale"),
        SkipReason.EXCLUDED_ORDER_TAG,
        "tag 'Wholesale'",
        id="order-tag",
    ),
    pytest.param(
        {"customer_tags": ["Staff"]},
        customer_tags("staff, newsletter"),
        SkipReason.EXCLUDED_CUSTOMER_TAG,
        "customer tag 'staff'",
        id="customer-tag",
    ),
    pytest.param(
        {"skus": ["sock-mer-3942-gr", "HAT-MER-GR"]},
        unchanged,
        SkipReason.EXCLUDED_PRODUCT,
        "every product is excluded",
        id="skus",
    ),
    pytest.param(
        {"product_ids": ["8800001", "8800003"]},
        unchanged,
        SkipReason.EXCLUDED_PRODUCT,
        "every product is excluded",
        id="product-ids",
    ),
    pytest.param(
        {"countries": ["de"]}, unchanged, SkipReason.EXCLUDED_COUNTRY, "country 'DE'", id="country"
    ),
    pytest.param(
        {"minimum_total": "60.00"},
        unchanged,
        SkipReason.BELOW_MINIMUM_TOTAL,
        "total below 60.00",
        id="minimum-total",
    ),
    pytest.param(
        {"sales_channels": ["shopify_draft_order"]},
        setting("source_name", "shopify_draft_order"),
        SkipReason.EXCLUDED_SALES_CHANNEL,
        "sales channel 'shopify_draft_order'",
        id="sales-channel",
    ),
    pytest.param(
        {"point_of_sale": True},
        setting("source_name", "pos"),
        SkipReason.POINT_OF_SALE,
        None,
        id="point-of-sale",
    ),
    pytest.param(
        {"email_blocklist": ["*@EXAMPLE.org"]},
        unchanged,
        SkipReason.BLOCKED_EMAIL,
        "pattern '*@example.org'",
        id="blocklist-domain",
    ),
    pytest.param(
        {"email_blocklist": ["nobody@example.com", "erika.*@*"]},
        unchanged,
        SkipReason.BLOCKED_EMAIL,
        "pattern 'erika.*@*'",
        id="blocklist-wildcard",
    ),
]


@pytest.mark.parametrize(("exclusions", "change", "reason", "detail"), CASES)
async def test_each_exclusion_is_journaled_with_its_reason_and_enqueues_nothing(
    kit: Kit,
    exclusions: dict[str, Any],
    change: Change,
    reason: SkipReason,
    detail: str | None,
) -> None:
    """The delivery is accepted, the journal says which rule skipped the invite (never the
    customer's data), and the outbox has no entry under the order's key."""
    order = fulfilled_order()
    change(order)
    policy = {"exclusions": Exclusions(**exclusions)}

    result = await deliver(kit, order, "orders/fulfilled", "w-1", policy=policy)

    assert decided(result) == [("skipped", "recorded")]
    (journaled,) = result.decisions
    assert journaled.decision == Skipped(key=KEY, reason=reason, detail=detail)
    assert await kit.storage.get(KEY) is None
    found = await history(kit)
    assert outcomes(found) == [("skipped", "recorded")]
    assert found.decisions[0].key == KEY
    assert found.decisions[0].decision == journaled.decision


@pytest.mark.parametrize(
    ("exclusions", "change"),
    [
        pytest.param({"test_orders": False}, setting("test", True), id="test-orders-off"),
        pytest.param({"gift_card_only": False}, gift_cards_only, id="gift-card-only-off"),
        pytest.param({"order_tags": ["wholesale"]}, setting("tags", "retail"), id="other-tag"),
        pytest.param({"minimum_total": "59.80"}, unchanged, id="total-at-the-minimum"),
        pytest.param({"email_blocklist": ["*@example.com"]}, unchanged, id="other-domain"),
        pytest.param({"countries": ["AT"]}, unchanged, id="other-country"),
    ],
)
async def test_an_exclusion_that_does_not_apply_lets_the_invite_through(
    kit: Kit, exclusions: dict[str, Any], change: Change
) -> None:
    order = fulfilled_order()
    change(order)

    result = await deliver(
        kit, order, "orders/fulfilled", "w-1", policy={"exclusions": Exclusions(**exclusions)}
    )

    assert decided(result) == [("enqueue", "enqueued")]
    assert (await kit.outbox.get(KEY)).state is State.PENDING


async def test_an_excluded_product_is_left_out_of_the_invite(kit: Kit) -> None:
    """Excluding one of two products keeps the invite, about the other one only."""
    policy = {"exclusions": Exclusions(skus=["SOCK-MER-3942-GR"])}
    result = await deliver(kit, fulfilled_order(), "orders/fulfilled", "w-1", policy=policy)

    assert decided(result) == [("enqueue", "enqueued")]
    (journaled,) = result.decisions
    assert isinstance(journaled.decision, Enqueue)
    assert [p.sku for p in journaled.decision.facts.products] == ["HAT-MER-GR"]
    assert skus((await kit.outbox.get(KEY)).body()) == ["HAT-MER-GR"]
    assert outcomes(await history(kit)) == [("enqueue", "enqueued")]
