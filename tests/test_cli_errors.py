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
    # (command, arguments, expected text): parser errors (unknown option, wrong type, missing argument) and range checks
    ("ipmix-fractals", ["generate"], ""),
    ("ipmix-fractals", ["generate", "OUT", "--count", "abc"], ""),
    ("ipmix-fractals", ["generate", "OUT", "--bogus"], ""),
    ("ipmix-fractals", ["preview", "x.png", "--size", "-3"], ""),
    ("robust-eval", ["clean"], ""),
    ("robust-eval", ["clean", "ck.pth", "--batch-size", "abc"], ""),
    ("robust-eval", ["clean", "ck.pth", "--bogus"], ""),
    ("robust-eval", ["nosuchcommand"], ""),
    ("robust-eval", ["make-c", "SRC", "OUT", "--preset", "cifar", "--chunk", "x"], ""),
    ("robust-eval", ["make-c", "missing_src", "OUT", "--preset", "cifar"], ""),
    ("robust-eval", ["adversarial", "ck.pth", "--alpha", "-0.5"], "--alpha must be"),
    ("robust-eval", ["adversarial", "ck.pth", "--eps", "nan"], "--eps must be"),
    ("robust-eval", ["adversarial", "ck.pth", "--eps", "inf"], "--eps must be"),
    ("robust-eval", ["clean", "ck.pth", "--workers", "-1"], "--workers must be"),
    ("robust-eval", ["clean", "ck.pth", "--device", "meta"], "--device meta"),
    ("robust-eval", ["clean", "ck.pth", "--device", "bogus"], "bogus"),
    ("timm", ["train", "--epochs", "abc"], ""),
    ("timm", ["train", "--weight-decay", "-1"], "--weight-decay must be"),
    ("timm", ["train", "--smoothing", "-1"], "--smoothing must be"),
    ("timm", ["train", "--smoothing", "2"], "--smoothing must be"),
    ("timm", ["train", "--jsd-alpha", "-1"], "--jsd-alpha must be"),
    ("timm", ["train", "--model-ema-decay", "5"], "--model-ema-decay must be"),
    ("timm", ["train", "--seed", "-1"], "--seed must be"),
    ("timm", ["train", "--decay-epochs", "0"], "--decay-epochs must be"),
    ("timm", ["train", "--device", "bogus"], "bogus"),
    ("timm", ["train", "--device", "meta"], "--device meta"),
    ("timm", ["train", "--lr", "nan"], "--lr must be"),
    ("timm", ["train", "--bogus"], ""),
    ("timm", ["nosuchcommand"], ""),
]


@pytest.mark.parametrize(
    ("command", "args", "expect"), CASES, ids=[f"{c} {' '.join(a)}" for c, a, _ in CASES]
)
def test_usage_errors_are_one_line_with_exit_2(
    command: str, args: list[str], expect: str, tmp_path: Path
) -> None:
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
    assert expect in lines[0], lines[0]
    assert "Traceback" not in run.stderr and "╭" not in run.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be written on a usage error"
