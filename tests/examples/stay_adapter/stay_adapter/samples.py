"""Signed sample deliveries, as Staybook sends them, for tests of this adapter and the kit's
adapter contract. Shipped with the package, so other packages' tests can use them too."""

from __future__ import annotations

from typing import Any

from kit.testing import SignedDelivery, header_signer, hmac_sha256_hex, signed_delivery

SAMPLE_SECRET = "staybook-test-secret"  # noqa: S105 (a test value, never a real secret)
SAMPLE_PROPERTY = "prop-4711"
SIGNER = header_signer("X-Staybook-Signature", hmac_sha256_hex(SAMPLE_SECRET), prefix="sha256=")


def stay_completed(
    delivery: str, *, event: str = "stay.completed", **booking: Any
) -> SignedDelivery:
    """A signed delivery of booking ``bk_0042``; ``booking`` overrides its fields."""
    body = {
        "checked_out_at": "2025-05-12T10:04:00+02:00",
        "booking": {
            "id": "bk_0042",
            "confirmation_code": "HB-4711-0042",
            "status": "checked_out",
            "created_at": "2025-04-02T18:21:00+02:00",
            "check_in": "2025-05-08",
            "check_out": "2025-05-12",
            "channel": "direct",
            "test": False,
            "guest": {
                "id": "g_981",
                "email": "erika.muster@example.org",
                "first_name": "Erika",
                "last_name": "Muster",
                "language": "de-DE",
                "country": "de",
                "marketing": "opted_in",
            },
            "rooms": [
                {"id": "r1", "room_type_id": "rt-sea", "code": "DBL-SEA",
                 "name": "Double room, sea view"},
            ],
            "total": {"amount": "612.00", "currency": "EUR"},
            **booking,
        },
    }  # fmt: skip
    headers = {
        "Content-Type": "application/json",
        "X-Staybook-Event": event,
        "X-Staybook-Property": SAMPLE_PROPERTY,
        "X-Staybook-Delivery": delivery,
        "X-Staybook-Event-Id": f"evt-{delivery}",
    }
    return signed_delivery(body, signer=SIGNER, headers=headers)
