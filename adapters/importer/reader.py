"""Reading an import file as a stream of rows, CSV or JSON lines, never the whole file at once.

The file is read line by line in binary and decoded line by line, so a stray Latin-1 byte
spoils its own row (reported with its line number) rather than the file; a UTF-8 byte order
mark (Excel writes one) is dropped. Which format a file is in comes from its extension
(``.csv``, ``.tsv``; ``.jsonl``, ``.ndjson``, ``.json``), else from its first byte (``{`` is
JSON lines); the reader says which and how (:attr:`FileReader.detected_by`).

A CSV file's first row names the columns (any order, any case; ``,``, ``;`` or a tab as the
separator, whichever the header holds most of). A JSON line is one transaction in eTrusted's
event shape without ``type``, ``channel`` and ``system``, plus ``consent`` (and optionally
``eventDate``): :data:`JSON_FIELDS` maps it onto the same columns.
"""

from __future__ import annotations

import csv
import enum
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from adapters.importer.columns import COLUMNS, REQUIRED_COLUMNS, RawRow, RowError
from kit.errors import PayloadError

BOM = b"\xef\xbb\xbf"
_SEPARATORS = (",", ";", "\t")


class FileFormat(enum.StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


_EXTENSIONS = {
    ".csv": FileFormat.CSV,
    ".tsv": FileFormat.CSV,
    ".jsonl": FileFormat.JSONL,
    ".ndjson": FileFormat.JSONL,
    ".json": FileFormat.JSONL,
}

JSON_FIELDS: Mapping[str, str] = {
    "transaction.reference": "transaction_reference",
    "transaction.date": "transaction_date",
    "customer.email": "email",
    "customer.firstName": "first_name",
    "customer.lastName": "last_name",
    "defaultLocale": "locale",
    "estimatedDeliveryDate": "estimated_delivery_date",
    "consent": "consent",
    "eventDate": "event_date",
}
"""A JSON line's fields and the CSV column each one is."""

JSON_PRODUCT_FIELDS: Mapping[str, str] = {
    "sku": "product_sku",
    "name": "product_name",
    "url": "product_url",
    "imageUrl": "product_image_url",
    "gtin": "product_gtin",
    "mpn": "product_mpn",
    "brand": "product_brand",
}
"""A JSON line's ``products[]`` fields and the CSV column each one is."""

_JSON_REQUIRED = ("transaction.reference", "transaction.date", "customer.email", "consent")


@attrs.frozen
class BadRow:
    """A row left out: its (first) line number and why. ``reference`` when the row had one."""

    line: int
    reason: str
    reference: str | None = None


def detect_format(path: Path, head: bytes) -> tuple[FileFormat, str]:
    """The file's format and how it was told: ``"extension .csv"`` or ``"first byte"``."""
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    if by_extension is not None:
        return by_extension, f"extension {path.suffix.lower()}"
    first = head.removeprefix(BOM).lstrip()[:1]
    return (FileFormat.JSONL if first == b"{" else FileFormat.CSV), "first byte"


class FileReader:
    """Rows (:class:`RawRow`) and refused rows (:class:`BadRow`) of one open binary file."""

    def __init__(self, stream: IO[bytes], path: Path, *, file_format: FileFormat | None = None):
        self._stream = stream
        head = stream.peek(64) if hasattr(stream, "peek") else b""
        if file_format is None:
            self.format, self.detected_by = detect_format(path, head)
        else:
            self.format, self.detected_by = file_format, "--format"
        self.bytes_read = 0
        self.columns: tuple[str, ...] = ()
        self.ignored_columns: tuple[str, ...] = ()

    def _lines(self) -> Iterator[bytes]:
        first = True
        for raw in self._stream:
            self.bytes_read += len(raw)
            if first:
                raw, first = raw.removeprefix(BOM), False
            yield raw

    def __iter__(self) -> Iterator[RawRow | BadRow]:
        if self.format is FileFormat.CSV:
            return self._csv()
        return self._jsonl()

    # -- CSV -------------------------------------------------------------------------------

    def _csv(self) -> Iterator[RawRow | BadRow]:
        lines = (raw.decode("utf-8", "surrogateescape") for raw in self._lines())
        header_line = next(lines, "")
        header_text = _utf8(header_line, "the header row")
        if "\x00" in header_text:
            raise PayloadError(
                f"the header row is not UTF-8 (character {header_text.index(chr(0)) + 1} is a NUL,"
                " as in UTF-16); save the file as UTF-8"
            )
        if "\r" in header_text.rstrip("\r\n"):
            # Lines are split at LF only: a file whose lines end in a bare CR (Excel's old
            # "CSV (Macintosh)") is all one header row, which csv cannot read.
            raise PayloadError(
                "line 1: the header row holds a carriage return inside it (lines ended by CR"
                " alone, as Excel's old Macintosh CSV writes); save the file as CSV UTF-8"
            )
        separator = max(_SEPARATORS, key=header_text.count)
        header = [
            name.strip().lower()
            for name in next(csv.reader([header_text], delimiter=separator), [])
        ]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            found = ", ".join(header) or "nothing"
            raise PayloadError(
                f"line 1: the header has no column {', '.join(missing)} (found: {found}); the"
                f" columns are {', '.join(COLUMNS)}"
            )
        doubled = sorted({c for c in header if header.count(c) > 1 and c in COLUMNS})
        if doubled:
            raise PayloadError(f"line 1: the header names column {doubled[0]} twice")
        self.columns = tuple(header)
        self.ignored_columns = tuple(c for c in header if c not in COLUMNS)
        keep = [(i, c) for i, c in enumerate(header) if c in COLUMNS]
        reader = csv.reader(lines, delimiter=separator, strict=True)
        offset = 1  # the header's line
        width = len(header)
        while True:
            line = offset + reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield BadRow(line, f"not valid CSV: {exc}")
                continue
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if not _is_utf8(separator.join(record)):
                where = next(
                    (header[i] for i, cell in enumerate(record) if not _is_utf8(cell)), "a cell"
                )
                if where not in COLUMNS:
                    where = f"column {where}"
                yield BadRow(line, f"{where}: not UTF-8; save the file as UTF-8")
                continue
            if len(record) != width:
                yield BadRow(line, f"{len(record)} cells where the header has {width}")
                continue
            yield RawRow(line, {c: record[i].strip() for i, c in keep})

    # -- JSON lines ------------------------------------------------------------------------

    def _jsonl(self) -> Iterator[RawRow | BadRow]:
        self.columns = tuple(JSON_FIELDS)
        first = True
        for line, raw in enumerate(self._lines(), start=1):
            if not raw.strip():
                continue
            if first and raw.lstrip().startswith(b"["):
                # One array of transactions: no line of it is a transaction of its own.
                raise PayloadError(
                    f"line {line}: a JSON array, not JSON lines; write one transaction object"
                    " per line"
                )
            first = False
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadRow(line, f"not UTF-8 (byte {exc.start + 1} of the line)")
                continue
            try:
                yield RawRow(line, *_flatten(json.loads(text)))
            except json.JSONDecodeError as exc:
                yield BadRow(line, f"not JSON: {exc.msg} at column {exc.colno}")
            except RowError as exc:
                yield BadRow(line, str(exc))


def _utf8(text: str, what: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(
            f"{what} is not UTF-8 (character {exc.start + 1}); save the file as UTF-8"
        ) from None
    return text


def _is_utf8(text: str) -> bool:
    """Whether ``text`` was decoded without a stray byte (those became lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: Any, path: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        if path == "consent":
            return "yes" if value else "no"
        raise RowError(f"{path}: must be a string")
    if isinstance(value, int) and path == "transaction.reference":
        return str(value)
    if not isinstance(value, str):
        raise RowError(f"{path}: must be a string")
    return value.strip()


def _flatten(obj: Any) -> tuple[dict[str, str], tuple[dict[str, str], ...]]:
    if not isinstance(obj, dict):
        raise RowError("not a JSON object")
    cells: dict[str, str] = {}
    for path, column in JSON_FIELDS.items():
        parent, _, key = path.rpartition(".")
        holder = obj.get(parent) if parent else obj
        if parent and holder is not None and not isinstance(holder, dict):
            raise RowError(f"{parent}: must be an object")
        if not isinstance(holder, dict) or key not in holder:
            if path in _JSON_REQUIRED:
                raise RowError(f"{path}: missing")
            continue
        cells[column] = _text(holder[key], path)
    products = obj.get("products") or []
    if not isinstance(products, list):
        raise RowError("products: must be an array")
    lines: list[dict[str, str]] = []
    for index, product in enumerate(products):
        if not isinstance(product, dict):
            raise RowError(f"products[{index}]: must be an object")
        lines.append(
            {
                column: _text(product.get(key), f"products[{index}].{key}")
                for key, column in JSON_PRODUCT_FIELDS.items()
            }
        )
    return cells, tuple(lines)


__all__ = ["BOM", "JSON_FIELDS", "JSON_PRODUCT_FIELDS", "BadRow", "FileFormat", "FileReader"]
