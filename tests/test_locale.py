"""One locale table for every adapter: a locale eTrusted may not know is left out, not guessed."""

from __future__ import annotations

import pytest

from kit.locale import SUPPORTED_LOCALES, etrusted_locale
from kit.validation import is_locale


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("de", "de_DE"),
        ("DE", "de_DE"),
        ("fr-FR", "fr_FR"),
        ("fr-Fr", "fr_FR"),
        ("fr_FR", "fr_FR"),
        ("de-AT", "de_DE"),
        ("pt-BR", "pt_PT"),
        ("en", "en_GB"),
        ("en-US", "en_GB"),
        (" it ", "it_IT"),
        ("zh-CN", None),
        ("zh-Hans-CN", None),
        ("x", None),
        ("", None),
        (None, None),
        ("de-", "de_DE"),
        ("1234", None),
    ],
)
def test_platform_locales_map_to_etrusted_locales(value: str | None, expected: str | None) -> None:
    assert etrusted_locale(value) == expected


def test_a_regional_variant_is_kept_when_the_channel_supports_it() -> None:
    supported = SUPPORTED_LOCALES | {"de_AT", "en_US"}
    assert etrusted_locale("de-AT", supported=supported) == "de_AT"
    assert etrusted_locale("en_us", supported=supported) == "en_US"
    assert etrusted_locale("de-CH", supported=supported) == "de_DE"


def test_every_locale_the_table_gives_passes_validation() -> None:
    assert all(is_locale(locale) for locale in SUPPORTED_LOCALES)
