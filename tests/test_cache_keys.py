"""The cell cache is keyed by the data's content, and a resumed run writes the same JSON as a fresh one."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from robust_eval_fixtures import SUBPROCESS_ENV, make_context, make_data_root, write_project_checkpoint

from robust_eval.cache import fingerprint
from robust_eval.suites import run_corruptions


def test_fingerprint_follows_files_not_names(tmp_path):
    a = tmp_path / "fog.npy"
    np.save(a, np.zeros((2, 2), np.uint8))
    first = fingerprint([a])
    assert fingerprint([a]) == first
    np.save(tmp_path / "new.npy", np.ones((2, 2), np.uint8))
    (tmp_path / "new.npy").replace(a)  # a different file under the same name
    assert fingerprint([a]) != first
    folder = tmp_path / "sev"
    folder.mkdir()
    before = fingerprint([folder])
    (folder / "x.png").write_bytes(b"1")
    assert fingerprint([folder]) != before
    assert fingerprint([tmp_path / "missing"]) == fingerprint([])


def test_replacing_a_corruption_array_is_not_served_from_the_cache(tmp_path):
    ckpt = write_project_checkpoint(tmp_path / "ck.pth")
    data = make_data_root(tmp_path / "data", n=20, with_p=False)
    cache = tmp_path / "cache"
    first = run_corruptions(make_context(ckpt, data, cache))
    fog = data / "CIFAR-10-C" / "fog.npy"
    arr = np.load(fog)
    rng = np.random.default_rng(3)
    np.save(fog, rng.integers(0, 256, arr.shape, dtype=np.uint8))  # pure noise: other errors
    second = run_corruptions(make_context(ckpt, data, cache))  # no --fresh
    assert second["c"]["errors"]["fog"] != first["c"]["errors"]["fog"]
    assert second["c"]["errors"]["gaussian_noise"] == first["c"]["errors"]["gaussian_noise"]  # still cached


@pytest.mark.slow
def test_resumed_all_json_is_byte_identical_to_a_fresh_run(tmp_path):
    ckpt = write_project_checkpoint(tmp_path / "ck.pth")
    data = make_data_root(tmp_path / "data", n=20)
    cmd = [sys.executable, "-m", "robust_eval.cli"]
    common = ["--data-dir", str(data), "--steps", "1"]

    def run(*args: str) -> None:
        done = subprocess.run([*cmd, *args], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]

    run("all", str(ckpt), *common, "--out", str(tmp_path / "fresh"))
    # an interrupted run: some suites finished (their cells cached), the rest not
    run("adversarial", str(ckpt), *common, "--out", str(tmp_path / "resumed"))
    run("ood", str(ckpt), "--data-dir", str(data), "--out", str(tmp_path / "resumed"))
    run("all", str(ckpt), *common, "--out", str(tmp_path / "resumed"))
    fresh = (tmp_path / "fresh" / "all.json").read_bytes()
    resumed = (tmp_path / "resumed" / "all.json").read_bytes()
    assert fresh.replace(b"/fresh/", b"/X/") == resumed.replace(b"/resumed/", b"/X/")
