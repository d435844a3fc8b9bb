"""One failure format for the three commands: ``<command>: error: ...`` on one line, exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(ROOT), "COLUMNS": "80"}

CASES = [
    # (command, arguments): parser errors (unknown option, wrong type, missing argument) and range checks
    ("ipmix-fractals", ["generate"]),
    ("ipmix-fractals", ["generate", "OUT", "--count", "abc"]),
    ("ipmix-fractals", ["generate", "OUT", "--bogus"]),
    ("ipmix-fractals", ["preview", "x.png", "--size", "-3"]),
    ("robust-eval", ["clean"]),
    ("robust-eval", ["clean", "ck.pth", "--batch-size", "abc"]),
    ("robust-eval", ["clean", "ck.pth", "--bogus"]),
    ("robust-eval", ["nosuchcommand"]),
    ("robust-eval", ["make-c", "SRC", "OUT", "--preset", "cifar", "--chunk", "x"]),
    ("robust-eval", ["make-c", "missing_src", "OUT", "--preset", "cifar"]),
    ("timm", ["train", "--epochs", "abc"]),
    ("timm", ["train", "--bogus"]),
    ("timm", ["nosuchcommand"]),
]


@pytest.mark.parametrize(("command", "args"), CASES, ids=[f"{c} {' '.join(a)}" for c, a in CASES])
def test_usage_errors_are_one_line_with_exit_2(command: str, args: list[str], tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "robust_mix", command, *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=180,
    )
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, run.stderr
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"{command}: error: "), lines[0]
    assert "Traceback" not in run.stderr and "╭" not in run.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be written on a usage error"
