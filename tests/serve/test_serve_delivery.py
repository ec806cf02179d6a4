"""``etrusted-kit serve`` end to end: a signed webhook in over HTTP, one event out to eTrusted."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import pytest
from cli_helpers import Run
from journal.deliveries import SECRET

from kit.outbox import Outbox, State
from kit.sandbox import SandboxServer

from .serve_helpers import (
    ROUTE,
    SECRET_VARIABLE,
    SOURCE,
    fulfilment,
    histories,
    key_of,
    post,
    serve_env,
    serving,
    stop,
    wait_until,
    write_config,
)


async def test_a_signed_fulfilment_reaches_the_sandbox_exactly_once(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """A signed Shopify fulfilment POSTed to /webhooks/NAME is answered 200 once it is stored,
    a redelivery of it is a duplicate, and the flusher in the same process delivers one
    event to eTrusted for it."""
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    async with (
        serving(config, env=serve_env(), stderr_path=tmp_path / "serve.err") as served,
        aiohttp.ClientSession() as session,
    ):
        assert served.routes == f"POST {ROUTE} ({SOURCE}, shopify)"
        first = await post(session, served.url, fulfilment("1001"))
        again = await post(session, served.url, fulfilment("1001"))
        assert first == (200, {"status": "accepted", "delivery_id": "w-1001"})
        assert again == (200, {"status": "duplicate", "delivery_id": "w-1001"})

        async def delivered() -> bool:
            async with Outbox.from_url(db) as outbox:
                counts = (await outbox.stats()).counts
            return counts[State.DELIVERED] == 1

        await wait_until(delivered)
        assert await stop(served) == 0

    accepted = [e for e in sandbox.sandbox.accepted_events() if e.transaction_reference == "#1001"]
    assert len(accepted) == 1
    assert accepted[0].type == "order_shipped"
    async with Outbox.from_url(db) as outbox:
        entry = await outbox.get(key_of("1001"))
        assert entry.event_ref == accepted[0].event_ref
        assert [e.key for e in await outbox.entries()] == [key_of("1001")]
    (history,) = (await histories(db, ["1001"])).values()
    assert [row.kind for row in history.events] == ["order_fulfilled"]
    assert [(d.kind, d.key, d.outcome) for d in history.decisions] == [
        ("enqueue", key_of("1001"), "enqueued")
    ]


async def test_serve_runs_on_the_sandboxs_export_line(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """A file without [etrusted], and the variables the sandbox's ``export`` line sets: serve
    takes the sandbox's URLs and credentials from the environment and delivers to it."""
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=None)
    env = serve_env(
        ETRUSTED_API_URL=sandbox.url,
        ETRUSTED_TOKEN_URL=sandbox.token_url,
        ETRUSTED_CLIENT_ID=sandbox.sandbox.config.client_id,
        ETRUSTED_CLIENT_SECRET=sandbox.sandbox.config.client_secret,
    )
    async with (
        serving(config, env=env, stderr_path=tmp_path / "serve.err") as served,
        aiohttp.ClientSession() as session,
    ):
        assert (await post(session, served.url, fulfilment("1002")))[0] == 200

        async def delivered() -> bool:
            return len(sandbox.sandbox.accepted_events()) == 1

        await wait_until(delivered)
        assert await stop(served) == 0
    (accepted,) = sandbox.sandbox.accepted_events()
    assert accepted.transaction_reference == "#1002"


async def test_serve_stops_on_sigint_as_on_sigterm(
    tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """SIGINT is a graceful stop too (exit 0, the flusher's counters on stderr), not a
    KeyboardInterrupt traceback."""
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    async with serving(config, env=serve_env(), stderr_path=tmp_path / "serve.err") as served:
        assert await stop(served, signal.SIGINT) == 0
    assert '"flusher": ' in served.stderr
    assert "Traceback" not in served.stderr


async def test_a_configuration_without_sources_is_refused(
    run: Run, tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    """Nothing starts without a webhook route to offer: exit 1, and the message says what
    to add."""
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox, sources="")
    result = await run("serve", "--config", str(config), "--port", "0")
    assert result.code == 1
    assert "no [[sources]] in the configuration" in result.err
    assert not Path(db.removeprefix("sqlite:///")).exists()


async def test_serve_without_a_configuration_file_says_how_to_give_one(run: Run) -> None:
    result = await run("serve", "--port", "0")
    assert result.code == 1
    assert "--config FILE or ETRUSTED_KIT_CONFIG" in result.err


async def test_an_unknown_adapter_is_refused_before_anything_opens(
    run: Run, tmp_path: Path, sandbox: SandboxServer, db: str
) -> None:
    sources = f'[[sources]]\nname = "{SOURCE}"\nadapter = "shopfy"\nchannel_id = "chl-1"\n'
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox, sources=sources)
    result = await run("serve", "--config", str(config), "--port", "0")
    assert result.code == 1
    assert "unknown adapter 'shopfy'" in result.err
    assert not Path(db.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize(
    ("option", "value"), [("--port", "70000"), ("--shutdown-grace", "0"), ("--host", " ")]
)
async def test_a_bad_listener_setting_names_its_option(
    run: Run,
    tmp_path: Path,
    sandbox: SandboxServer,
    db: str,
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    value: str,
) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, SECRET)
    config = write_config(tmp_path / "shop.toml", db=db, sandbox=sandbox)
    result = await run("serve", "--config", str(config), option, value)
    assert result.code == 1
    assert f"etrusted-kit: error: {option} must" in result.err
