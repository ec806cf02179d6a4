"""The ~1 KB event bodies every figure moves, and their stored form built fast for big backlogs."""

from __future__ import annotations

from typing import Any

from kit import jsonenc
from kit.outbox import email_hash
from kit.outbox.types import KEY_MARKER, NewEntry
from kit.sandbox import SEEDED_CHANNEL_IDS

EVENT_TYPE = "order_shipped"


def _body(n: str, channel_id: str, *, marked: bool = False) -> dict[str, Any]:
    metadata = {"source": "bench", "campaign": "spring"}
    if marked:  # what Outbox.prepare adds: the entry's key, for reconciliation
        metadata[KEY_MARKER] = f"{channel_id}:{EVENT_TYPE}:order-{n}"
    return {
        "type": EVENT_TYPE,
        "defaultLocale": "de_DE",
        "customer": {
            "firstName": "Anna",
            "lastName": "Schmidt",
            "email": f"anna.schmidt.{n}@example.com",
            "address": "Hauptstrasse 12, 10115 Berlin",
            "reference": f"cust-{n}",
        },
        "channel": {"id": channel_id},
        "transaction": {"reference": f"order-{n}", "date": "2026-05-01T10:00:00.000Z"},
        "estimatedDeliveryDate": "2026-05-04",
        "products": [
            {
                "name": "Merino Sweater Navy M",
                "sku": "MS-NV-M",
                "gtin": "4006381333931",
                "mpn": "MS-2026-NV-M",
                "url": "https://shop.example.com/p/ms-nv-m",
                "imageUrl": "https://shop.example.com/img/ms-nv-m.jpg",
                "brand": "Example Knitwear",
            },
            {
                "name": "Trail Runner 42",
                "sku": "TR-42-BK",
                "gtin": "4006381333948",
                "mpn": "TR-2026-42-BK",
                "url": "https://shop.example.com/p/tr-42-bk",
                "imageUrl": "https://shop.example.com/img/tr-42-bk.jpg",
                "brand": "Example Outdoor",
            },
        ],
        "system": "etrusted-kit-bench",
        "systemVersion": "0.1.0",
        "metadata": metadata,
    }


def bench_body(i: int) -> dict[str, Any]:
    """A realistic event body of about 1 KB (two products, full customer); unique per ``i``."""
    return _body(f"{i:09d}", SEEDED_CHANNEL_IDS[i % len(SEEDED_CHANNEL_IDS)])


_MARK = "#N#"
_TEMPLATES = tuple(jsonenc.encode(_body(_MARK, c, marked=True)) for c in SEEDED_CHANNEL_IDS)


def bench_entry(i: int) -> NewEntry:
    """``bench_body(i)`` as the outbox stores it, built fast for million-entry backlogs.

    Bodies differ only in the number, so the JSON comes from a template instead of a fresh
    validate-and-encode; the result is identical to ``Outbox.prepare(bench_body(i))``.
    """
    n = f"{i:09d}"
    channel = SEEDED_CHANNEL_IDS[i % len(SEEDED_CHANNEL_IDS)]
    return NewEntry(
        key=f"{channel}:{EVENT_TYPE}:order-{n}",
        payload=_TEMPLATES[i % len(_TEMPLATES)].replace(_MARK, n),
        event_type=EVENT_TYPE,
        channel_id=channel,
        transaction_reference=f"order-{n}",
        email_hash=email_hash(f"anna.schmidt.{n}@example.com"),
    )


def raw_rows(count: int) -> list[tuple[str, str]]:
    """The (key, payload) rows the kit stores for ``bench_body(0..count-1)``, for the baselines."""
    return [(e.key, e.payload) for e in map(bench_entry, range(count))]
