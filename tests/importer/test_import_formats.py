"""Both file formats, told apart by extension or first byte, read to the same transactions;
encodings and broken headers are reported where they are."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.importer import FileFormat, FileReader
from adapters.importer.reader import BOM
from kit.errors import PayloadError

from .conftest import Store
from .files import HEADER

CSV = f"""{HEADER}
1042,2025-03-01T08:12:44Z,erika@example.org,Erika,Muster,de,2025-03-06,yes,A-1,Socks,https://shop.example/a1,,4006381333931,,Woolfolk
1042,,,,,,,,B-2,Hat,https://shop.example/b2,,,,
1043,2025-03-01T10:00:00Z,guest@example.org,,,,,no,,,,,,,
"""

JSONL_LINES = [
    {
        "transaction": {"reference": "1042", "date": "2025-03-01T09:12:44+01:00"},
        "customer": {"email": "erika@example.org", "firstName": "Erika", "lastName": "Muster"},
        "defaultLocale": "de_DE",
        "estimatedDeliveryDate": "2025-03-06",
        "consent": True,
        "products": [
            {
                "sku": "A-1",
                "name": "Socks",
                "url": "https://shop.example/a1",
                "gtin": "4006381333931",
                "brand": "Woolfolk",
            },
            {"sku": "B-2", "name": "Hat", "url": "https://shop.example/b2"},
        ],
    },
    {
        "transaction": {"reference": 1043, "date": "2025-03-01T10:00:00Z"},
        "customer": {"email": "guest@example.org"},
        "consent": "no",
    },
]
JSONL = "\n".join(json.dumps(line) for line in JSONL_LINES) + "\n"


async def test_the_same_transactions_in_csv_and_json_lines_are_one_import(store: Store) -> None:
    """A transaction's identity is its content, not its file: the JSON-lines file of the CSV
    file's transactions (another offset, ``de`` spelled ``de_DE``) is all duplicates."""
    first = await store.run(CSV, name="orders.csv")
    assert (first.file_format, first.detected_by) == (FileFormat.CSV, "extension .csv")
    assert (first.transactions, first.bad_rows) == (2, 0)
    again = await store.run(JSONL, name="orders.jsonl")
    assert (again.file_format, again.detected_by) == (FileFormat.JSONL, "extension .jsonl")
    assert (again.transactions, again.duplicates, again.bad_rows) == (2, 2, 0)


async def test_json_lines_bad_lines_are_reported_by_line(store: Store) -> None:
    lines = [
        json.dumps(JSONL_LINES[0]),
        "",
        "{not json",
        json.dumps(
            {"transaction": {"reference": "9", "date": "2025-03-01T10:00:00Z"}, "consent": "yes"}
        ),
        json.dumps([1, 2]),
        json.dumps({**JSONL_LINES[1], "products": [{"sku": "X", "name": "X"}]}),
    ]
    report = await store.run("\n".join(lines) + "\n", name="orders.ndjson")
    assert [(e.line, e.reason) for e in report.errors] == [
        (3, "not JSON: Expecting property name enclosed in double quotes at column 2"),
        (4, "customer.email: missing"),
        (5, "not a JSON object"),
        (
            6,
            "product_url: required for a product (eTrusted shows a product by its SKU, name"
            " and URL)",
        ),
    ]
    assert report.transactions == 1


async def test_a_byte_order_mark_is_dropped_and_a_stray_byte_spoils_only_its_row(
    store: Store,
) -> None:
    """Excel's UTF-8 BOM does not hide the first column; a Latin-1 byte refuses its own row,
    named by line, and the rows around it are imported."""
    text = (
        BOM
        + f"{HEADER}\n".encode()
        + b"1,2025-03-01T08:00:00Z,a@example.org,M\xfcller,,,,yes,,,,,,,\n"
        + "2,2025-03-01T08:00:00Z,b@example.org,Müller,,,,yes,,,,,,,\n".encode()
    )
    report = await store.run(text)
    assert [(e.line, e.reason) for e in report.errors] == [
        (2, "first_name: not UTF-8; save the file as UTF-8")
    ]
    assert report.transactions == 1
    (entry,) = await store.entries()
    assert json.loads(entry.payload or "")["customer"]["firstName"] == "Müller"


