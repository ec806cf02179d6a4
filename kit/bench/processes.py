"""Child processes (sandbox, flushers), so the API stand-in and the measured kit share no core."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from kit.bench.config import BenchConfig
from kit.bench.payloads import EVENT_TYPE
from kit.client import ETrustedClient
from kit.config import ClientConfig
from kit.errors import KitError, NetworkError

SANDBOX_CLIENT_ID = "sandbox-client"
SANDBOX_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 (the sandbox's published test credentials)


class Child:
    """A child process whose stderr goes to a file, shown when it fails."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.log = workdir / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(
        self, argv: Sequence[str], env: Mapping[str, str], *, pipes: bool = False
    ) -> None:
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stderr=log,
                env=dict(env),
            )

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            lines = self.log.read_text(errors="replace").strip().splitlines()
            return " | ".join(lines[-5:])
        return ""

    def failed(self, what: str) -> KitError:
        code = None if self.proc is None else self.proc.returncode
        return KitError(f"{self.name} {what} (exit code {code}): {self.tail()}")

    async def send(self, line: str) -> None:
        assert self.proc is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109 (a bound)
        assert self.proc is not None
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                raw = await self.proc.stdout.readline()
        except TimeoutError as exc:
            raise self.failed(f"did not answer within {timeout:g} s") from exc
        if not raw:
            await self.proc.wait()
            raise self.failed("exited early")
        data: dict[str, Any] = json.loads(raw)
        return data

    async def stop(self, timeout: float = 20.0) -> None:  # noqa: ASYNC109 (a bound)
        proc = self.proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
            with contextlib.suppress(ConnectionError):
                await proc.stdin.wait_closed()

    async def wait(self, timeout: float) -> int:  # noqa: ASYNC109 (a bound)
        assert self.proc is not None
        try:
            async with asyncio.timeout(timeout):
                return await self.proc.wait()
        except TimeoutError as exc:
            raise self.failed(f"did not finish within {timeout:g} s") from exc


class SandboxProcess:
    """``python -m kit sandbox`` in its own process, so the kit and the API do not share a core."""

    def __init__(self, config: BenchConfig, workdir: Path, name: str, faults: Sequence[Any] = ()):
        self._config = config
        self._ready = workdir / f"{name}.ready.json"
        self._faults = faults
        self.child = Child(name, workdir)
        self.api_url = ""
        self.token_url = ""

    async def start(self) -> None:
        argv = [self._config.python, "-m", "kit", "sandbox", "--port", "0", "--seed", "1"]
        argv += ["--token-expires-in", "86400", "--ready-file", str(self._ready)]
        for fault in self._faults:
            argv += ["--fault", json.dumps(fault)]
        await self.child.start(argv, self._config.environ)
        assert self.child.proc is not None
        async with asyncio.timeout(60):
            while not self._ready.exists():
                if self.child.proc.returncode is not None:
                    raise self.child.failed("exited before it was ready")
                await asyncio.sleep(0.02)
        info = json.loads(self._ready.read_text())
        self.api_url, self.token_url = info["api_url"], info["token_url"]

    def client_config(self) -> ClientConfig:
        return ClientConfig(
            client_id=SANDBOX_CLIENT_ID,
            client_secret=SANDBOX_CLIENT_SECRET,
            api_url=self.api_url,
            token_url=self.token_url,
        )

    def client_spec(self) -> dict[str, str]:
        return {"api_url": self.api_url, "token_url": self.token_url}

    async def reset(self, admin: ETrustedClient, session: aiohttp.ClientSession) -> None:
        """A fresh account (the sandbox keeps every accepted event in memory) with our type, set
        up as the README tells users to: the type created, then its invites switched on."""
        try:
            async with session.post(f"{self.api_url}/_sandbox/reset") as response:
                if response.status != 204:
                    raise NetworkError(f"sandbox reset answered HTTP {response.status}")
            for fault in self._faults:  # a reset clears the faults too
                async with session.post(f"{self.api_url}/_sandbox/faults", json=fault) as response:
                    if response.status != 201:
                        raise NetworkError(f"sandbox fault answered HTTP {response.status}")
        except aiohttp.ClientError as exc:
            raise NetworkError(f"sandbox reset failed: {exc}") from exc
        created = await admin.create_event_type(EVENT_TYPE, active=True)
        await admin.update_invite_settings_for_event_type(created.id, {"enabled": True})

    async def stop(self) -> None:
        await self.child.stop()


def child_env(config: BenchConfig, sandbox: SandboxProcess, db: str) -> dict[str, str]:
    env = dict(config.environ)
    env.update(
        ETRUSTED_API_URL=sandbox.api_url,
        ETRUSTED_TOKEN_URL=sandbox.token_url,
        ETRUSTED_CLIENT_ID=SANDBOX_CLIENT_ID,
        ETRUSTED_CLIENT_SECRET=SANDBOX_CLIENT_SECRET,
        ETRUSTED_KIT_DB=db,
    )
    return env


class FlusherChild:
    """``python -m kit.bench``: one flusher process that starts on "go" and reports back."""

    def __init__(self, config: BenchConfig, workdir: Path, name: str) -> None:
        self._config = config
        self.child = Child(name, workdir)

    async def start(self, spec: Mapping[str, Any]) -> None:
        await self.child.start(
            [self._config.python, "-m", "kit.bench"], self._config.environ, pipes=True
        )
        await self.child.send(json.dumps(spec))
        ready = await self.child.receive(60)
        if not ready.get("ready"):
            raise self.child.failed(f"sent {ready!r} instead of ready")

    async def go(self) -> None:
        await self.child.send("go")

    async def result(self, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109 (a bound)
        data = await self.child.receive(timeout)
        await self.child.wait(30)
        return data

    async def stop(self) -> None:
        await self.child.stop()
