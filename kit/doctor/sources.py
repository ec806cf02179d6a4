"""The configuration file itself and each source's secrets."""

from __future__ import annotations

from typing import Any

import attrs

from kit.configfile import Secret
from kit.doctor.context import Context
from kit.doctor.result import CheckResult, Problem


async def check_configuration(ctx: Context) -> CheckResult:
    """A file is given and loads, its ``[admin] token`` set if named (no other check reads
    it) and present if the admin listener is bound beyond loopback; the checks of sources,
    channels and triggers need the file."""
    name = "configuration"
    loaded = ctx.setup.file
    if loaded.origin is None:
        return CheckResult.problem(
            name,
            "no configuration file",
            [
                Problem(
                    message="without a file there are no sources to serve, and no triggers or"
                    " channels to check",
                    hint="pass --config FILE or set ETRUSTED_KIT_CONFIG (docs/configuration.md)",
                )
            ],
        )
    if loaded.config is None:
        return CheckResult.problem(
            name,
            f"{loaded.origin} cannot be used",
            [
                Problem(message=problem, hint="`etrusted-kit config check` shows the same")
                for problem in loaded.problems
            ],
        )
    admin = loaded.config.admin
    if admin is not None and loaded.is_unset(admin.token) and admin.token is not None:
        return CheckResult.problem(
            name,
            f"{loaded.origin} cannot be used by serve",
            [
                Problem(
                    message=f"[admin] token comes from ${admin.token.env}, which is not set (or"
                    " empty); serve refuses to start",
                    hint=f"set {admin.token.env} to the operator page's admin token, or remove"
                    " the token key",
                )
            ],
        )
    if admin is not None and admin.exposed_without_token:
        return CheckResult.problem(
            name,
            f"{loaded.origin}: the admin listener is exposed without a token",
            [
                Problem(
                    message=f"[admin] host {admin.host!r} is not loopback and there is no"
                    " [admin] token: the operator page is readable by anyone who can reach"
                    " it, and retries are off",
                    hint='set [admin] token = { env = "ETRUSTED_KIT_ADMIN_TOKEN" }, or bind the'
                    ' listener to loopback (host = "127.0.0.1") and reach it through a proxy',
                )
            ],
        )
    count = len(loaded.config.sources)
    return CheckResult.ok(name, f"{loaded.origin}: {count} source(s)")


def adapter_secrets(config: Any) -> list[tuple[str, Secret]]:
    """The adapter's own keys that hold a secret (an API token, say), by key name."""
    if not attrs.has(type(config)):
        return []
    return [
        (a.name, value)
        for a in attrs.fields(type(config))
        if isinstance(value := getattr(config, a.name), Secret)
    ]


async def check_source_secrets(ctx: Context) -> CheckResult:
    """Every source's webhook secrets, and every secret among its adapter's keys, are set:
    without a webhook secret no delivery can be verified and serve refuses to start."""
    name = "source secrets"
    loaded = ctx.setup.file
    config = loaded.config
    if config is None:
        return CheckResult.skipped(name, "no usable configuration file (see configuration)")
    problems: list[Problem] = []
    for index, source in enumerate(config.sources):
        for number, secret in enumerate(source.webhook_secrets):
            if loaded.is_unset(secret):
                problems.append(
                    Problem(
                        message=f"source {source.name}: webhook secret {number + 1} comes from"
                        f" ${secret.env}, which is not set (or empty); no delivery can be"
                        " verified and serve refuses to start",
                        hint=f"set {secret.env} to the platform's signing secret"
                        f" (sources[{index}].webhook_secrets[{number}])",
                    )
                )
        for key, secret in adapter_secrets(source.adapter_config):
            if loaded.is_unset(secret):
                problems.append(
                    Problem(
                        message=f"source {source.name}: {key} comes from ${secret.env}, which"
                        " is not set (or empty)",
                        hint=f"set {secret.env} (sources[{index}].{key})",
                    )
                )
    if problems:
        return CheckResult.problem(name, f"{len(problems)} secret(s) missing", problems)
    if not config.sources:
        return CheckResult.skipped(name, "no sources configured")
    return CheckResult.ok(name, f"set for {len(config.sources)} source(s)")


__all__ = ["adapter_secrets", "check_configuration", "check_source_secrets"]
