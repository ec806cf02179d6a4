"""No log line carries a secret, an access token or a whole customer e-mail.

Logs are shipped to places with weaker access rules than the outbox. The whole demo (faults,
token expiry, webhooks, parking, reconciliation) runs as a real process at ``-vv`` with JSON
logs, and every line is searched for what must never be in it.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from cli_helpers import run_kit

from kit.demo_webhooks import SECRET as SHOPIFY_SECRET
from kit.sandbox import SandboxConfig

# Every JWT starts with the base64 of '{"' (its JSON header): any token, or a piece of one.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def _customer_emails(db: Path) -> set[str]:
    """Every address the demo stored: outbox payloads and journal bodies."""
    with sqlite3.connect(db) as conn:
        texts = [row[0] for row in conn.execute("SELECT payload FROM etk_entries")]
        texts += [row[0] for row in conn.execute("SELECT body FROM etk_journal_events")]
    return {m for text in texts if text for m in _EMAIL.findall(text)}


async def test_a_full_demo_at_vv_logs_no_secret_token_or_email(tmp_path: Path) -> None:
    """Scanned for the sandbox's client secret, the Shopify webhook secret, any bearer token
    and every customer address the demo used; masked addresses (``f***@domain``) are fine."""
    db = tmp_path / "demo.db"
    result = await run_kit(
        "-vv", "--log-format", "json", "demo", "--events", "60", "--db", str(db), cwd=tmp_path
    )
    assert result.code == 0, result.err[-3000:]
    lines = [json.loads(line) for line in result.err.splitlines() if line.strip()]
    actions = {line.get("action") for line in lines}
    # The run logged what it is meant to exercise: retries, a token refresh, intake, parking.
    assert {"token_rejected", "intake.ingest", "dead", "etrusted_recovered"} <= actions

    emails = _customer_emails(db)
    assert len(emails) >= 60
    secrets = {SandboxConfig().client_secret, SHOPIFY_SECRET}
    for raw in result.err.splitlines():
        assert not [s for s in secrets if s in raw], raw
        assert not _JWT.search(raw), raw
        assert "Bearer " not in raw, raw
        assert not [e for e in emails if e in raw], raw
        assert not [e for e in _EMAIL.findall(raw) if "***@" not in e], raw
