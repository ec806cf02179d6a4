"""The Staybook example is a package of its own: it registers by entry point alone, its source
table loads through the kit's loader, and its own test suite passes."""

from __future__ import annotations

import subprocess

import pytest

from kit.adapters import installed_adapters, load_adapter
from kit.configfile import parse_config
from kit.errors import ConfigError

from .conftest import ROOT, STAY

pytestmark = pytest.mark.usefixtures("stay_installed")


def test_the_adapter_is_found_by_its_entry_point_alone() -> None:
    """Installing the package is all it takes: the kit names it nowhere."""
    import stay_adapter

    assert "staybook" in installed_adapters()
    assert load_adapter("staybook") is stay_adapter.plugin
    mentions = subprocess.run(
        ["git", "grep", "-il", "staybook", "--", "kit", "adapters", "pyproject.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert mentions.stdout == "", f"the kit mentions the example: {mentions.stdout}"


def test_its_source_table_loads_through_the_kits_loader() -> None:
    """``stay.toml`` is a valid source: the adapter's keys land in its config class."""
    from stay_adapter import StayConfig

    text = (STAY / "stay.toml").read_text(encoding="utf-8")
    config = parse_config(text, environ={"STAYBOOK_WEBHOOK_SECRET": "s3cret"})
    (source,) = config.sources
    assert source.adapter == "staybook"
    assert source.adapter_config == StayConfig(property_id="prop-4711")
    assert [secret.value for secret in source.webhook_secrets] == ["s3cret"]


def test_a_wrong_key_value_is_reported_with_its_path() -> None:
    """The adapter's own check speaks through the kit's loader, at the key's path."""
    text = (STAY / "stay.toml").read_text(encoding="utf-8")
    bad = text.replace('reference = "confirmation_code"', 'reference = "room"')
    with pytest.raises(ConfigError, match=r"sources\[0\]\.reference: reference must be one of"):
        parse_config(bad, environ={"STAYBOOK_WEBHOOK_SECRET": "s3cret"})


def test_the_packages_own_tests_pass(pytester: pytest.Pytester) -> None:
    """The example's suite (the kit's adapter contract included) runs as its author runs it:
    ``pytest`` in the package, with the package's own settings."""
    result = pytester.runpytest(str(STAY), "-p", "no:cacheprovider")
    result.assert_outcomes(passed=11, skipped=1)  # Staybook sends nothing unsigned
