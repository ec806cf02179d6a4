"""Synthetic Stripe events and signed deliveries, for tests, demos and adapter authors.

The basil sample is platforms.md §5.5's fixture; the legacy one is the same invoice as API
versions before ``2025-03-31.basil`` render it (``invoice.subscription``, ``line.price``).
Every id, name and address is made up.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Literal

from adapters.stripe.signature import sign

BASIL = "2025-03-31.basil"
LEGACY = "2024-06-20"
Shape = Literal["basil", "legacy"]

_BASIL_EVENT: dict[str, Any] = {
    "id": "evt_1KitDemo000000000000001",
    "object": "event",
    "api_version": BASIL,
    "created": 1741600000,
    "livemode": True,
    "type": "invoice.paid",
    "request": {"id": None, "idempotency_key": None},
    "data": {
        "object": {
            "id": "in_1KitDemo00000000000000A1",
            "object": "invoice",
            "number": "KITDEMO-0007",
            "billing_reason": "subscription_cycle",
            "status": "paid",
            "currency": "eur",
            "amount_paid": 1990,
            "customer": "cus_KitDemo0000001",
            "customer_email": "max.beispiel@example.org",
            "customer_name": "Max Beispiel",
            "customer_phone": None,
            "customer_address": {
                "line1": "Musterstr. 1",
                "postal_code": "10115",
                "city": "Berlin",
                "country": "DE",
            },
            "status_transitions": {"paid_at": 1741599990},
            "period_start": 1738920000,
            "period_end": 1741339200,
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": "sub_KitDemo0000001", "metadata": {}},
            },
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": "il_KitDemo01",
                        "description": "1 × Kaffee-Abo (at €19.90 / month)",  # noqa: RUF001 - as Stripe writes it
                        "amount": 1990,
                        "quantity": 1,
                        "period": {"start": 1741339200, "end": 1744017600},
                        "pricing": {
                            "type": "price_details",
                            "price_details": {
                                "price": "price_KitDemoMonthly",
                                "product": "prod_KitDemoCoffee",
                            },
                        },
                        "parent": {
                            "type": "subscription_item_details",
                            "subscription_item_details": {
                                "subscription": "sub_KitDemo0000001",
                                "proration": False,
                            },
                        },
                    }
                ],
            },
        }
    },
}


def invoice_paid(
    shape: Shape = "basil",
    *,
    event_id: str | None = None,
    invoice_id: str | None = None,
    number: str | None = None,
    billing_reason: str = "subscription_cycle",
    subscription: str = "sub_KitDemo0000001",
    email: str | None = "max.beispiel@example.org",
    customer: str = "cus_KitDemo0000001",
    paid_at: int = 1741599990,
    amount_paid: int = 1990,
    livemode: bool = True,
    payment_intent: str | None = None,
) -> dict[str, Any]:
    """An ``invoice.paid`` event in either API shape (the fixture's values by default).

    With ``payment_intent``, the invoice names its payment: the legacy shape its ``charge``
    (``ch_for_{invoice id}``) and ``payment_intent``; the basil shape its included
    ``payments``, which name the payment intent alone (as Stripe does when there is one)."""
    event = copy.deepcopy(_BASIL_EVENT)
    invoice = event["data"]["object"]
    event["id"] = event_id or event["id"]
    event["created"] = paid_at + 10
    event["livemode"] = livemode
    invoice["id"] = invoice_id or invoice["id"]
    invoice["number"] = number or invoice["number"]
    invoice["billing_reason"] = billing_reason
    invoice["customer_email"] = email
    invoice["customer"] = customer
    invoice["status_transitions"]["paid_at"] = paid_at
    invoice["amount_paid"] = amount_paid
    invoice["parent"]["subscription_details"]["subscription"] = subscription
    for line in invoice["lines"]["data"]:
        line["parent"]["subscription_item_details"]["subscription"] = subscription
    if shape == "legacy":
        event["api_version"] = LEGACY
        del invoice["parent"]
        invoice["subscription"] = subscription
        for line in invoice["lines"]["data"]:
            details = line.pop("pricing")["price_details"]
            line.pop("parent")
            line["proration"] = False
            line["subscription"] = subscription
            line["price"] = {
                "id": details["price"],
                "object": "price",
                "product": details["product"],
                "recurring": {"interval": "month", "interval_count": 1},
            }
        if payment_intent is not None:
            invoice["charge"] = f"ch_for_{invoice['id']}"
            invoice["payment_intent"] = payment_intent
    elif payment_intent is not None:
        invoice["payments"] = {
            "object": "list",
            "data": [
                {
                    "id": f"inpay_for_{invoice['id']}",
                    "object": "invoice_payment",
                    "status": "paid",
                    "payment": {"type": "payment_intent", "payment_intent": payment_intent},
                }
            ],
        }
    return event


def charge_refunded(
    invoice_id: str,
    *,
    event_id: str,
    created: int,
    full: bool = True,
    shape: Shape = "legacy",
    payment_intent: str | None = None,
) -> dict[str, Any]:
    """A ``charge.refunded`` event of the charge ``ch_for_{invoice_id}`` that paid the
    invoice; only the legacy shape names the invoice (basil removed ``charge.invoice``)."""
    event: dict[str, Any] = {
        "id": event_id,
        "object": "event",
        "api_version": LEGACY,
        "created": created,
        "livemode": True,
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": f"ch_for_{invoice_id}",
                "object": "charge",
                "amount": 1990,
                "amount_refunded": 1990 if full else 500,
                "refunded": full,
                "invoice": invoice_id,
                "payment_intent": payment_intent,
                "created": created - 100,
            }
        },
    }
    if shape == "basil":
        event["api_version"] = BASIL
        del event["data"]["object"]["invoice"]
    return event


def credit_note_created(
    invoice_id: str,
    line_ids: list[str],
    *,
    event_id: str,
    created: int,
    quantity: int | None = 1,
    amount: int = 1990,
) -> dict[str, Any]:
    """A ``credit_note.created`` event crediting ``quantity`` units (``amount``) of each of
    ``line_ids`` of ``invoice_id``; ``quantity=None`` is a credit by amount alone, whose line
    Stripe sends without a quantity."""
    return {
        "id": event_id,
        "object": "event",
        "api_version": BASIL,
        "created": created,
        "livemode": True,
        "type": "credit_note.created",
        "data": {
            "object": {
                "id": f"cn_for_{invoice_id}",
                "object": "credit_note",
                "invoice": invoice_id,
                "created": created,
                "lines": {
                    "object": "list",
                    "data": [
                        {"id": f"cnli_{i}", "type": "invoice_line_item", "invoice_line_item": i,
                         "quantity": quantity, "amount": amount}
                        for i in line_ids
                    ],
                },
            }
        },
    }  # fmt: skip


def dispute_created(
    *,
    event_id: str,
    created: int,
    invoice_id: str | None = None,
    charge_id: str = "ch_disputed",
    payment_intent: str | None = None,
) -> dict[str, Any]:
    """A ``charge.dispute.created`` event of ``charge_id``; its charge is an object naming
    ``invoice_id`` only when one is given (Stripe sends the charge's id alone)."""
    charge: str | dict[str, Any] = charge_id
    if invoice_id is not None:
        charge = {"id": charge_id, "object": "charge", "invoice": invoice_id}
    return {
        "id": event_id,
        "object": "event",
        "api_version": LEGACY,
        "created": created,
        "livemode": True,
        "type": "charge.dispute.created",
        "data": {
            "object": {
                "id": "dp_KitDemo01",
                "object": "dispute",
                "charge": charge,
                "payment_intent": payment_intent,
                "reason": "fraudulent",
                "created": created,
            }
        },
    }


def signed_delivery(
    event: dict[str, Any] | bytes, *, secret: str, timestamp: int
) -> tuple[dict[str, str], bytes]:
    """Headers and raw body of one delivery, signed as Stripe signs it at ``timestamp``."""
    raw = event if isinstance(event, bytes) else json.dumps(event).encode("utf-8")
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": sign(raw, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return headers, raw


__all__ = [
    "BASIL",
    "LEGACY",
    "charge_refunded",
    "credit_note_created",
    "dispute_created",
    "invoice_paid",
    "signed_delivery",
]
