"""Checks against the eTrusted account: credentials, channels, event types, invite settings."""

from __future__ import annotations

from kit.doctor.context import Context, source_channels, wanted_pairs, wanted_types
from kit.doctor.fixes import ActivateEventType, CreateEventType, EnableInvites
from kit.doctor.result import CheckResult, Problem
from kit.errors import (
    AuthenticationError,
    ETrustedError,
    TokenUnavailableError,
    UnauthorizedError,
)

_CREDENTIALS_HINT = (
    "set ETRUSTED_CLIENT_ID and ETRUSTED_CLIENT_SECRET (or [etrusted] client_id and"
    " client_secret) to an API client of this eTrusted account"
)


def _sources(names: list[str]) -> str:
    return f"source{'s' * (len(names) != 1)} {', '.join(names)}"


async def check_credentials(ctx: Context) -> CheckResult:
    """A token from the token endpoint, and the API accepting it (one list request)."""
    name = "credentials"
    setup = ctx.setup
    if setup.client is None:
        return CheckResult.problem(
            name,
            "no eTrusted API client is configured",
            [Problem(message=setup.client_problem or "no credentials", hint=_CREDENTIALS_HINT)],
        )
    config = setup.client
    try:
        await ctx.client.tokens.token(ctx.session)
    except AuthenticationError as exc:
        return CheckResult.problem(
            name,
            f"the token endpoint {config.token_url} refused the credentials",
            [
                Problem(
                    message=f"eTrusted refused the client id and secret ({exc.message})",
                    hint=_CREDENTIALS_HINT + "; check token_url too",
                )
            ],
        )
    except TokenUnavailableError as exc:
        return CheckResult.problem(
            name,
            f"no token from {config.token_url}",
            [
                Problem(
                    message=f"the token endpoint gave no token: {exc.message}",
                    hint="check ETRUSTED_TOKEN_URL / [etrusted] token_url and the network",
                )
            ],
        )
    try:
        await ctx.channels()
    except UnauthorizedError as exc:
        return CheckResult.problem(
            name,
            f"the API at {config.api_url} refused a fresh token",
            [
                Problem(
                    message=f"the token works at the login service but not at the API ({exc})",
                    hint="check ETRUSTED_API_URL / [etrusted] api_url and audience: they must"
                    " name the same eTrusted environment as token_url",
                )
            ],
        )
    except ETrustedError as exc:
        return CheckResult.problem(
            name,
            f"the API at {config.api_url} did not answer usefully",
            [Problem(message=str(exc), hint="check ETRUSTED_API_URL / [etrusted] api_url")],
        )
    ctx.account_usable = True
    return CheckResult.ok(name, f"a token from {config.token_url} works at {config.api_url}")


def _account_skip(ctx: Context, name: str) -> CheckResult | None:
    if ctx.config is None:
        return CheckResult.skipped(name, "no usable configuration file (see configuration)")
    if not ctx.account_usable:
        return CheckResult.skipped(name, "eTrusted cannot be asked (see credentials)")
    return None


async def check_channels(ctx: Context) -> CheckResult:
    """Every channel a source names is a channel of the account."""
    name = "channels"
    skip = _account_skip(ctx, name)
    if skip is not None:
        return skip
    assert ctx.config is not None
    wanted = source_channels(ctx.config)
    try:
        existing = {c.id for c in await ctx.channels()}
    except ETrustedError as exc:
        return CheckResult.skipped(name, f"cannot list the channels: {exc}")
    problems = [
        Problem(
            message=f"channel {channel_id} ({_sources(sources)}) does not exist in this"
            " eTrusted account: its events would be accepted and dropped, no invite sent",
            hint="use a channel id from `etrusted-kit channels list` in channel_id or"
            " channels_by_locale",
        )
        for channel_id, sources in wanted.items()
        if channel_id not in existing
    ]
    if problems:
        return CheckResult.problem(name, f"{len(problems)} channel(s) not found", problems)
    return CheckResult.ok(name, f"{len(wanted)} channel(s) exist")


