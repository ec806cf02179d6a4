"""``etrusted-kit config check`` and ``--config`` on the commands: the file is validated
without running anything, and a flag or variable beats the file's key."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from builders import EVENT_TYPE
from cli_helpers import Run, counts, enqueue, point_at

from kit.cli._env import client_config
from kit.outbox.types import State
from kit.sandbox import SandboxConfig, SandboxServer
from kit.testing import running_sandbox

GOOD = """\
[outbox]
url = "sqlite:///etrusted-kit.db"

[etrusted]
client_id = { env = "ETRUSTED_CLIENT_ID" }
client_secret = { env = "ETRUSTED_CLIENT_SECRET" }

[[sources]]
name = "my-shop"
adapter = "shopify"
shop_domain = "my-shop.myshopify.com"
webhook_secrets = ["literal-webhook-secret-5d2e", { env = "SHOPIFY_WEBHOOK_SECRET" }]
channel_id = "chl-1"

[[sources.triggers]]
on = "order_fulfilled"
event_type = "order_shipped"
delay = "3d"
per_customer = "30d"
"""
SECRETS = {
    "ETRUSTED_CLIENT_ID": "an-id",
    "ETRUSTED_CLIENT_SECRET": "env-client-secret-81f0",
    "SHOPIFY_WEBHOOK_SECRET": "env-webhook-secret-c3a9",
}


def write(tmp_path: Path, text: str, name: str = "shop.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


# -- config check ----------------------------------------------------------------------


@pytest.mark.usefixtures("secrets_in_env")
async def test_check_accepts_a_good_file_and_summarises_it_without_secrets(
    run: Run, tmp_path: Path
) -> None:
    path = write(tmp_path, GOOD)
    result = await run("config", "check", path)
    assert result.code == 0, result.err
    assert f"{path}: ok" in result.out
    assert "outbox: sqlite:///etrusted-kit.db" in result.out
    assert (
        "source my-shop: adapter shopify, POST /webhooks/my-shop, 2 webhook secrets" in result.out
    )
    assert "on order_fulfilled -> order_shipped, delay 3d" in result.out
    assert "client_secret from $ETRUSTED_CLIENT_SECRET" in result.out
    for secret in [*SECRETS.values(), "literal-webhook-secret-5d2e"]:
        assert secret not in result.out + result.err


async def test_check_summarises_a_renewal_trigger_with_its_policy(run: Run, tmp_path: Path) -> None:
    """A Stripe source's renewal trigger shows which renewals fire, the minimum age and the
    throttle, and ``per_customer = "0d"`` shows as no throttle at all."""
    source = """
[[sources]]
name = "billing"
adapter = "stripe"
webhook_secrets = ["whsec_literal_8b1c"]
channel_id = "chl-1"
tolerance = "2m"

[[sources.triggers]]
on = "subscription_renewed"
event_type = "subscription_renewed"
renewals = "every_nth"
nth = 3
min_subscription_age = "60d"

