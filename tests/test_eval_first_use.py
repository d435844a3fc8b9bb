"""What a new user meets first with ``robust-eval``: a wrong --data-dir, --split on CIFAR data, an
ImageFolder model pointed at a CIFAR root, and Ctrl-C - each one clear line, nothing written by a refusal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from robust_eval_fixtures import (
    DATA_CONFIG,
    MODEL,
    make_data_root,
    trained_state_dict,
    write_project_checkpoint,
)

from robust_eval.cli import app
from robust_mix.checkpoint import save_checkpoint
from robust_mix.cli import run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("first_use")
    return {
        "ckpt": write_project_checkpoint(root / "a.pth"),
        "data": make_data_root(root / "data", n=20, with_p=False, with_c=False),
    }


def _eval(args: list[object], tmp_path: Path, capsys, monkeypatch) -> tuple[int, str]:
    """``robust-eval ARGS`` in-process from ``tmp_path``: (exit status, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["robust-eval", *map(str, args)])
    with pytest.raises(SystemExit) as stop:
        run(app, "robust-eval")
    return int(stop.value.code or 0), capsys.readouterr().err


def _one_line(code: int, err: str, tmp_path: Path) -> str:
    assert code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robust-eval: error: "), err
    assert not any(tmp_path.iterdir())  # nothing written
    return lines[0]


@pytest.mark.parametrize("command", ["all", "clean"])
def test_a_missing_data_dir_is_one_line(command, env, tmp_path, capsys, monkeypatch):
    args = [command, env["ckpt"], "--data-dir", tmp_path / "nonexistent", "--no-progress"]
    line = _one_line(*_eval(args, tmp_path, capsys, monkeypatch), tmp_path)
    assert "--data-dir" in line and "does not exist" in line


def test_split_is_refused_for_cifar_data(env, tmp_path, capsys, monkeypatch):
    args = ["clean", env["ckpt"], "--data-dir", env["data"], "--split", "train"]
    line = _one_line(*_eval(args, tmp_path, capsys, monkeypatch), tmp_path)
    assert "--split train" in line and "cifar10" in line and "test_batch" in line


def test_an_imagefolder_model_on_a_cifar_root_names_both_data_sets(env, tmp_path, capsys, monkeypatch):
    ckpt = tmp_path.parent / f"{tmp_path.name}-imagefolder.pth"
    sd = trained_state_dict()
    save_checkpoint(ckpt, sd, model=MODEL, num_classes=10, dataset="imagefolder", data_config=DATA_CONFIG)
    args = ["clean", ckpt, "--data-dir", env["data"], "--no-progress"]
    line = _one_line(*_eval(args, tmp_path, capsys, monkeypatch), tmp_path)
    assert "cifar10 (cifar-10-batches-py/)" in line and "trained on imagefolder" in line


def test_ctrl_c_says_how_many_cells_are_cached_and_that_a_rerun_resumes(env, tmp_path):
    """A real process gets SIGINT in the middle of its suites (a long PGD keeps it busy after the first
    cells): one line with the cached cells, exit status 130, and the rerun reads them."""
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "robust_eval.cli",
        "all",
        str(env["ckpt"]),
        "--data-dir",
        str(env["data"]),
    ]
    command += ["--out", str(out), "--no-progress", "--steps", "100000", "--device", "cpu"]
    process_env = {
        **os.environ,
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "PYTHONPATH": str(ROOT),
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=process_env
    )
    try:
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline
            and proc.poll() is None
            and not list(out.glob(".cache/*/clean/*.json"))
        ):
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()  # the suites skipped for want of data, then the one line
    assert "Traceback" not in err and sum("interrupted" in line for line in lines) == 1, err
    cached = len(list(out.glob(".cache/*/*/*.json")))
    assert cached >= 1
    assert lines[-1].startswith(f"robust-eval: interrupted; {cached} finished cell"), lines[-1]
    assert "run the same command again to resume" in lines[-1]
    assert not (out / "all.json").exists()
