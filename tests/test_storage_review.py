"""Regression tests for defects an independent review found in the storage layer and the
customer-data lifecycle. Each docstring says how the code went wrong before the fix.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import pytest

from kit.outbox import Outbox
from kit.outbox.sqlite import SQLiteStorage

EMAIL = "zelda.forget-me@lovelace-family.example"
NAME = "Zeldafirstname"


def event(ref: str, email: str = EMAIL, name: str = NAME) -> dict[str, Any]:
    return {
        "type": "order_shipped",
        "customer": {"email": email, "firstName": name},
        "channel": {"id": "chl-1"},
        "transaction": {"reference": ref},
        "system": "my-shop",
        "systemVersion": "1.0",
    }


def files_holding(path: Path, needle: bytes) -> list[str]:
    """The database files (main, -wal, -shm, -journal) whose bytes contain ``needle``."""
    return sorted(Path(f).name for f in glob.glob(f"{path}*") if needle in Path(f).read_bytes())


async def test_forgotten_customer_data_leaves_the_sqlite_files_while_a_flusher_runs(
    tmp_path: Path,
) -> None:
    """forget_customer() committed "payload = NULL", but the kit neither enabled secure_delete
    nor checkpointed: while another process kept the outbox open (the flusher daemon, always),
    the e-mail and name stayed readable in the database file and its -wal file."""
    path = tmp_path / "outbox.db"
    async with Outbox.from_url(str(path)) as app:
        await app.enqueue_many(
            [event(f"o-{n}", f"other{n}@example.org", "Other") for n in range(5)]
        )
        await app.enqueue(event("o-zelda"))
    flusher = SQLiteStorage(path)  # the daemon: it has the file open the whole time
    await flusher.open()
    try:
        # The operator runs `etrusted-kit forget` (its own process and connection).
        async with Outbox.from_url(str(path)) as operator:
            result = await operator.forget_customer(EMAIL)
            assert result.purged == 1
            entry = (await operator.entries())[-1]
            assert entry.payload is None
            assert entry.email_hash is None
        assert files_holding(path, EMAIL.encode()) == []
        assert files_holding(path, NAME.encode()) == []
    finally:
        await flusher.aclose()


async def test_an_outbox_that_was_moved_refuses_new_events(
    tmp_path: Path,
) -> None:
    """After migrate-outbox an application instance (or a cron'd `etrusted-kit enqueue`) not
    switched yet has its events refused, naming the new outbox, instead of accepted and never
    sent."""
    from kit.errors import OutboxMovedError
    from kit.outbox.move import migrate_outbox

    old, new = tmp_path / "old.db", tmp_path / "new.db"
    async with Outbox.from_url(str(old)) as app:
        await app.enqueue(event("o-1", "a@example.org"))
    async with SQLiteStorage(old) as source, SQLiteStorage(new) as target:
        report = await migrate_outbox(source, target)
        assert report.copied == 1
    async with Outbox.from_url(str(old)) as late_app:
        with pytest.raises(OutboxMovedError, match=r"was moved to sqlite:///.*new\.db"):
            await late_app.enqueue(event("o-2", "b@example.org"))


async def test_migrating_an_outbox_onto_itself_is_refused(tmp_path: Path) -> None:
    """migrate_outbox only refused ``source is target`` (the same object). Two storage objects on
    the same database (the CLI's --from and --to naming one file or one schema) "copied"
    nothing, reported success, and marked the only outbox as moved."""
    from kit.errors import OutboxError
    from kit.outbox.move import migrate_outbox

    path = tmp_path / "outbox.db"
    async with Outbox.from_url(str(path)) as app:
        await app.enqueue(event("o-1", "a@example.org"))
    async with SQLiteStorage(path) as source, SQLiteStorage(f"sqlite:///{path}") as target:
        with pytest.raises(OutboxError, match="source and target are the same outbox"):
            await migrate_outbox(source, target)
        assert await source.holds(now=0.0) == []  # the probe is gone
        assert await source.moved_to() is None


async def test_a_malformed_postgres_url_is_a_clear_error_without_the_password() -> None:
    """asyncpg's DSN parser raises a plain ValueError (a bad port, a '?' or '/' in an unencoded
    password), which passed through open() untranslated: the CLI, which only catches KitError,
    died with a traceback, and the '?' case put the tail of the password into the message."""
    pytest.importorskip("asyncpg")
    from kit.errors import KitError
    from kit.outbox import storage_from_url

    storage = storage_from_url("postgresql://shop:pa?ss-tail@127.0.0.1:5432/test")
    with pytest.raises(KitError) as caught:
        await storage.open()
    assert "ss-tail" not in str(caught.value)


def test_the_safe_url_drops_passwords_urlsplit_cannot_parse() -> None:
    """``storage.url`` is documented as safe to log. _redact_url split with urlsplit, so an
    unencoded '/' or '#' in the password ended the netloc early and the password stayed in the
    URL; an ``sslpassword=`` query parameter was kept as well."""
    pytest.importorskip("asyncpg")
    from kit.outbox import storage_from_url

    for dsn in (
        "postgresql://shop:s3cr/et@db.internal:5432/shop",
        "postgresql://shop:s3cr#et@db.internal:5432/shop",
        "postgresql://shop@db.internal:5432/shop?sslmode=require&sslpassword=s3cret",
    ):
        url = storage_from_url(dsn).url
        assert "s3cr" not in url, f"{dsn!r} -> storage.url {url!r}"


async def test_enqueue_many_refuses_a_call_with_an_unstorable_event_and_stores_nothing(
    tmp_path: Path,
) -> None:
    """A lone surrogate (half an emoji, which json.loads accepts from a webhook body as
    "\\ud83d") passed prepare() and only failed when the payload was bound as UTF-8 inside the
    storage: enqueue_many committed the batches before it and raised a raw UnicodeEncodeError,
    not the documented ValidationError, and not "nothing is stored"."""
    import json

    from kit.errors import ValidationError
    from kit.outbox import State

    broken = json.loads(json.dumps(event("o-broken")).replace(NAME, "Zo\\ud83d"))
    good = [event(f"o-{n}", f"c{n}@example.org") for n in range(4)]
    async with Outbox.from_url(str(tmp_path / "outbox.db")) as outbox:
        raised: BaseException | None = None
        try:
            await outbox.enqueue_many([*good, broken], batch_size=2)
        except Exception as exc:  # which error it is, is the point
            raised = exc
        stored = (await outbox.stats()).counts[State.PENDING]
    detail = f"raised {raised!r}; {stored} of the call's events were stored"
    assert isinstance(raised, ValidationError), detail
    assert stored == 0, detail


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_every_backend_refuses_what_postgresql_cannot_store(
    tmp_path: Path, backend: str
) -> None:
    """A NUL character in a transaction reference (or a custom key) used to pass validation
    and be stored by the memory and SQLite backends, though PostgreSQL text cannot hold it:
    migrate-outbox to PostgreSQL then failed on that entry after setting the permanent
    'migrated' hold on the source. Every backend now refuses it at the door."""
    from kit.errors import ValidationError
    from kit.outbox import State
    from kit.outbox.memory import InMemoryStorage

    storage = InMemoryStorage() if backend == "memory" else SQLiteStorage(tmp_path / "o.db")
    async with Outbox(storage) as app:
        with pytest.raises(ValidationError, match=r"transaction\.reference: contains a NUL"):
            await app.enqueue(event("o-2\x00", "b@example.org"))
        with pytest.raises(ValidationError, match="key: contains a NUL"):
            await app.enqueue(event("o-3", "c@example.org"), key="mine\x00")
        assert (await app.stats()).counts[State.PENDING] == 0
