"""The checks as a library: the clock against the sandbox's Date header, the credentials
check's readings of each failure, the lenient file, and room for more checks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import Run

from kit.adapters import ENTRY_POINT_GROUP
from kit.doctor import (
    CHECKS,
    TOLERANCE,
    Check,
    CheckResult,
    Context,
    Setup,
    Status,
    load_file,
    run_checks,
)
from kit.doctor.report import marks_for
from kit.sandbox import Fault, FaultKind, SandboxServer

from .conftest import CHANNEL, SECRET_VARIABLE, WEBHOOK_SECRET, write_config


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.name: r for r in results}


async def run_with(
    setup: Setup,
    *,
    wall_clock: Callable[[], float] = time.time,
    checks: tuple[Check, ...] = CHECKS,
) -> dict[str, CheckResult]:
    async with Context(setup, wall_clock=wall_clock) as ctx:
        return by_name(await run_checks(ctx, checks))


@pytest.mark.parametrize("offset", [3 * TOLERANCE, -3 * TOLERANCE])
async def test_a_clock_off_by_more_than_the_tolerance_is_named(
    config: Path, sandbox: SandboxServer, db: str, offset: float
) -> None:
    """A machine whose clock is minutes ahead or behind the sandbox's Date header: the clock
    check says by how much and which way; every other check is unaffected."""
    setup = Setup(file=load_file(config, os.environ), client=sandbox.client_config(), db_url=db)
    results = await run_with(setup, wall_clock=lambda: time.time() + offset)
    clock = results["clock"]
    assert clock.status is Status.PROBLEM
    assert f"{abs(offset):.0f} s {'ahead of' if offset > 0 else 'behind'}" in clock.message
    assert all(r.status is not Status.PROBLEM for n, r in results.items() if n != "clock")


async def test_a_synchronised_clock_passes(config: Path, sandbox: SandboxServer, db: str) -> None:
    """The machine's own clock against a sandbox on the same machine: within the tolerance."""
    setup = Setup(file=load_file(config, os.environ), client=sandbox.client_config(), db_url=db)
    assert (await run_with(setup))["clock"].status is Status.OK


async def test_an_api_that_refuses_a_fresh_token_is_told_from_bad_credentials(
    config: Path, sandbox: SandboxServer, db: str
) -> None:
    """The token endpoint gives a token but the API answers 401 to it (URLs of two
    environments): the credentials check names the URLs, not the secret."""
    sandbox.sandbox.add_fault(Fault(kind=FaultKind.STATUS, status=401, path="/channels"))
    setup = Setup(file=load_file(config, os.environ), client=sandbox.client_config(), db_url=db)
    results = await run_with(setup)
    credentials = results["credentials"]
    assert credentials.status is Status.PROBLEM
    assert "refused a fresh token" in credentials.message
    assert "api_url" in credentials.problems[0].hint
    assert results["event types"].status is Status.SKIPPED


async def test_an_unreachable_token_endpoint_is_named(
    config: Path, sandbox: SandboxServer, db: str, unused_port: int
) -> None:
    """Nothing listens at token_url: the credentials check says no token came from there."""
    token_url = f"http://127.0.0.1:{unused_port}/oauth/token"
    setup = Setup(
        file=load_file(config, os.environ),
        client=sandbox.client_config(token_url=token_url),
        db_url=db,
    )
    results = await run_with(setup)
    assert results["credentials"].status is Status.PROBLEM
    assert token_url in results["credentials"].message
    assert results["clock"].status is Status.SKIPPED


