"""Each polled source's order feed accepts its credentials.

The cheapest request a feed has is one read of an empty window (``since == until == now``):
the platform checks the credentials and lists nothing, so no order is read and its request
budget barely moves. Which sources are polled is :meth:`FeedSource.polled`'s rule, the one
``serve`` follows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from kit.doctor.context import Context
from kit.doctor.result import CheckResult, Problem
from kit.doctor.sources import adapter_secrets
from kit.errors import FeedAuthError, FeedError, FeedThrottledError, KitError
from kit.feeds import FeedWindow
from kit.feeds.runner import FeedSource


async def check_feeds(ctx: Context) -> CheckResult:
    name = "feeds"
    loaded = ctx.setup.file
    config = loaded.config
    if config is None:
        return CheckResult.skipped(name, "no usable configuration file (see configuration)")
    now = datetime.fromtimestamp(ctx.wall_clock(), UTC)
    empty = FeedWindow(since=now, until=now)
    problems: list[Problem] = []
    read: list[str] = []
    throttled: list[str] = []
    for source in config.sources:
        if any(loaded.is_unset(secret) for _, secret in adapter_secrets(source.adapter_config)):
            continue  # "source secrets" names the variable; a stand-in is never sent
        try:
            polled = FeedSource.polled(source)
        except KitError as exc:
            problems.append(
                Problem(
                    message=f"source {source.name}: its feed cannot be set up: {exc}",
                    hint="fix the source's adapter keys (`etrusted-kit config check`)",
                )
            )
            continue
        if polled is None:
            continue
        try:
            await polled.feed.read_page(ctx.session, empty, None)
        except FeedAuthError as exc:
            problems.append(
                Problem(
                    message=f"source {source.name}: the platform refused the feed's"
                    f" credentials: {exc}",
                    hint="set the adapter's API credentials to a key with read access to"
                    " orders (docs/adapters/)",
                )
            )
        except FeedThrottledError:
            throttled.append(source.name)
        except (FeedError, KitError) as exc:
            problems.append(
                Problem(
                    message=f"source {source.name}: its feed cannot be read: {exc}",
                    hint="check the adapter's API URL keys and the network; serve retries"
                    " a feed that is down, but not one that is misconfigured",
                )
            )
        else:
            read.append(source.name)
    if problems:
        return CheckResult.problem(name, f"{len(problems)} feed(s) not usable", problems)
    if not read and not throttled:
        return CheckResult.skipped(name, "no source polls an order feed (webhooks only)")
    parts = [f"{len(read)} feed(s) accept their credentials"] if read else []
    if throttled:
        parts.append(f"throttled, try again to check: {', '.join(throttled)}")
    return CheckResult.ok(name, "; ".join(parts))


__all__ = ["check_feeds"]
