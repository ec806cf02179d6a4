"""docs/configuration.md is the reference: it names every key the loader accepts, in the
section of its table, and every value a key with a fixed set of choices takes. (That every TOML
example in it loads is checked with every other page's, in ``tests/test_docs.py``.)"""

from __future__ import annotations

import enum
import re
from pathlib import Path

import attrs
import pytest

from adapters.importer.config import ImportedAs
from adapters.recharge.config import SignatureScheme
from adapters.shopify.config import ReferenceField
from kit.config import ENV_VARIABLES, ClientConfig
from kit.configfile.keys import tables
from kit.policy import ConsentMode, Renewals, TriggerOn

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
HEADING = re.compile(r"^#{2,3} ", re.MULTILINE)


def sections() -> dict[str, str]:
    """Each ``##``/``###`` section's heading line -> its text."""
    text = PAGE.read_text(encoding="utf-8")
    parts = HEADING.split(text)[1:]
    return {part.split("\n", 1)[0]: part for part in parts}


@pytest.mark.parametrize(("table", "keys"), sorted(tables().items()))
def test_the_reference_names_every_key_of_each_table(table: str, keys: list[str]) -> None:
    """A key the loader accepts but the reference does not list fails here: add its row."""
    found = [text for heading, text in sections().items() if f"`{table}`" in heading]
    assert found, f"docs/configuration.md has no section headed `{table}`"
    missing = [key for key in keys if f"| `{key}` |" not in found[0]]
    assert not missing, f"{table}: no row for {missing}"


def test_the_built_in_adapters_keys_are_among_those_checked() -> None:
    """The adapter tables come from the installed entry points: without the kit installed
    (``pip install -e .``) the Shopify keys would drop out of the check above unnoticed."""
    assert 'adapter = "shopify"' in tables()


@pytest.mark.parametrize(
    ("table", "key", "choices"),
    [
        ("[[sources.triggers]]", "on", TriggerOn),
        ("[[sources.triggers]]", "renewals", Renewals),
        ("[[sources]]", "consent", ConsentMode),
        ('adapter = "shopify"', "reference", ReferenceField),
        ('adapter = "recharge"', "signature", SignatureScheme),
        ('adapter = "import"', "event", ImportedAs),
    ],
)
def test_the_reference_names_every_choice_of_a_key(
    table: str, key: str, choices: type[enum.StrEnum]
) -> None:
    """A value added to a key's choices (a new trigger, consent mode or reference field)
    needs its word in that key's row."""
    (section,) = [text for heading, text in sections().items() if f"`{table}`" in heading]
    (row,) = [line for line in section.splitlines() if line.startswith(f"| `{key}` |")]
    missing = [c.value for c in choices if f'`"{c.value}"`' not in row]
    assert not missing, f"{table} {key}: the row does not name {missing}"


def test_the_reference_lists_no_key_the_loader_refuses() -> None:
    accepted = {key for keys in tables().values() for key in keys}
    rows = set(re.findall(r"^\| `(\w+)` \|", PAGE.read_text(encoding="utf-8"), re.MULTILINE))
    assert rows <= accepted, rows - accepted


def test_the_documented_client_defaults_are_the_client_configs() -> None:
    """The [etrusted] rows state ClientConfig's defaults, which the file does not restate."""
    (section,) = [text for heading, text in sections().items() if "`[etrusted]`" in heading]
    rows = re.findall(r"^\| `(\w+)` \| [^|]+ \| `([^`]+)` \|", section, re.MULTILINE)
    defaults = {a.name: a.default for a in attrs.fields(ClientConfig)}
    checked = 0
    for key, documented in rows:
        if documented == ENV_VARIABLES.get(key):
            continue  # a credential: no default, the variable stands in
        assert documented == str(defaults[key]), key
        checked += 1
    assert checked == 5