async def check_event_types(ctx: Context) -> CheckResult:
    """Every event type a trigger names exists and is active (else eTrusted refuses the event
    and the flusher parks it)."""
    name = "event types"
    skip = _account_skip(ctx, name)
    if skip is not None:
        return skip
    assert ctx.config is not None
    wanted = wanted_types(ctx.config)
    try:
        by_name = {t.name: t for t in await ctx.event_types()}
    except ETrustedError as exc:
        return CheckResult.skipped(name, f"cannot list the event types: {exc}")
    problems: list[Problem] = []
    for type_name, sources in wanted.items():
        found = by_name.get(type_name)
        if found is None:
            problems.append(
                Problem(
                    message=f"event type {type_name!r} ({_sources(sources)}) does not exist:"
                    " eTrusted refuses its events",
                    hint=f"`etrusted-kit event-types create {type_name}`, or --fix",
                    fix=CreateEventType(type_name),
                )
            )
        elif not found.active:
            problems.append(
                Problem(
                    message=f"event type {type_name!r} ({_sources(sources)}) is inactive:"
                    " eTrusted refuses its events",
                    hint=f"`etrusted-kit event-types activate {type_name}`, or --fix",
                    fix=ActivateEventType(type_name, found.id),
                )
            )
    if problems:
        return CheckResult.problem(name, f"{len(problems)} event type(s) not usable", problems)
    return CheckResult.ok(name, f"{len(wanted)} event type(s) exist and are active")


async def check_invite_settings(ctx: Context) -> CheckResult:
    """Invites are switched on for every (channel, event type) a source sends: otherwise
    eTrusted sends no invite, and an event whose POST ends in doubt cannot be found again."""
    name = "invite settings"
    skip = _account_skip(ctx, name)
    if skip is not None:
        return skip
    assert ctx.config is not None
    try:
        channels = {c.id for c in await ctx.channels()}
        types = {t.name: t.id for t in await ctx.event_types()}
        settings = {(s.channel_id, s.event_type_id): s for s in await ctx.invite_settings()}
    except ETrustedError as exc:
        return CheckResult.skipped(name, f"cannot read the invite settings: {exc}")
    problems: list[Problem] = []
    checked = 0
    for channel_id, type_name in wanted_pairs(ctx.config):
        if channel_id not in channels:
            continue  # the channels check names it; there is nothing to switch on
        checked += 1
        fix = EnableInvites(type_name, (channel_id,))
        hint = f"`etrusted-kit invite-settings enable {type_name} --channel-id {channel_id}`"
        type_id = types.get(type_name)
        found = None if type_id is None else settings.get((channel_id, type_id))
        if type_id is None:
            message = (
                f"event type {type_name!r} does not exist yet, so its invites in channel"
                f" {channel_id} cannot be on (a type created through the API starts with"
                " invites off)"
            )
            hint = "--fix creates the type and then switches its invites on"
        elif found is None:
            message = (
                f"there are no invite settings for {type_name!r} in channel {channel_id}"
                " (eTrusted creates them shortly after the type): no invite is sent yet"
            )
            hint += " in a minute, or --fix (it waits for them)"
        elif found.enabled is not True:
            message = (
                f"invites are switched off for {type_name!r} in channel {channel_id}:"
                " eTrusted sends no invite for these events"
            )
            hint += ", or --fix"
        else:
            continue
        problems.append(Problem(message=message, hint=hint, fix=fix))
    if problems:
        return CheckResult.problem(
            name, f"invites are not on for {len(problems)} channel and type pair(s)", problems
        )
    return CheckResult.ok(name, f"invites are on for {checked} channel and type pair(s)")


__all__ = ["check_channels", "check_credentials", "check_event_types", "check_invite_settings"]
