"""A Stripe invoice, in either API shape, as the kit's order facts.

API version ``2025-03-31.basil`` moved the subscription from ``invoice.subscription`` to
``invoice.parent.subscription_details.subscription``, and a line's price from ``line.price``
(or ``line.plan``) to ``line.pricing.price_details``; a delivery is rendered in the version its
endpoint was created with, so both are read, the newer first. Proration lines (a plan change
mid-period) are left out: they are adjustments, not what the customer subscribed to.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from adapters.stripe._json import Obj
from adapters.stripe.config import StripeConfig
from kit.domain import LineItem, OrderFacts
from kit.errors import PayloadError

# Currencies Stripe counts in whole units (docs.stripe.com/currencies#zero-decimal).
_ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA",
        "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
# Currencies Stripe counts in thousandths (docs.stripe.com/currencies#three-decimal).
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def subscription_id(invoice: Obj) -> str | None:
    """The subscription the invoice bills, in the basil shape or the one before it."""
    parent = invoice.node("parent")
    details = parent.node("subscription_details") if parent is not None else None
    if details is not None:
        return details.ident("subscription")
    return invoice.ident("subscription")


def payment_ids(invoice: Obj) -> tuple[str, ...]:
    """The ids of the charge and payment intent that paid the invoice, which a refund or a
    dispute names instead of the invoice: ``charge`` and ``payment_intent`` before basil; from
    basil on, those of each of ``payments`` (an includable field: the invoice carries it only
    when the endpoint includes it)."""
    found = [invoice.ident("charge"), invoice.ident("payment_intent")]
    for each in invoice.items("payments"):
        payment = each.node("payment")
        if payment is not None:
            found += [payment.ident("charge"), payment.ident("payment_intent")]
    return tuple(dict.fromkeys(i for i in found if i))


def _price(line: Obj) -> tuple[str | None, str | None]:
    """The line's (product id, price id)."""
    pricing = line.node("pricing")
    details = pricing.node("price_details") if pricing is not None else None
    if details is not None:
        return details.ident("product"), details.ident("price")
    for key in ("price", "plan"):  # before basil: the price object (or the older plan)
        price = line.node(key)
        if price is not None:
            return price.ident("product"), price.text("id")
    return None, None


def _proration(line: Obj) -> bool:
    if line.flag("proration"):  # before basil
        return True
    parent = line.node("parent")
    if parent is None:
        return False
    details = parent.node("subscription_item_details") or parent.node("invoice_item_details")
    return details is not None and details.flag("proration")


def _line(line: Obj, config: StripeConfig) -> LineItem:
    product_id, price_id = _price(line)
    url = None
    if config.product_url is not None and product_id is not None:
        url = config.product_url.format(product_id=product_id, price_id=price_id or "")
    return LineItem(
        line_id=line.required_text("id"),
        name=line.text("description") or product_id or line.required_text("id"),
        quantity=line.integer("quantity") or 1,
        product_id=product_id,
        variant_id=price_id,
        sku=product_id,
        url=url,
    )


def split_name(full: str | None) -> tuple[str | None, str | None]:
    """Stripe keeps one name: the last word is the last name, the rest the first name."""
    if not full:
        return None, None
    first, _, last = full.rpartition(" ")
    return first.strip() or None, last


def money(amount: int | None, currency: str | None) -> Decimal | None:
    """An amount in the currency's smallest unit as a decimal of the currency."""
    if amount is None or currency is None:
        return None
    if currency.upper() in _ZERO_DECIMAL:
        return Decimal(amount)
    if currency.upper() in _THREE_DECIMAL:
        return Decimal(amount).scaleb(-3)
    return Decimal(amount).scaleb(-2)


def paid_at(invoice: Obj) -> datetime | None:
    transitions = invoice.node("status_transitions")
    return transitions.unix_time("paid_at") if transitions is not None else None


def order_facts(
    invoice: Obj, config: StripeConfig, *, livemode: bool, updated_at: datetime | None
) -> OrderFacts:
    """The invoice's customer, lines and amounts; ``test`` for a test-mode event."""
    placed_at = paid_at(invoice) or invoice.unix_time("created")
    if placed_at is None:
        placed_at = updated_at
    if placed_at is None:
        raise PayloadError(f"{invoice.path}: no paid_at or created time")
    first, last = split_name(invoice.text("customer_name"))
    currency = invoice.text("currency")
    address = invoice.node("customer_address")
    shipping = invoice.node("customer_shipping")
    shipped_to = shipping.node("address") if shipping is not None else None
    country = next(
        (a.text("country") for a in (shipped_to, address) if a is not None and a.text("country")),
        None,
    )
    return OrderFacts(
        reference=invoice.text("number") or invoice.required_text("id"),
        placed_at=placed_at,
        updated_at=updated_at,
        email=invoice.text("customer_email"),
        first_name=first,
        last_name=last,
        customer_id=invoice.ident("customer"),
        lines=tuple(_line(line, config) for line in invoice.items("lines") if not _proration(line)),
        total=money(invoice.integer("amount_paid"), currency),
        currency=currency.upper() if currency else None,
        shipping_country=country.upper() if country else None,
        test=not livemode,
    )


__all__ = ["money", "order_facts", "paid_at", "payment_ids", "split_name", "subscription_id"]
