"""The import file's columns, and one row's values checked and normalised.

A CSV row and a JSON line are both read into a :class:`RawRow` (column name -> text, with the
file's line number), so every check below is written once for both formats. What a row may
hold is the reference's generic import (``platforms.md`` §8): one row per product line,
grouped by ``transaction_reference``; the order's columns may be left empty on a transaction's
later rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time

import attrs

from kit.codec import parse_date, parse_datetime
from kit.domain import Consent
from kit.locale import etrusted_locale
from kit.validation import is_email

REFERENCE = "transaction_reference"
ORDER_COLUMNS = (
    REFERENCE,
    "transaction_date",
    "email",
    "first_name",
    "last_name",
    "locale",
    "estimated_delivery_date",
    "consent",
    "event_date",
)
"""Columns that describe the transaction: the same on each of its rows (or left empty)."""

PRODUCT_COLUMNS = (
    "product_sku",
    "product_name",
    "product_url",
    "product_image_url",
    "product_gtin",
    "product_mpn",
    "product_brand",
)
"""Columns of one product line: each row adds one product to its transaction."""

COLUMNS = ORDER_COLUMNS + PRODUCT_COLUMNS

REQUIRED_COLUMNS = (REFERENCE, "transaction_date", "email", "consent")
"""A file without one of these columns is refused before its first row. ``consent`` is required
because the import is where the merchant states it: an empty value means "unknown"."""

PRODUCT_REQUIRED = ("product_sku", "product_name", "product_url")
"""What eTrusted needs to show a product; a row naming a product without them is refused."""

_CONSENT = {
    "yes": Consent.OPTED_IN,
    "y": Consent.OPTED_IN,
    "true": Consent.OPTED_IN,
    "1": Consent.OPTED_IN,
    "no": Consent.OPTED_OUT,
    "n": Consent.OPTED_OUT,
    "false": Consent.OPTED_OUT,
    "0": Consent.OPTED_OUT,
    "": Consent.UNKNOWN,
}
_LOCALE_TEXT = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*\Z")
_MAX_TEXT = 1000  # eTrusted's own limits are lower; a longer cell is a broken file, not a name


class RowError(ValueError):
    """Why one row is refused; the message names the column and never quotes an e-mail."""


@attrs.frozen
class RawRow:
    """One record of the file: its first line number and its cells (stripped text)."""

    line: int
    cells: Mapping[str, str]
    products: tuple[Mapping[str, str], ...] = ()

    def get(self, column: str) -> str:
        return self.cells.get(column, "")


@attrs.frozen(kw_only=True)
class Product:
    sku: str
    name: str
    url: str
    image_url: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    brand: str | None = None


@attrs.frozen(kw_only=True)
class Row:
    """A row's values, checked; ``None`` where the row left the column empty."""

    line: int
    reference: str
    placed_at: datetime | None = None
    event_at: datetime | None = None
    email: str | None = attrs.field(default=None, repr=False)
    first_name: str | None = attrs.field(default=None, repr=False)
    last_name: str | None = attrs.field(default=None, repr=False)
    locale: str | None = None
    estimated_delivery: date | None = None
    consent: Consent | None = None
    locale_given: bool = False
    products: tuple[Product, ...] = ()


def _when(column: str, text: str) -> datetime:
    """An RFC 3339 date-time with its offset, or a bare date (midnight UTC)."""
    try:
        if len(text) == 10:
            return datetime.combine(parse_date(text), time(), UTC)
        return parse_datetime(text.replace(" ", "T", 1))
    except ValueError:
        raise RowError(
            f"{column}: not a date-time with a time zone (2025-03-01T08:12:44Z) or a date"
            f" (2025-03-01): {text[:40]!r}"
        ) from None


def _day(column: str, text: str) -> date:
    try:
        return parse_date(text)
    except ValueError:
        raise RowError(f"{column}: not a real date in the form YYYY-MM-DD: {text[:40]!r}") from None


def _locale(text: str) -> str | None:
    if not _LOCALE_TEXT.match(text):
        raise RowError(f"locale: not a locale such as de_DE or fr-FR: {text[:40]!r}")
    return etrusted_locale(text)


def _product(cells: Mapping[str, str]) -> Product | None:
    if not any(cells.get(c) for c in PRODUCT_COLUMNS):
        return None
    missing = [c for c in PRODUCT_REQUIRED if not cells.get(c)]
    if missing:
        raise RowError(
            f"{', '.join(missing)}: required for a product (eTrusted shows a product by its"
            " SKU, name and URL)"
        )
    for column in ("product_url", "product_image_url"):
        value = cells.get(column, "")
        if value and not value.startswith(("https://", "http://")):
            raise RowError(f"{column}: not an http(s) URL: {value[:60]!r}")
    return Product(
        sku=cells["product_sku"],
        name=cells["product_name"],
        url=cells["product_url"],
        image_url=cells.get("product_image_url") or None,
        gtin=cells.get("product_gtin") or None,
        mpn=cells.get("product_mpn") or None,
        brand=cells.get("product_brand") or None,
    )


def check_row(raw: RawRow) -> Row:
    """The row's values checked one by one; raises :class:`RowError` for the first bad one."""
    for column, text in raw.cells.items():
        if len(text) > _MAX_TEXT:
            raise RowError(f"{column}: longer than {_MAX_TEXT} characters")
    reference = raw.get(REFERENCE)
    if not reference:
        raise RowError(f"{REFERENCE}: empty")
    email = raw.get("email") or None
    if email is not None and not is_email(email):
        raise RowError("email: not a valid e-mail address")
    consent_text = raw.get("consent")
    consent = _CONSENT.get(consent_text.casefold())
    if consent is None:
        raise RowError(f"consent: {consent_text[:20]!r} is not yes, no or empty")
    placed = raw.get("transaction_date")
    event = raw.get("event_date")
    delivery = raw.get("estimated_delivery_date")
    locale = raw.get("locale")
    products = tuple(p for p in (_product(c) for c in (raw.cells, *raw.products)) if p)
    return Row(
        line=raw.line,
        reference=reference,
        placed_at=_when("transaction_date", placed) if placed else None,
        event_at=_when("event_date", event) if event else None,
        email=email,
        first_name=raw.get("first_name") or None,
        last_name=raw.get("last_name") or None,
        locale=_locale(locale) if locale else None,
        locale_given=bool(locale),
        estimated_delivery=_day("estimated_delivery_date", delivery) if delivery else None,
        consent=consent if consent_text else None,
        products=products,
    )


__all__ = [
    "COLUMNS",
    "ORDER_COLUMNS",
    "PRODUCT_COLUMNS",
    "REFERENCE",
    "REQUIRED_COLUMNS",
    "Product",
    "RawRow",
    "Row",
    "RowError",
    "check_row",
]
