"""One holder polls a source at a time: a lease is taken when absent or expired, renewed by
its holder, refused to anyone else while it runs, taken over once it expired, and given up on
release; on every backend."""

from __future__ import annotations

from kit.feeds.lease import leases_for

from .conftest import FeedKit


async def test_one_holder_at_a_time_with_takeover_on_expiry(feed_kit: FeedKit) -> None:
    leases = leases_for(feed_kit.outbox)
    assert await leases.acquire("shop", "a", ttl=10, now=100)
    assert await leases.holder("shop", now=101) == "a"
    assert not await leases.acquire("shop", "b", ttl=10, now=105)
    assert await leases.acquire("shop", "a", ttl=10, now=108)  # renewed to 118
    assert not await leases.acquire("shop", "b", ttl=10, now=115)
    assert await leases.acquire("other-shop", "b", ttl=10, now=115)  # one lease per source
    # a holds until 118 and stops renewing (it died): b takes over then, and a cannot renew
    assert await leases.holder("shop", now=118) is None
    assert await leases.acquire("shop", "b", ttl=10, now=118)
    assert not await leases.acquire("shop", "a", ttl=10, now=119)
    assert await leases.holder("shop", now=119) == "b"
    # a release by a former holder changes nothing; the holder's own frees it at once
    await leases.release("shop", "a")
    assert await leases.holder("shop", now=120) == "b"
    await leases.release("shop", "b")
    assert await leases.holder("shop", now=120) is None
    assert await leases.acquire("shop", "a", ttl=10, now=120)