async def test_a_broken_file_is_listed_and_the_rest_still_checked(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """A file with problems: each is listed under configuration, the account checks that need
    its sources are skipped, and credentials and database are still checked."""
    path = tmp_path / "bad.toml"
    path.write_text('[[sources]]\nname = "x"\nadapter = "shopfy"\n', encoding="utf-8")
    setup = Setup(file=load_file(path, {}), client=sandbox.client_config(), db_url=db)
    results = await run_with(setup)
    configuration = results["configuration"]
    assert configuration.status is Status.PROBLEM
    assert any("shopfy" in p.message for p in configuration.problems)
    assert results["event types"].status is Status.SKIPPED
    assert results["credentials"].status is Status.OK
    assert results["database"].status is Status.OK


def test_unset_variables_do_not_stop_the_file_from_loading(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    """A file whose secrets come from unset variables still loads for the doctor; the unset
    ones are noted, and the client settings built from it leave them out."""
    config = write_config(tmp_path / "shop.toml", sandbox, db="sqlite:///x.db")
    text = config.read_text().replace('"sandbox-secret"', '{ env = "NO_SUCH_SECRET" }')
    config.write_text(text)
    loaded = load_file(config, {})
    assert loaded.config is not None
    assert loaded.unset_variables == {"NO_SUCH_SECRET", SECRET_VARIABLE}
    usable = loaded.usable()
    assert usable is not None
    assert usable.etrusted.client_secret is None
    assert usable.etrusted.client_id is not None


async def test_an_unset_client_secret_variable_is_named(
    run: Run, tmp_path: Path, sandbox: SandboxServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[etrusted] client_secret from an unset variable: the credentials check names that
    variable, and the stand-in value is never sent as a secret."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    config = write_config(tmp_path / "shop.toml", sandbox, db=db)
    config.write_text(
        config.read_text().replace('"sandbox-secret"', '{ env = "SHOP_ETRUSTED_SECRET" }')
    )
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert "client_secret comes from $SHOP_ETRUSTED_SECRET, which is not set" in result.out
    assert sandbox.sandbox.token_requests == 0


async def test_an_unset_outbox_url_variable_is_named_not_defaulted(
    run: Run, tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[outbox] url from an unset variable: the database check names it instead of checking
    the default ./etrusted-kit.db."""
    monkeypatch.setenv(SECRET_VARIABLE, WEBHOOK_SECRET)
    config = write_config(tmp_path / "shop.toml", sandbox, db="x")
    config.write_text(config.read_text().replace('url = "x"', 'url = { env = "SHOP_DB_URL" }'))
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert "[outbox] url comes from $SHOP_DB_URL, which is not set" in result.out


async def test_an_unset_admin_token_variable_is_named(
    run: Run, config: Path, sandbox: SandboxServer
) -> None:
    """[admin] token from an unset variable stops serve from starting, so the doctor does not
    pass: the configuration check names the variable."""
    config.write_text(config.read_text() + '\n[admin]\ntoken = { env = "SHOP_ADMIN_TOKEN" }\n')
    result = await run("doctor", "--config", str(config))
    assert result.code == 1
    assert "[admin] token comes from $SHOP_ADMIN_TOKEN, which is not set" in result.out
    assert "\x00" not in result.out


@pytest.mark.parametrize(
    ("admin", "problem"),
    [
        ('host = "0.0.0.0"', True),
        ('host = "::"', True),
        ('host = "0.0.0.0"\ntoken = "t0ken-value"', False),
        ('host = "127.0.0.5"', False),
        ('host = "localhost"', False),
    ],
    ids=["any-ipv4", "any-ipv6", "with-token", "loopback", "localhost"],
)
async def test_an_admin_listener_exposed_without_a_token_is_a_problem(
    run: Run, config: Path, sandbox: SandboxServer, admin: str, problem: bool
) -> None:
    """An admin listener bound beyond loopback without a token shows the operator page to
    anyone who can reach it: the configuration check says so; with a token, or on loopback,
    it passes."""
    config.write_text(config.read_text() + f"\n[admin]\n{admin}\n")
    result = await run("doctor", "--config", str(config))
    shown = "is not loopback and there is no [admin] token" in result.out
    assert shown is problem, result.out
    assert (result.code == 1) is problem, result.out
    assert "t0ken-value" not in result.out


async def test_an_added_check_runs_with_the_others(
    config: Path, sandbox: SandboxServer, db: str
) -> None:
    """A later check is one more function in the sequence: it sees the same context (here,
    the account as the credentials check read it) and its result is reported like the rest."""

    async def channel_count(ctx: Context) -> CheckResult:
        return CheckResult.ok("channel count", f"{len(await ctx.channels())} channels")

    setup = Setup(file=load_file(config, os.environ), client=sandbox.client_config(), db_url=db)
    results = await run_with(setup, checks=(*CHECKS, Check("channel count", channel_count)))
    assert results["channel count"].message == "2 channels"
    assert sandbox.sandbox.request_count("GET", "/channels") == 1  # read once, shared


def test_marks_fall_back_to_ascii() -> None:
    """Output that cannot encode ✓ and ✗ gets ASCII marks."""
    assert marks_for("utf-8")[Status.OK] == "✓"
    assert marks_for("ascii")[Status.PROBLEM] == "XX"
    assert marks_for(None)[Status.OK] == "ok"


VAULT_MODULE = """
from __future__ import annotations

import attrs

from kit.configfile import Secret


@attrs.frozen(kw_only=True)
class VaultConfig:
    api_token: Secret | None = None


class VaultPlugin:
    name = "vault"
    config_type = VaultConfig

    def create(self, *, source, config):
        raise AssertionError("the doctor never builds an adapter")


plugin = VaultPlugin()
"""


def install_vault(site: Path) -> None:
    """An installed adapter (module plus dist-info) whose own keys hold a secret."""
    (site / "vault_adapter.py").write_text(VAULT_MODULE)
    info = site / "vault_adapter-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vault-adapter\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nvault = vault_adapter:plugin\n")


async def test_an_adapter_key_secret_from_an_unset_variable_is_named(
    tmp_path: Path, sandbox: SandboxServer, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret among an adapter's own keys (an API token) from an unset variable is named
    with its key and variable, like a webhook secret."""
    site = tmp_path / "site"
    site.mkdir()
    install_vault(site)
    monkeypatch.syspath_prepend(str(site))
    config = tmp_path / "vault.toml"
    config.write_text(
        f"""
[[sources]]
name = "vault-store"
adapter = "vault"
api_token = {{ env = "VAULT_TOKEN" }}
webhook_secrets = ["{WEBHOOK_SECRET}"]
channel_id = "{CHANNEL}"
""",
        encoding="utf-8",
    )
    setup = Setup(file=load_file(config, {}), client=sandbox.client_config(), db_url=db)
    secrets = (await run_with(setup))["source secrets"]
    assert secrets.status is Status.PROBLEM
    (problem,) = secrets.problems
    assert "source vault-store: api_token comes from $VAULT_TOKEN, which is not set" in (
        problem.message
    )
