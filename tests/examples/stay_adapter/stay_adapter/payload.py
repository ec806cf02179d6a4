"""A ``stay.completed`` body in the kit's words: the booking is the order, check-out is its
delivery.

A whole body is in :mod:`stay_adapter.samples`.

A completed stay becomes :class:`~kit.domain.OrderDelivered`: the guest has received the whole
service, as a parcel has when the carrier reports it delivered. A trigger ``on =
"order_delivered"`` then counts its delay from check-out and sends the check-out day as the
invite's delivery date, and a default ``order_fulfilled`` trigger fires on it too.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from kit.adapters import DeliveryIdentity, ParseResult
from kit.domain import Consent, LineItem, OrderDelivered, OrderFacts, Skip, SkipReason
from kit.errors import PayloadError
from kit.locale import etrusted_locale

PLATFORM = "staybook"
STAY_COMPLETED = "stay.completed"
CONSENT = {"opted_in": Consent.OPTED_IN, "opted_out": Consent.OPTED_OUT}


def parse_stay(
    raw_body: bytes,
    *,
    topic: str | None,
    identity: DeliveryIdentity,
    source: str,
    account: str,
    reference: str,
) -> ParseResult:
    """The delivery's domain events, or a skip with its reason; PayloadError for a body of
    the wrong shape (the intake answers 400, and Staybook shows the error to its operator)."""
    if topic != STAY_COMPLETED:
        return Skip(SkipReason.UNSUPPORTED_TOPIC, f"event {topic!r}")
    try:
        body = json.loads(raw_body)
        booking = body["booking"]
        if booking["status"] == "no_show":
            # The closest reason the kit has: the service was never delivered.
            return Skip(SkipReason.NOT_SHIPPED, "no-show: the guest never arrived")
        order = _order(booking, reference)
        checked_out_at = datetime.fromisoformat(body["checked_out_at"])
        event = OrderDelivered(
            source=source,
            platform=PLATFORM,
            account=account,
            stream=str(booking["id"]),
            occurred_at=checked_out_at,
            delivery_id=identity.delivery_id,
            event_id=identity.event_id,
            topic=STAY_COMPLETED,
            order=order,
        )
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise PayloadError(f"not a Staybook stay.completed body: {exc!r}") from None
    return [event]


def _order(booking: dict[str, Any], reference: str) -> OrderFacts:
    guest = booking["guest"]
    total = booking.get("total") or {}
    return OrderFacts(
        reference=str(booking["id"] if reference == "booking_id" else booking[reference]),
        placed_at=datetime.fromisoformat(booking["created_at"]),
        email=guest.get("email"),
        first_name=guest.get("first_name"),
        last_name=guest.get("last_name"),
        customer_id=guest.get("id"),
        locale=etrusted_locale(guest.get("language")),
        lines=tuple(
            LineItem(
                line_id=str(room["id"]),
                name=room["name"],
                product_id=room["room_type_id"],
                sku=room.get("code"),
            )
            for room in booking["rooms"]
        ),
        total=Decimal(total["amount"]) if "amount" in total else None,
        currency=total.get("currency"),
        shipping_country=(guest.get("country") or "").upper() or None,
        test=bool(booking.get("test", False)),
        sales_channel=booking.get("channel"),
        consent=CONSENT.get(guest.get("marketing") or "", Consent.UNKNOWN),
    )
