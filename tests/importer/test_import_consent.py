"""The consent column is read into the order's consent and judged by the source's consent
mode, the one rule every source shares: ``yes`` is opted in, ``no`` opted out, empty unknown."""

from __future__ import annotations

import pytest

from .conftest import Store, import_source

ROWS = """transaction_reference,transaction_date,email,consent
yes,2025-03-01T08:00:00Z,a@example.org,yes
no,2025-03-01T08:00:00Z,b@example.org,no
empty,2025-03-01T08:00:00Z,c@example.org,
spelled,2025-03-01T08:00:00Z,d@example.org,TRUE
"""


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("all", {"yes": "enqueue", "no": "enqueue", "empty": "enqueue", "spelled": "enqueue"}),
        (
            "unless_opted_out",
            {"yes": "enqueue", "no": "opted_out", "empty": "enqueue", "spelled": "enqueue"},
        ),
        (
            "opted_in_only",
            {"yes": "enqueue", "no": "no_consent", "empty": "no_consent", "spelled": "enqueue"},
        ),
    ],
)
async def test_the_consent_column_under_each_consent_mode(
    sqlite_store: Store, mode: str, expected: dict[str, str]
) -> None:
    """Each row's consent against each mode: an invite, or a skip with the mode's reason."""
    await sqlite_store.run(ROWS, source=import_source(consent=mode))
    found = {}
    for reference in expected:
        (decision,) = [row.decision for row in (await sqlite_store.history(reference)).decisions]
        found[reference] = getattr(decision, "reason", None) or decision.kind  # type: ignore[union-attr]
    assert found == expected
    enqueued = {e.transaction_reference for e in await sqlite_store.entries()}
    assert enqueued == {r for r, outcome in expected.items() if outcome == "enqueue"}
