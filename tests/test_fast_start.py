"""Fast start: ``--help`` and a usage error are answered before torch is imported.

Each command runs in a fresh interpreter through its launcher (what the console script does); the
interpreter then reports whether torch, timm or Albumentations were loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from robust_eval_fixtures import SUBPROCESS_ENV

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "timm", "albumentations")

PROBE = """
import json, sys
HEAVY = sys.argv.pop(1).split(",")
from robust_mix import launch
command, argv = sys.argv[1], sys.argv[2:]
sys.argv = [command, *argv]
try:
    launch.COMMANDS[command]()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in HEAVY if m in sys.modules]}))
"""


def run_probe(command: str, *argv: str) -> dict:
    env = {**SUBPROCESS_ENV, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(HEAVY), command, *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("command", "argv", "code"),
    [
        ("robust-eval", ["--help"], 0),
        ("robust-eval", ["all", "--help"], 0),
        ("robust-eval", ["all", "ckpt.pth", "--batch-size", "0"], 2),
        ("robust-eval", ["all", "ckpt.pth", "--no-such-option"], 2),
        ("robust-eval", ["make-c", "--help"], 0),
        ("ipmix-fractals", ["--help"], 0),
        ("ipmix-fractals", ["generate", "out", "--count", "0"], 2),
        ("timm", ["--help"], 0),
        ("timm", ["train", "--help"], 0),
        ("timm", ["train", "--epochs", "-1"], 2),
    ],
)
def test_help_and_usage_errors_do_not_import_torch(command, argv, code):
    got = run_probe(command, *argv)
    assert got == {"code": code, "loaded": []}
