"""Rows -> transactions: a transaction's rows are merged into one, its products joined.

Rows of one transaction must be **adjacent** (a file sorted or grouped by
``transaction_reference``, as exports are): a transaction is complete when a row of another
reference follows, so only one transaction is held in memory at a time. A reference that comes
back after other transactions is refused row by row (``not adjacent``) while it is among the
last :data:`RECENT` transactions, rather than silently becoming a second, smaller version of
the first; further back than that it cannot be told from a later import of a changed
transaction, and is taken as one (the newer version wins, see :mod:`adapters.importer`).

A transaction's first good row must give its date and e-mail; its later rows may leave the
order's columns empty, and a value they do give must be the first row's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import date, datetime

import attrs

from adapters.importer.columns import Product, RawRow, Row, RowError, check_row
from adapters.importer.reader import BadRow
from kit.domain import Consent

RECENT = 10_000
"""How many completed transactions are remembered to catch a non-adjacent row."""

_ORDER_FIELDS = (
    ("placed_at", "transaction_date"),
    ("event_at", "event_date"),
    ("email", "email"),
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("locale", "locale"),
    ("estimated_delivery", "estimated_delivery_date"),
    ("consent", "consent"),
)


@attrs.frozen(kw_only=True)
class Transaction:
    """One transaction of the file, merged from its rows (``lines``: first and last)."""

    reference: str
    placed_at: datetime
    email: str = attrs.field(repr=False)
    consent: Consent
    event_at: datetime | None = None
    first_name: str | None = attrs.field(default=None, repr=False)
    last_name: str | None = attrs.field(default=None, repr=False)
    locale: str | None = None
    estimated_delivery: date | None = None
    products: tuple[Product, ...] = ()
    lines: tuple[int, int] = (0, 0)
    rows: int = 1


def _start(row: Row) -> Transaction:
    if row.placed_at is None:
        raise RowError("transaction_date: empty on the transaction's first row")
    if row.email is None:
        raise RowError("email: empty on the transaction's first row")
    return Transaction(
        reference=row.reference,
        placed_at=row.placed_at,
        email=row.email,
        consent=row.consent or Consent.UNKNOWN,
        event_at=row.event_at,
        first_name=row.first_name,
        last_name=row.last_name,
        locale=row.locale,
        estimated_delivery=row.estimated_delivery,
        products=row.products,
        lines=(row.line, row.line),
    )


def _merge(current: Transaction, row: Row) -> Transaction:
    for field, column in _ORDER_FIELDS:
        given = getattr(row, field)
        if given is None:
            continue
        if given != getattr(current, field):
            raise RowError(
                f"{column}: differs from line {current.lines[0]} of the same transaction"
            )
    return attrs.evolve(
        current,
        products=current.products + row.products,
        lines=(current.lines[0], row.line),
        rows=current.rows + 1,
    )


class Grouper:
    """Feeds rows in, yields each transaction once it is complete and each refused row."""

    def __init__(self, *, recent: int = RECENT) -> None:
        self._current: Transaction | None = None
        self._recent: OrderedDict[str, int] = OrderedDict()
        self._size = recent

    def feed(self, item: RawRow | BadRow) -> Iterator[Transaction | BadRow]:
        if isinstance(item, BadRow):
            yield item
            return
        try:
            row = check_row(item)
        except RowError as exc:
            yield BadRow(item.line, str(exc), item.get("transaction_reference") or None)
            return
        current = self._current
        if current is not None and current.reference == row.reference:
            try:
                self._current = _merge(current, row)
            except RowError as exc:
                yield BadRow(row.line, str(exc), row.reference)
            return
        ended = self._recent.get(row.reference)
        if ended is not None:
            yield BadRow(
                row.line,
                f"not adjacent: the rows of transaction {row.reference!r} ended at line {ended};"
                " sort or group the file by transaction_reference",
                row.reference,
            )
            return
        try:
            started = _start(row)
        except RowError as exc:
            yield BadRow(row.line, str(exc), row.reference)
            return
        if current is not None:
            yield self._close(current)
        self._current = started

    def finish(self) -> Iterator[Transaction]:
        if self._current is not None:
            yield self._close(self._current)
            self._current = None

    def _close(self, done: Transaction) -> Transaction:
        self._recent[done.reference] = done.lines[1]
        if len(self._recent) > self._size:
            self._recent.popitem(last=False)
        return done


def transactions(items: Iterable[RawRow | BadRow]) -> Iterator[Transaction | BadRow]:
    """Every complete transaction and every refused row, in file order."""
    grouper = Grouper()
    for item in items:
        yield from grouper.feed(item)
    yield from grouper.finish()


__all__ = ["RECENT", "Grouper", "Transaction", "transactions"]
