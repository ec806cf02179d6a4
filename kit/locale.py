"""Platform locales to eTrusted's ``defaultLocale``: one table for every adapter.

eTrusted wants ``ll_CC`` (``de_DE``). Platforms send ``de``, ``fr-FR``, ``fr-Fr``, ``pt-BR`` or
``zh-Hans-CN``. A wrong locale sends an invite in the wrong language, while a missing one falls
back to the channel's locale, so anything this table cannot place is omitted, never guessed
(the Trusted Shops WooCommerce plugin's ``en_GB`` fallback is what this avoids).

The default table is the language set Trusted Shops' own plugins support; which regional
variants an eTrusted account accepts is not documented, so a region is kept only when the pair
is in ``supported``: callers (a channel's configuration) may pass a larger set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

LANGUAGE_DEFAULTS: Mapping[str, str] = {
    "de": "de_DE",
    "en": "en_GB",
    "es": "es_ES",
    "fr": "fr_FR",
    "it": "it_IT",
    "nl": "nl_NL",
    "pl": "pl_PL",
    "pt": "pt_PT",
}
"""A language's locale when the platform gave no region, or one not in ``supported``."""

SUPPORTED_LOCALES: frozenset[str] = frozenset(LANGUAGE_DEFAULTS.values())

_LANGUAGE = re.compile(r"[A-Za-z]{2,3}\Z")
_REGION = re.compile(r"[A-Za-z]{2}\Z|[0-9]{3}\Z")


def etrusted_locale(
    value: str | None,
    *,
    supported: frozenset[str] = SUPPORTED_LOCALES,
    languages: Mapping[str, str] = LANGUAGE_DEFAULTS,
) -> str | None:
    """``de`` -> ``de_DE``, ``fr-FR`` -> ``fr_FR``, ``pt-BR`` -> ``pt_PT``; unknown -> ``None``.

    Script subtags are skipped (``zh-Hans-CN`` looks at ``zh`` and ``CN``).
    """
    if not value:
        return None
    parts = value.strip().replace("_", "-").split("-")
    if not _LANGUAGE.match(parts[0]):
        return None
    language = parts[0].lower()
    for part in parts[1:]:
        if _REGION.match(part):
            locale = f"{language}_{part.upper()}"
            return locale if locale in supported else languages.get(language)
    return languages.get(language)


__all__ = ["LANGUAGE_DEFAULTS", "SUPPORTED_LOCALES", "etrusted_locale"]
