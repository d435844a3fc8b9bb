"""make-c, make-p and ipmix-fractals generate split over processes give the files of one process.

Three ways to split (robust_mix.distributed): ``--shard K/N`` + ``--merge``, a SLURM array (same, from
the environment) and torchrun (rank 0 merges after a barrier). Each is compared byte for byte with a
one-process run of the same command: arrays, labels, image / video files and the manifest (which
holds no timestamp).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
import pytest
import typer
from skimage import data
from typer.testing import CliRunner

from albumentations_ipmix import cli as fractals_cli
from robust_eval.generate_cli import register
from robust_mix.shard_parts import PART_MANIFEST, SHARDS_DIR

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
#: The environment of a plain process: no launcher variables from the machine running the tests.
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **extra)
    return env


def _robust_eval(*args: object, env: dict[str, str] | None = None):
    app = typer.Typer()
    register(app)
    clean = dict.fromkeys(LAUNCH_VARS)
    return runner.invoke(app, [*map(str, args), "--no-progress"], env={**clean, **(env or {})})


def _fractals(*args: object, env: dict[str, str] | None = None):
    clean = dict.fromkeys(LAUNCH_VARS)
    return runner.invoke(fractals_cli.app, [str(a) for a in args], env={**clean, **(env or {})})


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(result) -> str:
    text = result.output if result.stderr_bytes is None else result.stderr
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """22 real 32 px crops (scikit-image photographs): 6 chunks of 4 with a short last one."""
    crops = []
    for im in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket()):
        for k in range(6):
            crop = im[k * 30 : k * 30 + 200, k * 40 : k * 40 + 200]
            crops.append(cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA))
    return np.stack(crops[:22])


@pytest.fixture
def npy_source(tmp_path: Path, photos: np.ndarray) -> tuple[Path, Path]:
    np.save(tmp_path / "clean.npy", photos)
    np.save(tmp_path / "labels.npy", np.arange(len(photos)) % 3)
    return tmp_path / "clean.npy", tmp_path / "labels.npy"


@pytest.fixture
def folder_source(tmp_path: Path, photos: np.ndarray) -> Path:
    root = tmp_path / "tree"
    for i, im in enumerate(photos[:10]):
        path = root / f"class{i % 2}" / f"img{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), im[:, :, ::-1])
    return root


C_ARGS = (
    "--preset",
    "cifar",
    "--corruptions",
    "contrast,gaussian_noise",
    "--severities",
    "1,3",
    "--chunk",
    4,
)
P_ARGS = ("--preset", "cifar", "--perturbations", "brightness,gaussian_noise", "--difficulties", "1,2")


def _make_c(src: Path, out: Path, labels: Path | None, *extra: object, env=None):
    lab = ("--labels", labels, "--name", "set") if labels is not None else ("--size", 32, "--format", "PNG")
    return _robust_eval("make-c", src, out, *C_ARGS, *lab, *extra, env=env)


# --------------------------------------------------------------------------------------------------
# --shard K/N (and a SLURM array) + --merge
# --------------------------------------------------------------------------------------------------
def test_make_c_shards_and_merge_equal_one_process(tmp_path, npy_source):
    src, labels = npy_source
    assert _make_c(src, tmp_path / "one", labels).exit_code == 0
    out = tmp_path / "split"
    first = _make_c(src, out, labels, "--shard", "0/2")
    assert first.exit_code == 0, first.output
    assert "wrote shard 0/2" in first.output and "--merge" in first.output
    # nothing of the final layout before the merge: only the hidden part
    assert sorted(p.name for p in (out / "set-C").iterdir()) == [SHARDS_DIR]
    part = json.loads((out / "set-C" / SHARDS_DIR / "0-of-2" / PART_MANIFEST).read_text())
    assert part["done"] and part["shard"] == [0, 2] and part["span"] == [0, 12]  # chunks 0..2 of 6
    assert sorted(part["files"]) == ["contrast", "gaussian_noise"]
    # shard 1 as a SLURM array task 11 of the range 10..11
    slurm = {"SLURM_ARRAY_TASK_ID": "11", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "10"}
    assert _make_c(src, out, labels, env=slurm).exit_code == 0
    merged = _make_c(src, out, labels, "--merge")
    assert merged.exit_code == 0, merged.output
    assert _tree(out) == _tree(tmp_path / "one")  # arrays, labels, manifest; no .shards left
    assert not (out / "set-C" / SHARDS_DIR).exists()


def test_make_c_image_folder_shards_equal_one_process(tmp_path, folder_source):
    assert _make_c(folder_source, tmp_path / "one", None).exit_code == 0
    out = tmp_path / "split"
    for k in range(3):  # 3 chunks of 4 images over 3 shards; shard 0 of 3 gets chunk 0
        assert _make_c(folder_source, out, None, "--shard", f"{k}/3").exit_code == 0
    assert _make_c(folder_source, out, None, "--merge").exit_code == 0
    assert _tree(out) == _tree(tmp_path / "one")


@pytest.mark.parametrize("layout", ["npy", "mp4"])
def test_make_p_shards_and_merge_equal_one_process(tmp_path, npy_source, folder_source, layout):
    src, extra = (npy_source[0], ("--name", "set")) if layout == "npy" else (folder_source, ("--size", 32))
    args = ("make-p", src, None, *P_ARGS, "--chunk", 3, *extra)

    def run(out: Path, *more: object):
        result = _robust_eval(*[out if a is None else a for a in args], *more)
        assert result.exit_code == 0, result.output

    run(tmp_path / "one")
    for k in range(2):
        run(tmp_path / "split", "--shard", f"{k}/2")
    run(tmp_path / "split", "--merge")
    assert _tree(tmp_path / "split") == _tree(tmp_path / "one")


def test_more_shards_than_chunks_leave_some_shards_empty_and_still_merge(tmp_path, npy_source):
    src = npy_source[0]
    args = ("make-p", src, None, "--preset", "cifar", "--perturbations", "rotate", "--name", "set")
    assert _robust_eval(*[tmp_path / "one" if a is None else a for a in args]).exit_code == 0
    split = [tmp_path / "split" if a is None else a for a in args]
    shard0 = _robust_eval(*split, "--shard", "0/3")  # 22 images = 1 chunk of 64: shard 2 does it
    assert shard0.exit_code == 0 and "no images" in shard0.output
    for extra in (["--shard", "1/3"], ["--shard", "2/3"], ["--merge"]):
        assert _robust_eval(*split, *extra).exit_code == 0
    assert _tree(tmp_path / "split") == _tree(tmp_path / "one")


def test_fractals_shards_and_merge_equal_one_process(tmp_path):
    args = ("--count", 7, "--size", 24, "--seed", 5, "--quiet")
    assert _fractals("generate", tmp_path / "one", *args).exit_code == 0
    out = tmp_path / "split"
    for k in range(3):
        result = _fractals("generate", out, *args, "--shard", f"{k}/3")
        assert result.exit_code == 0, result.output
    assert not (out / fractals_cli.MANIFEST_NAME).exists()  # shards never write the final layout
    result = _fractals("generate", out, *args, "--merge", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 7
    assert _tree(out) == _tree(tmp_path / "one")


def test_merge_with_a_shard_missing_refuses_with_one_line_naming_it(tmp_path, npy_source):
    src, labels = npy_source
    out = tmp_path / "out"
    for k in (0, 2):
        assert _make_c(src, out, labels, "--shard", f"{k}/4").exit_code == 0
    result = _make_c(src, out, labels, "--merge")
    assert result.exit_code == 2
    line = _one_line(result)
    assert "1/4, 3/4" in line and "--merge again" in line
    assert not (out / "set-C" / "manifest.json").exists() and not (out / "set-C" / "labels.npy").exists()
    # the shards of other options (another seed) never count
    assert _make_c(src, out, labels, "--shard", "1/4", "--seed", 1).exit_code == 0
    assert "1/4, 3/4" in _one_line(_make_c(src, out, labels, "--merge"))
    # nothing made with these options at all
    line = _one_line(_make_c(src, tmp_path / "empty", labels, "--merge"))
    assert "no shard parts" in line and "--shard K/N" in line
    fr = _fractals("generate", tmp_path / "fr", "--count", 4, "--size", 16, "--shard", "0/2", "--quiet")
    assert fr.exit_code == 0
    fr = _fractals("generate", tmp_path / "fr", "--count", 4, "--size", 16, "--merge")
    assert fr.exit_code == 2 and "1/2" in _one_line(fr)


def test_merge_names_the_command_that_runs_the_missing_shards(tmp_path, npy_source):
    src, labels = npy_source
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "robust_mix", "robust-eval", "make-c", src, out, *C_ARGS, "--labels", labels]
    cmd = [str(c) for c in cmd]
    shard = subprocess.run([*cmd, "--shard", "0/2"], capture_output=True, text=True, env=_env(), timeout=300)
    assert shard.returncode == 0, shard.stderr
    merge = subprocess.run([*cmd, "--merge"], capture_output=True, text=True, env=_env(), timeout=300)
    assert merge.returncode == 2
    lines = merge.stderr.strip().splitlines()
    assert len(lines) == 1 and "shard(s) 1/2" in lines[0], merge.stderr
    assert f"robust-eval make-c {src} {out} --preset cifar" in lines[0] and "--shard 1/2`" in lines[0]


@pytest.mark.parametrize(
    ("extra", "env", "message"),
    [
        (("--shard", "2/2"), {}, "0 <= K < N"),
        (("--shard", "x"), {}, "expected K/N"),
        (("--shard", "0/2"), {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}, "not both"),
        (("--shard", "0/2", "--merge"), {}, "exclude each other"),
        (("--merge",), {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}, "not needed under torchrun"),
        (("--merge",), {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3"}, "separate job"),
    ],
)
def test_bad_shard_options_exit_2_with_one_line(tmp_path, npy_source, extra, env, message):
    src, labels = npy_source
    result = _make_c(src, tmp_path / "out", labels, *extra, env=env)
    assert result.exit_code == 2 and message in _one_line(result)
    p = _robust_eval("make-p", src, tmp_path / "p", *P_ARGS, *extra, env=env)
    assert p.exit_code == 2 and message in _one_line(p)
    fr = _fractals("generate", tmp_path / "fr", "--count", 3, "--size", 16, *extra, env=env)
    assert fr.exit_code == 2 and message in _one_line(fr)
    assert not (tmp_path / "out").exists() and not (tmp_path / "fr").exists()


def test_a_rerun_of_a_finished_shard_skips_it_and_another_job_is_refused(tmp_path, npy_source):
    src, labels = npy_source
    out = tmp_path / "out"
    assert _make_c(src, out, labels, "--shard", "1/2").exit_code == 0
    part = out / "set-C" / SHARDS_DIR / "1-of-2"
    stamp = (part / "contrast.npy").stat().st_mtime_ns
    assert _make_c(src, out, labels, "--shard", "1/2").exit_code == 0
    assert (part / "contrast.npy").stat().st_mtime_ns == stamp  # kept
    other = _make_c(src, out, labels, "--shard", "1/2", "--seed", 3)  # another job: refused, not deleted
    assert other.exit_code == 2 and "part of another job (seed 0 (this run: 3))" in _one_line(other)
    assert json.loads((part / PART_MANIFEST).read_text())["options"]["seed"] == 0
    assert (part / "contrast.npy").stat().st_mtime_ns == stamp


# --------------------------------------------------------------------------------------------------
# a shard killed in the middle of its part is redone
# --------------------------------------------------------------------------------------------------
def _kill_when(proc: subprocess.Popen, ready, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, "finished before it could be killed"
        assert time.monotonic() < deadline, "never reached the point to kill it at"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.slow
def test_make_c_shard_killed_mid_part_is_redone(tmp_path, npy_source):
    src, _ = npy_source
    big = np.concatenate([np.load(src)] * 8)  # 176 images: the kill lands inside a part
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "big_labels.npy", np.arange(len(big)) % 3)
    args = [tmp_path / "big.npy", None, "--preset", "cifar", "--labels", tmp_path / "big_labels.npy"]
    args += ["--name", "set", "--chunk", 8, "--corruptions", "zoom_blur,contrast", "--severities", "1,2"]
    out = tmp_path / "out"
    argv = [str(out if a is None else a) for a in args]
    part = out / "set-C" / SHARDS_DIR / "0-of-2"
    cmd = [sys.executable, "-m", "robust_mix", "robust-eval", "make-c", *argv, "--shard", "0/2"]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _kill_when(proc, lambda: any(part.glob(".*.partial")))
    assert proc.returncode == -signal.SIGKILL
    record = json.loads((part / PART_MANIFEST).read_text()) if (part / PART_MANIFEST).exists() else {}
    assert not record.get("done") and "zoom_blur" not in record.get("files", {})
    for extra in (["--shard", "0/2"], ["--shard", "1/2"], ["--merge"]):
        result = _robust_eval("make-c", *argv, *extra)
        assert result.exit_code == 0, result.output
    assert _robust_eval("make-c", *[str(tmp_path / "one" if a is None else a) for a in args]).exit_code == 0
    assert _tree(out) == _tree(tmp_path / "one")


@pytest.mark.slow
def test_fractals_shard_killed_mid_part_is_redone(tmp_path):
    out = tmp_path / "out"
    args = ["--count", "40", "--size", "96", "--quiet"]
    cmd = [
        sys.executable,
        "-m",
        "robust_mix",
        "ipmix-fractals",
        "generate",
        str(out),
        *args,
        "--shard",
        "1/2",
    ]
    part = out / SHARDS_DIR / "1-of-2"
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _kill_when(proc, lambda: len(list(part.rglob("*.png"))) >= 3)
    assert not (part / PART_MANIFEST).exists()  # recorded only when the whole part is done
    assert _fractals("generate", out, *args, "--shard", "1/2").exit_code == 0
    assert json.loads((part / PART_MANIFEST).read_text())["done"]
    assert len(list(part.rglob("*.png"))) == 20 and not list(part.rglob(".tmp-*"))
    for extra in (["--shard", "0/2"], ["--merge"]):
        assert _fractals("generate", out, *args, *extra).exit_code == 0
    assert _fractals("generate", tmp_path / "one", *args).exit_code == 0
    assert _tree(out) == _tree(tmp_path / "one")


# --------------------------------------------------------------------------------------------------
# torchrun: 2 ranks split the work, rank 0 merges after a barrier
# --------------------------------------------------------------------------------------------------
def _torchrun(*args: object) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "robust_mix", *map(str, args)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_torchrun_make_c_and_make_p_equal_one_process(tmp_path, npy_source):
    src, labels = npy_source
    assert _make_c(src, tmp_path / "one", labels).exit_code == 0
    both = ("--labels", labels, "--name", "set", "--no-progress")
    done = _torchrun("robust-eval", "make-c", src, tmp_path / "two", *C_ARGS, *both)
    assert done.stdout.count("wrote") == 1, done.stdout  # rank 0 only
    assert _tree(tmp_path / "two") == _tree(tmp_path / "one")
    p_args = ("make-p", src, None, *P_ARGS, "--chunk", 3, "--name", "set", "--no-progress")
    assert _robust_eval(*[tmp_path / "p1" if a is None else a for a in p_args]).exit_code == 0
    _torchrun("robust-eval", *[tmp_path / "p2" if a is None else a for a in p_args])
    assert _tree(tmp_path / "p2") == _tree(tmp_path / "p1")


@pytest.mark.slow
def test_torchrun_fractals_equal_one_process(tmp_path):
    args = ("--count", 9, "--size", 24, "--seed", 2)
    assert _fractals("generate", tmp_path / "one", *args, "--quiet").exit_code == 0
    done = _torchrun("ipmix-fractals", "generate", tmp_path / "two", *args, "--json")
    assert [json.loads(line)["written"] for line in done.stdout.splitlines()] == [9]  # rank 0 only
    assert _tree(tmp_path / "two") == _tree(tmp_path / "one")
