"""PostgreSQL URLs: a malformed one is a clear error, and ``storage.url`` is safe to log.

Neither needs a server: both are decided before any connection is made.
"""

from __future__ import annotations

import pytest


async def test_a_malformed_postgres_url_is_a_clear_error_without_the_password() -> None:
    """A malformed PostgreSQL URL (a bad port, a '?' or '/' in an unencoded password) is a
    KitError on open(), which the CLI reports cleanly, and its message holds no part of the
    password."""
    pytest.importorskip("asyncpg")
    from kit.errors import KitError
    from kit.outbox import storage_from_url

    storage = storage_from_url("postgresql://shop:pa?ss-tail@127.0.0.1:5432/test")
    with pytest.raises(KitError) as caught:
        await storage.open()
    assert "ss-tail" not in str(caught.value)


def test_the_safe_url_drops_passwords_urlsplit_cannot_parse() -> None:
    """``storage.url`` is safe to log: no password survives, also an unencoded '/' or '#' in it,
    or an ``sslpassword=`` query parameter."""
    pytest.importorskip("asyncpg")
    from kit.outbox import storage_from_url

    for dsn in (
        "postgresql://shop:s3cr/et@db.internal:5432/shop",
        "postgresql://shop:s3cr#et@db.internal:5432/shop",
        "postgresql://shop@db.internal:5432/shop?sslmode=require&sslpassword=s3cret",
    ):
        url = storage_from_url(dsn).url
        assert "s3cr" not in url, f"{dsn!r} -> storage.url {url!r}"


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://shop:s3cr\uff03et@db.internal:5432/shop",  # NFKC makes U+FF03 a "#"
        "postgresql://shop:s3cret@[db.internal:5432/shop",  # an unbalanced IPv6 bracket
    ],
    ids=["nfkc-delimiter", "unbalanced-bracket"],
)
async def test_a_url_urlsplit_refuses_is_a_clear_error_without_the_password(dsn: str) -> None:
    """A PostgreSQL URL that Python's URL parser refuses outright is a ConfigError naming the
    URL without its password, as any malformed URL is: never a traceback, whose ValueError
    would quote the user info with the password in it."""
    pytest.importorskip("asyncpg")
    from kit.errors import ConfigError
    from kit.outbox import storage_from_url

    with pytest.raises(ConfigError) as caught:
        await storage_from_url(dsn).open()
    assert "cannot parse the PostgreSQL URL" in str(caught.value)
    assert "s3cr" not in str(caught.value)
