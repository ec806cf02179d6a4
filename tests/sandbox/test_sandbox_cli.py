"""``etrusted-kit sandbox`` as a real subprocess: ready file, round trip, SIGTERM, --state."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sandbox_helpers import CHANNEL, make_event

REPO_ROOT = Path(__file__).parents[2]
READY_DEADLINE = 30.0  # generous: only a hung process gets anywhere near it


@asynccontextmanager
async def sandbox_process(
    tmp_path: Path, *extra: str, name: str = "ready.json"
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, Any], Path]]:
    ready = tmp_path / name
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kit",
        "sandbox",
        "--port",
        "0",
        "--ready-file",
        str(ready),
        *extra,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        info = await _wait_for_ready(proc, ready)
        yield proc, info, ready
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _wait_for_ready(proc: asyncio.subprocess.Process, ready: Path) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_DEADLINE
    while not ready.exists():
        if proc.returncode is not None:
            _, err = await proc.communicate()
            pytest.fail(f"sandbox exited with {proc.returncode}: {err.decode()}")
        if loop.time() > deadline:
            pytest.fail("sandbox did not write its ready file in time")
        await asyncio.sleep(0.05)
    info: dict[str, Any] = json.loads(ready.read_text())
    return info


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _token(http: aiohttp.ClientSession, info: dict[str, Any]) -> dict[str, str]:
    form = {
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "grant_type": "client_credentials",
        "audience": "https://api.etrusted.com",
    }
    async with http.post(info["token_url"], data=form) as resp:
        assert resp.status == 200
        return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


async def test_cli_round_trip_and_graceful_sigterm(tmp_path: Path) -> None:
    async with sandbox_process(tmp_path) as (proc, info, ready), aiohttp.ClientSession() as http:
        assert info["pid"] == proc.pid
        assert info["api_url"].startswith("http://127.0.0.1:")
        assert info["token_url"] == info["api_url"] + "/oauth/token"
        headers = await _token(http, info)
        async with http.post(info["api_url"] + "/events", json=make_event(), headers=headers) as r:
            assert r.status == 202
            ref = (await r.json())["EventRef"]
        async with http.get(info["api_url"] + f"/events/{ref}", headers=headers) as r:
            assert r.status == 200
        async with http.get(info["api_url"] + "/_sandbox/events") as r:
            assert [e["eventRef"] for e in await r.json()] == [ref]
        code, out, err = await _stop(proc)
    assert code == 0, err
    assert info["api_url"] in out
    # The variables the docs' examples read, the channel included, ready to paste.
    exports = [line for line in out.splitlines() if line.startswith("export ")]
    assert exports == [
        f"export ETRUSTED_API_URL={info['api_url']} ETRUSTED_TOKEN_URL={info['token_url']} "
        "ETRUSTED_CLIENT_ID=sandbox-client ETRUSTED_CLIENT_SECRET=sandbox-secret",
        f"export ETRUSTED_CHANNEL_ID={CHANNEL}",
    ]
    assert not ready.exists()  # removed on a graceful stop


async def test_cli_state_faults_and_credentials_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "sandbox-state.json"
    fault = json.dumps({"kind": "status", "path": "/events", "status": 503, "times": 1})
    options = ("--state", str(state), "--seed", "5", "--fault", fault)
    async with sandbox_process(tmp_path, *options) as (proc, info, _), aiohttp.ClientSession() as h:
        headers = await _token(h, info)
        url = info["api_url"] + "/events"
        async with h.post(url, json=make_event("order-1"), headers=headers) as r:
            assert r.status == 503
            assert await r.json() == {"Message": "This service is temporarily unavailable"}
        async with h.post(url, json=make_event("order-1"), headers=headers) as r:
            assert r.status == 202
            first = (await r.json())["EventRef"]
        code, _, err = await _stop(proc)
    assert code == 0, err
    assert state.exists()

    async with (
        sandbox_process(tmp_path, "--state", str(state), "--seed", "5") as (
            proc,
            info,
            _,
        ),
        aiohttp.ClientSession() as h,
    ):
        headers = await _token(h, info)
        async with h.get(info["api_url"] + f"/events/{first}", headers=headers) as r:
            assert r.status == 200
        async with h.post(
            info["api_url"] + "/events", json=make_event("order-1"), headers=headers
        ) as r:
            assert r.status == 202
            second = (await r.json())["EventRef"]
        assert second != first  # same seed, but the id stream continued
        invites = info["api_url"] + f"/channels/{CHANNEL}/invites"
        async with h.get(invites, params={"query": "order-1"}, headers=headers) as r:
            items = (await r.json())["items"]
        assert [(i["event"], i["status"]["name"]) for i in items] == [
            (second, "REJECTED"),
            (first, "SCHEDULED"),
        ]
        code, _, err = await _stop(proc)
    assert code == 0, err


async def test_cli_rejects_a_bad_fault(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kit",
        "sandbox",
        "--port",
        "0",
        "--fault",
        '{"kind": "explode"}',
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    assert "unknown fault kind 'explode'" in err.decode()


async def test_cli_seeds_extra_event_types(tmp_path: Path) -> None:
    extra = ("--event-type", "order_shipped", "--event-type", "subscription_renewed")
    async with (
        sandbox_process(tmp_path, *extra) as (proc, info, _),
        aiohttp.ClientSession() as http,
    ):
        headers = await _token(http, info)
        async with http.get(info["api_url"] + "/event-types", headers=headers) as r:
            names = {t["name"]: t["active"] for t in await r.json()}
        code, _, err = await _stop(proc)
    assert code == 0, err
    assert names == {"checkout": True, "order_shipped": True, "subscription_renewed": True}
