"""The console entry points set the environment before any library import (robust_mix.launch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env_without_the_flag() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


@pytest.mark.parametrize("command", ["ipmix-fractals", "robust-eval", "timm"])
def test_entry_point_never_reaches_the_network(command: str, tmp_path: Path) -> None:
    """Albumentations' import-time update check is switched off by the launcher, not by the libraries."""
    code = f"""
import socket, sys
calls = []
real = socket.getaddrinfo
def spy(*a, **k):
    calls.append(a[0])
    raise OSError("offline")
socket.getaddrinfo = spy
sys.argv = [{command!r}, "--help"]
from robust_mix.launch import COMMANDS
try:
    COMMANDS[{command!r}]()
except SystemExit as exc:
    code = exc.code
import albumentations  # loaded by every command
assert not calls, calls
print("offline-clean", code)
"""
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env_without_the_flag(),
        cwd=tmp_path,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] in ("offline-clean 0", "offline-clean None")


def test_python_m_robust_mix_dispatches_and_rejects_unknown_commands(tmp_path: Path) -> None:
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "robust_mix",
            "ipmix-fractals",
            "preview",
            str(tmp_path / "s.png"),
            "-n",
            "2",
            "-s",
            "16",
        ],
        capture_output=True,
        text=True,
        env=_env_without_the_flag(),
        timeout=180,
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert (tmp_path / "s.png").stat().st_size > 0
    bad = subprocess.run(
        [sys.executable, "-m", "robust_mix", "bogus"],
        capture_output=True,
        text=True,
        env=_env_without_the_flag(),
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "COMMAND" in bad.stderr


def test_installed_scripts_point_at_the_launcher() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {
        "ipmix-fractals": "robust_mix.launch:ipmix_fractals",
        "robust-eval": "robust_mix.launch:robust_eval",
        "timm": "robust_mix.launch:timm",
    }
