"""The adapter contract: header normalising, HMAC checks and lookup through entry points.

Lookup tests install small packages the way pip does (a ``*.dist-info`` directory with
``entry_points.txt`` on ``sys.path``), so ``importlib.metadata`` finds them for real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import textwrap
from pathlib import Path

import pytest

from kit.adapters import (
    ENTRY_POINT_GROUP,
    PushAdapter,
    hmac_sha256_base64_matches,
    installed_adapters,
    load_adapter,
    normalise_headers,
)
from kit.errors import ConfigError

# platforms.md §3.2: a synthetic Shopify vector computed with Python's hmac.
VECTOR_SECRET = "shpss_test_secret_do_not_use"
VECTOR_BODY = b'{"id":820982911946154508,"name":"#9999","email":"jon@example.com"}'
VECTOR_SIGNATURE = "sfSaXmY9AJesvYMGCNaPOANdOyRKxSBwmukXvbVPhJ4="

_PLUGIN_MODULE = """
from __future__ import annotations

import attrs

from kit.adapters import DeliveryIdentity
from kit.domain import Skip, SkipReason


@attrs.frozen
class Config:
    account: str


@attrs.frozen
class Adapter:
    source: str
    config: Config
    platform: str = "{name}"

    @property
    def account(self):
        return self.config.account

    def verify(self, headers, raw_body, secrets):
        return None

    def identify(self, headers, raw_body):
        return DeliveryIdentity(headers["x-id"])

    def parse(self, headers, raw_body, *, received_at):
        return Skip(SkipReason.UNSUPPORTED_TOPIC)


class Plugin:
    name = "{name}"
    config_type = Config

    def create(self, *, source, config):
        return Adapter(source, config)


plugin = Plugin()
"""


def install(site: Path, dist: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """Lay out an installed distribution: its modules and a dist-info with entry points."""
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_headers_reach_adapters_in_lower_case_first_value_kept() -> None:
    assert normalise_headers({"X-Shopify-Topic": "orders/create"}) == {
        "x-shopify-topic": "orders/create"
    }
    pairs = [("X-Shopify-Hmac-Sha256", "first"), ("x-shopify-hmac-sha256", "second")]
    assert normalise_headers(pairs) == {"x-shopify-hmac-sha256": "first"}


def test_normalised_headers_normalise_to_themselves() -> None:
    """The HTTP intake lower-cases once and hands the result to ``Intake.ingest_raw``, which
    normalises whatever it is given: the second pass must give the same headers."""
    lowered = normalise_headers([("X-Shopify-Topic", "orders/create"), ("X-A", "1"), ("x-a", "2")])
    assert normalise_headers(lowered) is lowered
    assert normalise_headers(lowered) == {"x-shopify-topic": "orders/create", "x-a": "1"}
    assert normalise_headers(dict(lowered)) == lowered


def test_the_published_vector_verifies() -> None:
    assert hmac_sha256_base64_matches(VECTOR_BODY, VECTOR_SIGNATURE, [VECTOR_SECRET])


def test_any_of_several_secrets_verifies_during_a_rotation() -> None:
    assert hmac_sha256_base64_matches(VECTOR_BODY, VECTOR_SIGNATURE, ["new", VECTOR_SECRET])
    assert hmac_sha256_base64_matches(VECTOR_BODY, VECTOR_SIGNATURE, [VECTOR_SECRET, "new"])


@pytest.mark.parametrize(
    ("body", "signature", "secrets"),
    [
        pytest.param(VECTOR_BODY + b" ", VECTOR_SIGNATURE, [VECTOR_SECRET], id="tampered-body"),
        pytest.param(VECTOR_BODY, VECTOR_SIGNATURE, ["wrong"], id="wrong-secret"),
        pytest.param(VECTOR_BODY, VECTOR_SIGNATURE, [], id="no-secret"),
        pytest.param(VECTOR_BODY, "not base64!", [VECTOR_SECRET], id="not-base64"),
        pytest.param(VECTOR_BODY, "", [VECTOR_SECRET], id="empty"),
        pytest.param(
            VECTOR_BODY,
            hmac.new(VECTOR_SECRET.encode(), VECTOR_BODY, hashlib.sha256).hexdigest(),
            [VECTOR_SECRET],
            id="hex-instead-of-base64",
        ),
        pytest.param(
            VECTOR_BODY,
            base64.b64encode(
                hmac.new(VECTOR_SECRET.encode(), VECTOR_BODY, hashlib.sha256).digest()[:16]
            ).decode(),
            [VECTOR_SECRET],
            id="truncated",
        ),
    ],
)
def test_anything_else_does_not_verify(body: bytes, signature: str, secrets: list[str]) -> None:
    assert not hmac_sha256_base64_matches(body, signature, secrets)


def test_an_installed_third_party_adapter_is_found_and_works(site: Path) -> None:
    install(
        site,
        "kit_test_acme",
        {"acme": "kit_test_acme:plugin"},
        {"kit_test_acme": _PLUGIN_MODULE.format(name="acme")},
    )
    assert "acme" in installed_adapters()
    plugin = load_adapter("acme")
    adapter = plugin.create(source="my-acme", config=plugin.config_type(account="acme-1"))
    assert isinstance(adapter, PushAdapter)
    assert adapter.account == "acme-1"
    assert adapter.identify({"x-id": "d-1"}, b"{}").delivery_id == "d-1"


def test_an_unknown_name_lists_the_installed_adapters(site: Path) -> None:
    install(
        site,
        "kit_test_acme",
        {"acme": "kit_test_acme:plugin"},
        {"kit_test_acme": _PLUGIN_MODULE.format(name="acme")},
    )
    with pytest.raises(ConfigError, match="unknown adapter 'shopfy'") as caught:
        load_adapter("shopfy")
    listed = str(caught.value).rpartition("installed adapters: ")[2].split(", ")
    assert "acme" in listed
    assert "shopify" in listed
    assert listed == sorted(installed_adapters())


def test_a_name_claimed_twice_is_refused(site: Path) -> None:
    install(
        site,
        "kit_test_one",
        {"twice": "kit_test_one:plugin"},
        {"kit_test_one": _PLUGIN_MODULE.format(name="twice")},
    )
    install(
        site,
        "kit_test_two",
        {"twice": "kit_test_two:plugin"},
        {"kit_test_two": _PLUGIN_MODULE.format(name="twice")},
    )
    with pytest.raises(ConfigError, match="more than once: kit_test_one:plugin, kit_test_two"):
        load_adapter("twice")


def test_an_adapter_that_fails_to_import_is_a_config_error(site: Path) -> None:
    install(
        site,
        "kit_test_broken",
        {"broken": "kit_test_broken:plugin"},
        {"kit_test_broken": "import a_module_that_does_not_exist\n"},
    )
    with pytest.raises(ConfigError, match=r"'broken' .* failed to load") as caught:
        load_adapter("broken")
    assert isinstance(caught.value.__cause__, ImportError)


def test_an_object_without_the_contract_is_refused(site: Path) -> None:
    install(
        site,
        "kit_test_bare",
        {"bare": "kit_test_bare:plugin"},
        {"kit_test_bare": "plugin = object()\n"},
    )
    with pytest.raises(ConfigError, match="not an adapter plugin"):
        load_adapter("bare")


def test_an_entry_point_must_carry_the_plugins_own_name(site: Path) -> None:
    install(
        site,
        "kit_test_alias",
        {"alias": "kit_test_alias:plugin"},
        {"kit_test_alias": _PLUGIN_MODULE.format(name="original")},
    )
    with pytest.raises(ConfigError, match="calls itself 'original'"):
        load_adapter("alias")
