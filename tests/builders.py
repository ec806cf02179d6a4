"""The event bodies and constants every test builds on: one builder, one set of defaults.

``event("o-1")`` is the smallest valid event for the sandbox's first seeded channel; keyword
arguments add what a test needs (a first name to forget, products, another channel or type).
``order(i)`` is the i-th order of a batch: reference ``order-i``, customer ``buyer{i}@example.com``.
"""

from __future__ import annotations

import copy
from typing import Any

from kit.sandbox import SEEDED_CHANNEL_IDS

CHANNEL = SEEDED_CHANNEL_IDS[0]
OTHER_CHANNEL = SEEDED_CHANNEL_IDS[1]
EVENT_TYPE = "order_shipped"
T0 = 1_700_000_000.0  # a fixed "now" for injected clocks


def event(
    ref: str = "order-1",
    *,
    email: str | None = None,
    type_: str = EVENT_TYPE,
    channel: str = CHANNEL,
    channel_type: str | None = None,
    first_name: str | None = None,
    date: str | None = None,
    products: list[dict[str, str]] | None = None,
    system: str = "my-shop",
    system_version: str = "1.0",
    **extra: Any,
) -> dict[str, Any]:
    """A valid event body; the customer is ``{ref}@example.com`` unless ``email`` says otherwise."""
    customer: dict[str, Any] = {"email": email or f"{ref}@example.com"}
    if first_name is not None:
        customer["firstName"] = first_name
    channel_ref: dict[str, Any] = {"id": channel}
    if channel_type is not None:
        channel_ref["type"] = channel_type
    transaction: dict[str, Any] = {"reference": ref}
    if date is not None:
        transaction["date"] = date
    body: dict[str, Any] = {
        "type": type_,
        "customer": customer,
        "channel": channel_ref,
        "transaction": transaction,
    }
    if products is not None:
        body["products"] = products
    body.update(system=system, systemVersion=system_version, **extra)
    return copy.deepcopy(body)  # a test may change its body without touching shared values


def order(i: int, **kw: Any) -> dict[str, Any]:
    """The i-th order of a batch: reference ``order-i`` for ``buyer{i}@example.com``."""
    kw.setdefault("email", f"buyer{i}@example.com")
    return event(f"order-{i}", **kw)


def key(ref: str, type_: str = EVENT_TYPE, channel: str = CHANNEL) -> str:
    """The outbox key the kit derives for an event without a custom key."""
    return f"{channel}:{type_}:{ref}"
