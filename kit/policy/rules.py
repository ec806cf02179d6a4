"""The policy's single-fact rules: exclusions, consent, channel, delay, products.

Each rule looks at the order's current facts only; the engine decides what a rule's answer
means for an entry that does or does not exist yet. Reasons come from the one
:class:`~kit.domain.SkipReason` enum, and a detail names the rule that matched (a tag, a SKU,
a pattern), never the customer's data.
"""

from __future__ import annotations

from datetime import timedelta
from fnmatch import fnmatchcase

from kit.domain import Consent, LineItem, OrderFacts, Refund, Skip, SkipReason
from kit.mapping import purchased_lines, reviewable_lines
from kit.policy.config import ConsentMode, Exclusions, PolicyConfig, Trigger
from kit.validation import is_email


def _matching(names: tuple[str, ...], excluded: frozenset[str]) -> str | None:
    return next((name for name in names if name.strip().casefold() in excluded), None)


def _excluded_line(line: LineItem, rules: Exclusions) -> bool:
    sku = (line.sku or "").casefold()
    product = (line.product_id or "").casefold()
    return bool(sku and sku in rules.skus) or bool(product and product in rules.product_ids)


def exclusion(config: PolicyConfig, order: OrderFacts, refunds: tuple[Refund, ...]) -> Skip | None:
    """The first exclusion that applies to ``order``, in a fixed order, or ``None``."""
    rules = config.exclusions
    if rules.test_orders and order.test:
        return Skip(SkipReason.TEST_ORDER)
    if not order.email:
        return Skip(SkipReason.NO_EMAIL)
    if not is_email(order.email):
        return Skip(SkipReason.INVALID_EMAIL)
    address = order.email.casefold()
    pattern = next((p for p in rules.email_blocklist if fnmatchcase(address, p)), None)
    if pattern is not None:
        return Skip(SkipReason.BLOCKED_EMAIL, f"pattern {pattern!r}")
    consent = _consent(config.consent, order.consent)
    if consent is not None:
        return consent
    if rules.point_of_sale and order.point_of_sale:
        return Skip(SkipReason.POINT_OF_SALE)
    channel = (order.sales_channel or "").casefold()
    if channel and channel in rules.sales_channels:
        return Skip(SkipReason.EXCLUDED_SALES_CHANNEL, f"sales channel {order.sales_channel!r}")
    tag = _matching(order.tags, rules.order_tags)
    if tag is not None:
        return Skip(SkipReason.EXCLUDED_ORDER_TAG, f"tag {tag!r}")
    tag = _matching(order.customer_tags, rules.customer_tags)
    if tag is not None:
        return Skip(SkipReason.EXCLUDED_CUSTOMER_TAG, f"customer tag {tag!r}")
    if order.shipping_country and order.shipping_country.upper() in rules.countries:
        return Skip(SkipReason.EXCLUDED_COUNTRY, f"country {order.shipping_country!r}")
    if (
        rules.minimum_total is not None
        and order.total is not None
        and order.total < rules.minimum_total
    ):
        return Skip(SkipReason.BELOW_MINIMUM_TOTAL, f"total below {rules.minimum_total}")
    bought = purchased_lines(order, refunds)
    if bought and all(line.gift_card for line in bought):
        if any(line.quantity > 0 and not line.gift_card for line in order.lines):
            # Goods were bought and all of them refunded since: that is the reason, whether or
            # not an order of gift cards alone would be invited.
            return Skip(SkipReason.REFUNDED, "every product was refunded; gift cards are left")
        if rules.gift_card_only:
            return Skip(SkipReason.GIFT_CARD_ONLY)
    goods = [line for line in bought if not line.gift_card]
    if goods and all(_excluded_line(line, rules) for line in goods):
        return Skip(SkipReason.EXCLUDED_PRODUCT, "every product is excluded")
    return None


def _consent(mode: ConsentMode, consent: Consent) -> Skip | None:
    if mode is ConsentMode.UNLESS_OPTED_OUT and consent is Consent.OPTED_OUT:
        return Skip(SkipReason.OPTED_OUT)
    if mode is ConsentMode.OPTED_IN_ONLY and consent is not Consent.OPTED_IN:
        return Skip(SkipReason.NO_CONSENT, f"marketing consent {consent.value!r}")
    return None


def products(
    config: PolicyConfig, order: OrderFacts, refunds: tuple[Refund, ...]
) -> tuple[LineItem, ...]:
    """The lines an invite is about: reviewable, not refunded, not excluded."""
    return tuple(
        line
        for line in reviewable_lines(order, refunds)
        if not _excluded_line(line, config.exclusions)
    )


def channel(config: PolicyConfig, order: OrderFacts) -> str | None:
    """The channel for the order's locale, then for its language, then the source's."""
    by_locale = dict(config.channels_by_locale)
    if order.locale:
        language = order.locale.split("_", 1)[0]
        found = by_locale.get(order.locale) or by_locale.get(language)
        if found:
            return found
    return config.channel_id


def delay(config: PolicyConfig, trigger: Trigger, order: OrderFacts) -> timedelta:
    """The hold-back for the order's segment: point of sale, then international, else default."""
    if order.point_of_sale and trigger.delay_pos is not None:
        return trigger.delay_pos
    country = (order.shipping_country or "").upper()
    abroad = bool(config.home_countries) and bool(country) and country not in config.home_countries
    if abroad and trigger.delay_international is not None:
        return trigger.delay_international
    return trigger.delay


__all__ = ["channel", "delay", "exclusion", "products"]
