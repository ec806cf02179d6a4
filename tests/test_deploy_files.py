"""The shipped systemd unit and Containerfile run ``serve`` as the kit expects.

The unit is checked by ``systemd-analyze verify`` (pointed at this installation's
``etrusted-kit``, since it insists that the binary exists); both files' command lines are parsed
by the kit's own argument parser, and their stop timeouts must outlast serve's graceful stop.
No container runtime runs here, so the Containerfile is checked for its structure only.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ci import unavailable

from kit.cli import build_parser
from kit.flusher import FlusherConfig
from kit.serve.settings import DEFAULT_SHUTDOWN_GRACE

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "docs" / "etrusted-kit.service"
CONTAINERFILE = ROOT / "docs" / "deploy" / "Containerfile"
INSTALLED_AT = "/opt/etrusted-kit/bin/etrusted-kit"


def _unit() -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return sections


def _grace(argv: list[str]) -> float:
    """The longest a graceful stop of ``serve`` with these arguments may take."""
    args = build_parser().parse_args(argv)
    assert args.command == "serve"
    shutdown = args.shutdown_grace if args.shutdown_grace is not None else DEFAULT_SHUTDOWN_GRACE
    flusher = args.grace_period if args.grace_period is not None else FlusherConfig().grace_period
    return float(shutdown) + float(flusher)


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value.strip())
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """Unknown keys, bad values and a wrong section are what verify reports."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed", what="the systemd unit check")
    binary = Path(sys.executable).parent / "etrusted-kit"
    assert binary.exists(), binary
    unit = tmp_path / "etrusted-kit.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_AT, str(binary)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Unknown" not in done.stderr, done.stderr


def test_the_unit_restarts_on_failure_and_waits_out_the_graceful_stop() -> None:
    service = _unit()["Service"]
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0] == INSTALLED_AT
    assert service["Restart"] == ["on-failure"]
    assert service["KillSignal"] == ["SIGTERM"]
    (timeout,) = service["TimeoutStopSec"]
    assert _seconds(timeout) > _grace(argv[1:])


def test_the_unit_is_hardened_and_writes_only_its_state_directory() -> None:
    service = _unit()["Service"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert service[key] == ["yes"], key
    assert service["ProtectSystem"] == ["strict"]
    (state,) = service["StateDirectory"]
    db = [v for v in service["Environment"] if v.startswith("ETRUSTED_KIT_DB=")]
    assert db == [f"ETRUSTED_KIT_DB=/var/lib/{state}/outbox.db"]
    assert service["EnvironmentFile"], "secrets come from a file, not the unit"
    assert not [v for v in service["Environment"] if "SECRET" in v]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def test_the_containerfile_only_copies_what_exists() -> None:
    """Every COPY source from the build context is in the repository (the build runs from
    its root)."""
    for word, rest in _instructions():
        if word == "COPY" and not rest.startswith("--from"):
            *sources, _target = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_the_container_runs_serve_as_a_non_root_user_with_a_volume() -> None:
    stage = _final_stage()
    words = [word for word, _ in stage]
    for needed in ("USER", "VOLUME", "ENTRYPOINT", "CMD", "STOPSIGNAL"):
        assert needed in words, needed
    user = next(rest for word, rest in stage if word == "USER").split(":")[0]
    assert user not in {"root", "0"}
    # The user comes before the command: nothing after it switches back.
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert words.count("USER") == 1

    volumes = json.loads(next(rest for word, rest in stage if word == "VOLUME"))
    env = " ".join(rest for word, rest in stage if word == "ENV")
    db = re.search(r"ETRUSTED_KIT_DB=(\S+)", env)
    assert db is not None
    assert str(Path(db.group(1)).parent) in volumes

    entrypoint = json.loads(next(rest for word, rest in stage if word == "ENTRYPOINT"))
    cmd = json.loads(next(rest for word, rest in stage if word == "CMD"))
    assert entrypoint[0] == "etrusted-kit"
    assert _grace(entrypoint[1:] + cmd) < 30, "docs/operations.md asks for a 30 s stop timeout"
    assert next(rest for word, rest in stage if word == "STOPSIGNAL") == "SIGTERM"


@pytest.mark.parametrize("path", [UNIT, CONTAINERFILE])
def test_the_operations_guide_names_each_file(path: Path) -> None:
    guide = (ROOT / "docs" / "operations.md").read_text()
    assert str(path.relative_to(ROOT / "docs")) in guide
