"""How one subscription renewal is named, whichever platform reports it.

A renewal charged by a subscription app on Shopify (Recharge; Shopify's own subscription
contracts) creates an ordinary Shopify order, so the renewal reaches the kit twice: from the
app (``charge/paid``; ``subscription_billing_attempts/success``) and from the shop's order
webhooks. Both must land on ONE outbox key, or the customer is asked twice.

The rule: a renewal that created a Shopify order is named by that order. Its event's
``platform`` is ``shopify``, its ``account`` the shop domain and its ``stream`` the order's
numeric id (:func:`shopify_order_stream`), so the policy's key
``shopify:{shop}:{order id}:{event type}`` is the same from either adapter, whichever arrives
first and whether both feed one source or two. The Shopify order adapter recognises such an
order (:func:`is_renewal_order`) and reports the renewal too, so a shop that only forwards its
order webhooks still sees renewals.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SHOPIFY = "shopify"
"""The platform name that leads the key of a Shopify order (the Shopify adapter's name)."""

RECURRING_ORDER_TAGS = ("Subscription Recurring Order",)
"""The tag Recharge puts on each Shopify order it creates for a recurring charge (the first
order is tagged ``Subscription First Order`` instead)."""

PREPAID_TAG = "Prepaid"
"""Recharge's tag on the later shipments of a prepaid subscription: orders without a charge of
their own, so never a renewal (the charge's own order carries no such tag)."""

CONTRACT_SOURCE_NAMES = ("subscription_contract", "subscription_contract_checkout_one")
"""Shopify's ``source_name`` of an order created by a subscription contract's billing attempt.
Shopify renamed it once without notice (platforms.md §4), hence a list a source can extend."""


def is_renewal_order(
    tags: Iterable[str],
    source_name: str | None,
    *,
    renewal_tags: Iterable[str] = RECURRING_ORDER_TAGS,
    source_names: Iterable[str] = CONTRACT_SOURCE_NAMES,
) -> bool:
    """Whether a Shopify order is a subscription renewal's order, by its tags or its
    ``source_name``; tags and names compare without case."""
    have = {tag.strip().casefold() for tag in tags}
    if have:  # most orders have no tags: nothing to compare them with
        if PREPAID_TAG.casefold() in have:
            return False
        if have & {tag.strip().casefold() for tag in renewal_tags}:
            return True
    if source_name is None:
        return False
    return source_name.strip().casefold() in {name.strip().casefold() for name in source_names}


_GID = re.compile(r"gid://shopify/Order/(\d+)\Z")
_DIGITS = re.compile(r"\d+\Z")


def shopify_order_stream(value: str) -> str | None:
    """The stream of a Shopify order from its numeric id or GraphQL id
    (``gid://shopify/Order/42`` -> ``42``); ``None`` for anything else."""
    text = value.strip()
    if _DIGITS.match(text):
        return text
    match = _GID.match(text)
    return match.group(1) if match else None


__all__ = [
    "CONTRACT_SOURCE_NAMES",
    "PREPAID_TAG",
    "RECURRING_ORDER_TAGS",
    "SHOPIFY",
    "is_renewal_order",
    "shopify_order_stream",
]
