"""Import files for the tests, written row by row (never built in memory)."""

from __future__ import annotations

from pathlib import Path

HEADER = (
    "transaction_reference,transaction_date,email,first_name,last_name,locale,"
    "estimated_delivery_date,consent,product_sku,product_name,product_url,product_image_url,"
    "product_gtin,product_mpn,product_brand"
)

CHANNEL = "chl-00000000-0000-4000-8000-000000000001"


def config_text(db: str, *, consent: str = "all", extra: str = "") -> str:
    """A configuration file with one import source ``legacy`` and the outbox at ``db``."""
    return (
        f'[outbox]\nurl = "{db}"\n\n[[sources]]\nname = "legacy"\nadapter = "import"\n'
        f'channel_id = "{CHANNEL}"\nconsent = "{consent}"\n{extra}'
    )


def write_big_csv(path: Path, rows: int, *, per_transaction: int = 2) -> None:
    """``rows`` product rows, ``per_transaction`` rows per transaction, every one good."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        for i in range(rows):
            tx = i // per_transaction
            first = i % per_transaction == 0
            order = (
                f"{tx},2025-03-01T08:12:44Z,buyer{tx}@example.org,Erika,Muster,de_DE,2025-03-06,yes"
                if first
                else f"{tx},,,,,,,"
            )
            out.write(f"{order},SKU-{i},Product {i},https://shop.example/p/{i},,,,Brand\n")
