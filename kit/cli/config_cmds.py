"""``etrusted-kit config check [FILE]``: validate a configuration file, run nothing."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta

from kit.adapters import load_adapter, takes_webhooks
from kit.cli._env import CONFIG_VARIABLE, add_config_option, config_path
from kit.configfile import KitConfig, Secret, SourceConfig, load_config
from kit.errors import ConfigError, ConfigFileError
from kit.policy import Renewals, TriggerOn
from kit.redact import redact_url


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _origin(secret: Secret | None) -> str:
    if secret is None:
        return "not in the file"
    return f"from ${secret.env}" if secret.env else "in the file"


def _source_lines(source: SourceConfig) -> list[str]:
    policy = source.policy
    channels = [policy.channel_id] if policy.channel_id else []
    channels += [f"{locale}: {channel}" for locale, channel in policy.channels_by_locale]
    secrets = len(source.webhook_secrets)
    if takes_webhooks(load_adapter(source.adapter)):
        intake = f"POST {source.route}, {secrets} webhook secret{'s' * (secrets != 1)}"
    else:
        intake = "no webhooks"
    lines = [
        f"source {source.name}: adapter {source.adapter}, {intake}, channel {', '.join(channels)}, "
        f"consent {policy.consent.value}"
    ]
    for trigger in policy.triggers:
        line = f"  on {trigger.on.value} -> {trigger.event_type}, delay {_duration(trigger.delay)}"
        if trigger.on is TriggerOn.SUBSCRIPTION_RENEWED:
            rule = trigger.renewal_rule
            line += f", renewals {rule.value}"
            if rule is Renewals.EVERY_NTH:
                line += f" (nth {trigger.nth})"
            if trigger.min_subscription_age is not None:
                line += f", subscriptions older than {_duration(trigger.min_subscription_age)}"
        if trigger.per_customer:  # "0d" is off, like none
            line += f", at most one per customer in {_duration(trigger.per_customer)}"
        lines.append(line)
    return lines


def _safe_url(secret: Secret | None) -> str:
    if secret is None:
        return "not in the file"
    url = secret.value
    if not url.startswith(("postgresql://", "postgres://")):
        return url  # a SQLite path or URL carries no credentials
    return redact_url(url)


def summary(config: KitConfig) -> list[str]:
    """What the file configures, safe to print: no secret, no password in a URL."""
    etrusted = config.etrusted
    lines = [
        f"outbox: {_safe_url(config.outbox.url)}",
        f"etrusted: api {etrusted.api_url or 'default'}, token {etrusted.token_url or 'default'}",
        f"  client_id {_origin(etrusted.client_id)}, "
        f"client_secret {_origin(etrusted.client_secret)}",
        f"sources: {len(config.sources)}",
    ]
    for source in config.sources:
        lines.extend(_source_lines(source))
    return lines


async def cmd_check(args: argparse.Namespace) -> int:
    path = args.file or config_path(args)
    if path is None:
        print(
            f"etrusted-kit: error: name a FILE, or pass --config or set {CONFIG_VARIABLE}",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(path, environ=os.environ)
    except ConfigFileError as exc:
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"etrusted-kit: error: {exc}", file=sys.stderr)
        return 1
    print(f"{path}: ok")
    for line in summary(config):
        print(f"  {line}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("config", help="the configuration file")
    sub = p.add_subparsers(dest="config_command", required=True)
    c = sub.add_parser(
        "check", help="validate a configuration file without running anything (exit 1 if bad)"
    )
    c.add_argument("file", nargs="?", metavar="FILE", help=f"default: --config, {CONFIG_VARIABLE}")
    add_config_option(c)
    c.set_defaults(func=cmd_check)
