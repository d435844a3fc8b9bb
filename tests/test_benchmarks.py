"""Every benchmark script runs (``--smoke``), so none can rot while the docs cite its numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))
#: scripts whose --smoke run is part of another's (scaling.py runs the sections of scaling_eval.py)
RUN_BY_OTHERS = {"scaling_eval.py"}


def test_every_benchmark_is_collected():
    assert len(BENCHMARKS) >= 6, [p.name for p in BENCHMARKS]
    assert "scaling.py" in {p.name for p in BENCHMARKS}  # make-c with 1 and 2 processes


@pytest.mark.slow
@pytest.mark.parametrize(
    "script", [p for p in BENCHMARKS if p.name not in RUN_BY_OTHERS], ids=lambda p: p.stem
)
def test_benchmark_smoke_run(script: Path, tmp_path: Path):
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(script.parents[1]), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "|" in run.stdout or "ratio" in run.stdout, run.stdout[-1000:]
    assert list(tmp_path.iterdir()) == [], "a smoke run must not write into the working directory"


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.stem)
def test_benchmark_help_exits_cleanly(script: Path):
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(script.parents[1]), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--smoke" in run.stdout


def test_the_transform_table_says_what_its_last_columns_are(tmp_path: Path):
    script = next(p for p in BENCHMARKS if p.name == "transforms.py")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(script.parents[1]), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, str(script), "--smoke"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()
    assert "| speed vs timm AugMix | ms over identity |" in lines[3]
    assert lines[1].startswith("speed vs timm AugMix = AugMix's ms per image / this transform's")
    assert "ms over identity = this transform's ms per image minus that of the identity" in lines[1]
    identity = next(line for line in lines if "identity (A.NoOp)" in line)
    assert identity.endswith("| 0.000 |")