[[sources.triggers]]
on = "subscription_created"
event_type = "subscription_started"
per_customer = "0d"
"""
    result = await run("config", "check", write(tmp_path, source))
    assert result.code == 0, result.err
    assert (
        "on subscription_renewed -> subscription_renewed, delay 0s, renewals every_nth (nth 3), "
        "subscriptions older than 60d, at most one per customer in 90d"
    ) in result.out
    assert "on subscription_created -> subscription_started, delay 0s\n" in result.out
    assert "whsec_literal_8b1c" not in result.out + result.err


async def test_check_never_prints_the_password_of_an_outbox_url(run: Run, tmp_path: Path) -> None:
    path = write(tmp_path, '[outbox]\nurl = "postgresql://shop:pa55-w0rd@db.internal/shop"\n')
    result = await run("config", "check", path)
    assert result.code == 0, result.err
    assert "postgresql://shop@db.internal/shop" in result.out
    assert "pa55-w0rd" not in result.out


async def test_check_prints_an_outbox_url_it_cannot_parse_without_its_password(
    run: Run, tmp_path: Path
) -> None:
    """An outbox URL Python's URL parser refuses (an unbalanced '[') is still summarised
    without its password, not a traceback."""
    path = write(tmp_path, '[outbox]\nurl = "postgresql://shop:pa55-w0rd@[db.internal/shop"\n')
    result = await run("config", "check", path)
    assert result.code == 0, result.err
    assert "outbox: postgresql://shop@" in result.out
    assert "pa55-w0rd" not in result.out + result.err


async def test_check_lists_every_problem_and_exits_1(run: Run, tmp_path: Path) -> None:
    """A bad file exits 1 and names each key, including a secret variable that is not set."""
    bad = GOOD.replace('delay = "3d"', 'delya = "3d"').replace('"my-shop"', '"My Shop"')
    result = await run("config", "check", write(tmp_path, bad))
    assert result.code == 1
    assert "sources[0].triggers[0].delya: unknown key (did you mean 'delay'?)" in result.err
    assert "sources[0].name: 'My Shop' is not a source name" in result.err
    assert (
        "etrusted.client_id: the environment variable ETRUSTED_CLIENT_ID is not set" in result.err
    )
    assert "sources[0].webhook_secrets[1]: the environment variable SHOPIFY_WEBHOOK_SECRET" in (
        result.err
    )
    assert "literal-webhook-secret-5d2e" not in result.err
    assert result.out == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the configuration file"),
        ("[outbox\nurl = 1\n", "is not valid TOML: "),
    ],
    ids=["missing", "not-toml"],
)
async def test_check_exits_1_for_a_file_it_cannot_read(
    run: Run, tmp_path: Path, content: str | None, message: str
) -> None:
    path = str(tmp_path / "shop.toml") if content is None else write(tmp_path, content)
    result = await run("config", "check", path)
    assert result.code == 1
    assert message in result.err
    if content is not None:
        assert "(at line 1, column 8)" in result.err


@pytest.mark.usefixtures("secrets_in_env")
async def test_check_takes_the_file_from_config_or_the_variable(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = write(tmp_path, GOOD), write(tmp_path, "colour = 1\n", "bad.toml")
    assert (await run("config", "check", "--config", good)).code == 0
    monkeypatch.setenv("ETRUSTED_KIT_CONFIG", bad)
    assert (await run("config", "check")).code == 1
    assert (await run("config", "check", "--config", good)).code == 0  # the flag wins
    assert (await run("config", "check", good)).code == 0  # so does the argument
    monkeypatch.delenv("ETRUSTED_KIT_CONFIG")
    nothing = await run("config", "check")
    assert nothing.code == 2
    assert "name a FILE" in nothing.err


# -- precedence: flag > environment variable > file > default --------------------------


async def test_status_reads_the_outbox_url_from_the_file_unless_overridden(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_file, in_env, in_flag = (str(tmp_path / f"{n}.db") for n in ("file", "env", "flag"))
    await enqueue(in_file, ["f-1"])
    await enqueue(in_env, ["e-1", "e-2"])
    await enqueue(in_flag, ["g-1", "g-2", "g-3"])
    config = write(tmp_path, f'[outbox]\nurl = "{in_file}"\n')

    async def pending(*argv: str) -> int:
        result = await run("status", "--json", *argv)
        assert result.code == 0, result.err
        count: int = json.loads(result.out)["counts"]["pending"]
        return count

    assert await pending("--config", config) == 1
    monkeypatch.setenv("ETRUSTED_KIT_CONFIG", config)
    assert await pending() == 1
    monkeypatch.setenv("ETRUSTED_KIT_DB", in_env)
    assert await pending() == 2  # the variable beats the file
    assert await pending("--db", in_flag) == 3  # the flag beats both


def test_client_settings_come_from_the_flag_then_the_variable_then_the_file(
    tmp_path: Path,
) -> None:
    """The one precedence rule, for the eTrusted client: a flag, then an ETRUSTED_* variable,
    then [etrusted] in the file, then ClientConfig's default."""
    path = write(
        tmp_path,
        '[etrusted]\nclient_id = "file-id"\nclient_secret = "file-secret"\n'
        'api_url = "http://127.0.0.1:1"\nrequest_timeout = 9\n',
    )
    args = argparse.Namespace(config=path)
    from_file = client_config({}, args=args)
    assert (from_file.client_id, from_file.api_url, from_file.request_timeout) == (
        "file-id",
        "http://127.0.0.1:1",
        9.0,
    )
    assert from_file.token_url == "https://login.etrusted.com/oauth/token"  # the default
    env = {"ETRUSTED_CLIENT_ID": "env-id", "ETRUSTED_API_URL": "http://127.0.0.1:2"}
    mixed = client_config(env, args=args, flags={"request_timeout": 2.0})
    assert (mixed.client_id, mixed.client_secret) == ("env-id", "file-secret")
    assert (mixed.api_url, mixed.request_timeout) == ("http://127.0.0.1:2", 2.0)


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxServer]:
    async with running_sandbox(SandboxConfig(seed=5, event_types=("checkout", EVENT_TYPE))) as s:
        yield s


def _etrusted_table(server: SandboxServer, secret: str) -> str:
    return (
        f'[etrusted]\napi_url = "{server.url}"\ntoken_url = "{server.token_url}"\n'
        f'client_id = "{server.sandbox.config.client_id}"\nclient_secret = "{secret}"\n'
    )


async def test_flush_delivers_with_the_outbox_and_credentials_of_the_file(
    run: Run, tmp_path: Path, sandbox: SandboxServer
) -> None:
    db = str(tmp_path / "outbox.db")
    await enqueue(db, ["c-1"])
    secret = sandbox.sandbox.config.client_secret
    config = write(tmp_path, f'[outbox]\nurl = "{db}"\n' + _etrusted_table(sandbox, secret))

    result = await run("flush", "--once", "--config", config)

    assert result.code == 0, result.err
    assert (await counts(db))[State.DELIVERED] == 1


async def test_flush_takes_the_flag_and_the_variables_over_the_file(
    run: Run, tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--db beats [outbox] url and ETRUSTED_CLIENT_SECRET beats the file's wrong secret."""
    in_file, in_flag = str(tmp_path / "file.db"), str(tmp_path / "flag.db")
    await enqueue(in_file, ["f-1"])
    await enqueue(in_flag, ["g-1"])
    config = write(
        tmp_path, f'[outbox]\nurl = "{in_file}"\n' + _etrusted_table(sandbox, "wrong-secret")
    )
    # The file's secret alone is refused, so what follows shows the variable's taking over.
    assert (await run("flush", "--once", "--config", config, "--db", in_flag)).code == 1
    point_at(monkeypatch, sandbox)
    await enqueue(in_flag, ["g-2"])

    result = await run("flush", "--once", "--config", config, "--db", in_flag)

    assert result.code == 0, result.err
    assert (await counts(in_flag))[State.DELIVERED] == 2  # g-1 stayed due: no stored pause
    assert (await counts(in_file))[State.PENDING] == 1  # the file's outbox was never used