@pytest.mark.parametrize("indent", [None, 2])
async def test_a_json_array_is_refused_as_a_whole_not_line_by_line(
    store: Store, indent: int | None
) -> None:
    """An export saved as one JSON array (``[{...}, {...}]``, on one line or pretty-printed)
    is not JSON lines: the file is refused before its first row (exit 1, nothing imported),
    rather than imported as nothing with every one of its lines reported as a bad row."""
    text = json.dumps(JSONL_LINES, indent=indent) + "\n"
    with pytest.raises(PayloadError, match=r"line 1: a JSON array, not JSON lines"):
        await store.run(text, name="orders.json")
    assert await store.entries() == []


async def test_a_stray_byte_in_a_json_line_spoils_only_its_line(store: Store) -> None:
    good = json.dumps(JSONL_LINES[1]).encode()
    report = await store.run(b'{"x": "\xe9"}\n' + good + b"\n", name="orders.jsonl")
    assert [(e.line, e.reason) for e in report.errors] == [(1, "not UTF-8 (byte 8 of the line)")]
    assert report.transactions == 1


@pytest.mark.parametrize(
    "missing", ["transaction_reference", "transaction_date", "email", "consent"]
)
async def test_a_missing_column_refuses_the_file_naming_the_column(
    store: Store, missing: str
) -> None:
    """Without a required column nothing is imported, and the error names it."""
    header = [c for c in HEADER.split(",") if c != missing]
    with pytest.raises(PayloadError, match=f"line 1: the header has no column {missing} "):
        await store.run(",".join(header) + "\n")
    assert await store.entries() == []


async def test_a_file_with_old_mac_line_endings_is_refused_before_its_first_row(
    store: Store,
) -> None:
    """Excel's "CSV (Macintosh)" ends lines with a bare carriage return: read line by line, the
    whole file is one header row. It is refused like any unreadable header (exit 1, nothing
    imported, the reason named), never a traceback."""
    text = "transaction_reference,transaction_date,email,consent\r1,2025-03-01,a@example.org,yes\r"
    with pytest.raises(PayloadError, match=r"line 1: .*carriage return"):
        await store.run(text)
    assert await store.entries() == []


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
async def test_a_utf_16_file_is_refused_as_not_utf_8(store: Store, encoding: str) -> None:
    """Excel's "Unicode Text" is UTF-16, with or without its byte order mark: the header is
    refused as not UTF-8, not mistaken for some other fault of the file."""
    text = (
        "transaction_reference\ttransaction_date\temail\tconsent\r\n1\t2025-03-01\ta@x.org\tyes\r\n"
    )
    with pytest.raises(PayloadError, match=r"the header row is not UTF-8 .*save the file as UTF-8"):
        await store.run(text.encode(encoding), name="orders.tsv")
    assert await store.entries() == []


async def test_semicolons_any_column_order_and_case_and_unknown_columns(store: Store) -> None:
    """German Excel's ``;``, columns in any order and case; an unknown column is ignored and
    named in the report."""
    text = (
        "Consent;EMAIL;Transaction_Date;transaction_reference;note\n"
        "yes;a@example.org;2025-03-01;7;gift\n"
    )
    report = await store.run(text)
    assert (report.transactions, report.bad_rows) == (1, 0)
    assert report.ignored_columns == ("note",)


def test_the_format_is_sniffed_from_the_first_byte_without_an_extension(tmp_path: Path) -> None:
    jsonl, csv = tmp_path / "export.txt", tmp_path / "export.dat"
    jsonl.write_bytes(BOM + b"  " + JSONL.encode())
    csv.write_text(CSV, encoding="utf-8")
    with jsonl.open("rb") as a, csv.open("rb") as b:
        first, second = FileReader(a, jsonl), FileReader(b, csv)
        assert (first.format, first.detected_by) == (FileFormat.JSONL, "first byte")
        assert (second.format, second.detected_by) == (FileFormat.CSV, "first byte")
        assert len(list(first)) == 2
        assert len(list(second)) == 3
