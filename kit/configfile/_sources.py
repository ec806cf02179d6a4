"""A ``[[sources]]`` table: one flat table, three owners.

The source's own keys go to :class:`SourceConfig`, the policy keys to
:class:`~kit.policy.PolicyConfig`, and whatever is left to the adapter's ``config_type``. A key
none of them knows is reported as unknown; when the adapter cannot be loaded, the keys left
over cannot be judged and only the adapter is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from cattrs import Converter
from cattrs.errors import AttributeValidationNote, BaseValidationError, ClassValidationError
from cattrs.gen import override

from kit.adapters import AdapterPlugin, load_adapter, takes_webhooks
from kit.configfile._convert import WrongType, table_hook
from kit.configfile.model import NESTED_SOURCE_FIELDS, SourceConfig
from kit.errors import ConfigError
from kit.policy import PolicyConfig


class UnknownKeys(Exception):
    """Keys no class of this table declares; ``known`` feeds the "did you mean" hint."""

    def __init__(self, keys: set[str], known: set[str]) -> None:
        super().__init__(", ".join(sorted(keys)))
        self.keys = keys
        self.known = known


def own_keys() -> frozenset[str]:
    return frozenset(
        a.name for a in attrs.fields(SourceConfig) if a.name not in NESTED_SOURCE_FIELDS
    )


def policy_keys() -> frozenset[str]:
    return frozenset(a.name for a in attrs.fields(PolicyConfig))


def at_key(exc: Exception, key: str) -> Exception:
    """``exc`` as cattrs reports a failure of the field ``key``, so its path names the key."""
    exc.__notes__ = [*getattr(exc, "__notes__", []), AttributeValidationNote(key, key, Any)]
    return exc


_NO_SECRETS = (
    "give at least one secret: the adapter verifies every delivery with them (several during"
    " a rotation)"
)


def _adapter_config(
    plugin: AdapterPlugin[Any], table: dict[str, Any], converter: Converter, errors: list[Exception]
) -> object:
    """The adapter's own keys (all that are neither the source's nor the policy's) structured
    into its ``config_type``; problems go to ``errors``."""
    source_keys = own_keys() | policy_keys()
    config_type = plugin.config_type
    if not attrs.has(config_type):
        errors.append(
            at_key(
                ConfigError(f"adapter {plugin.name!r}: config_type is not an attrs class"),
                "adapter",
            )
        )
        return None
    adapter_keys = {a.name for a in attrs.fields(config_type)}
    taken = adapter_keys & source_keys
    if taken:
        message = f"adapter {plugin.name!r} declares keys a source already has: "
        errors.append(at_key(ConfigError(message + ", ".join(sorted(taken))), "adapter"))
    rest = {k: v for k, v in table.items() if k not in source_keys}
    unknown = set(rest) - adapter_keys
    if unknown:
        errors.append(UnknownKeys(unknown, adapter_keys | source_keys))
    try:
        return converter.structure({k: rest[k] for k in rest if k in adapter_keys}, config_type)
    except (BaseValidationError, ConfigError, TypeError) as exc:
        errors.append(exc)
        return None


def source_hook(converter: Converter) -> Callable[[object, type], SourceConfig]:
    plugins: dict[str, AdapterPlugin[Any]] = {}
    passthrough = override(struct_hook=lambda value, _: value)
    own = table_hook(SourceConfig, converter, **dict.fromkeys(NESTED_SOURCE_FIELDS, passthrough))

    def plugin_for(name: str) -> AdapterPlugin[Any]:
        if name not in plugins:
            plugins[name] = load_adapter(name)
        return plugins[name]

    def structure(table: object, _: type) -> SourceConfig:
        if not isinstance(table, dict):
            raise WrongType("a table", table)
        errors: list[Exception] = []
        values: dict[str, Any] = {"policy": None, "adapter_config": None}
        policy_part = {k: v for k, v in table.items() if k in policy_keys()}
        try:
            values["policy"] = converter.structure(policy_part, PolicyConfig)
        except (BaseValidationError, ConfigError, TypeError) as exc:
            errors.append(exc)
        name = table.get("adapter")
        plugin: AdapterPlugin[Any] | None = None
        if isinstance(name, str):  # a missing or mistyped name is reported with the own keys
            try:
                plugin = plugin_for(name)
            except ConfigError as exc:
                errors.append(at_key(exc, "adapter"))
            else:
                values["adapter_config"] = _adapter_config(plugin, table, converter, errors)
        if takes_webhooks(plugin) and table.get("webhook_secrets", []) == []:
            errors.append(at_key(ConfigError(_NO_SECRETS), "webhook_secrets"))
        mine = {k: v for k, v in table.items() if k in own_keys()}
        try:
            source: SourceConfig = own(mine | values, SourceConfig)
        except BaseValidationError as exc:
            errors.append(exc)
        if errors:
            raise ClassValidationError("While structuring a source", errors, SourceConfig)
        return source

    return structure
