"""Sharded evaluation (robust_eval.sharding): `robust-eval all` under torchrun writes the bytes of a
one-process run, only rank 0 writes or prints, a killed run resumes under another world size, and
image files decode in worker processes without changing a pixel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from robust_eval_fixtures import (
    SUBPROCESS_ENV,
    heldout_digits,
    write_c_folder,
    write_p_folder,
    write_png_tree,
    write_project_checkpoint,
)

from robust_eval import data as rdata
from robust_eval.cache import CellCache
from robust_eval.sharding import BatchPlan, decode_in_workers, gathered
from robust_eval.suites import _batches
from robust_mix.distributed import Shard


def _torchrun_shard(rank: int, world: int) -> Shard:
    return Shard(rank, world, "torchrun")


@pytest.mark.parametrize(
    ("n", "batch_size", "world"), [(0, 4, 2), (1, 4, 3), (37, 4, 2), (200, 3, 3), (9, 9, 4)]
)
def test_plan_every_batch_once_in_contiguous_blocks(n, batch_size, world):
    plans = [BatchPlan(n, batch_size, _torchrun_shard(r, world), per_rank=2) for r in range(world)]
    single = BatchPlan(n, batch_size, Shard.single())
    assert single.my_batches() == list(range(single.n_batches))
    assert all(len(w) == 1 for w in single.windows())  # one process streams batch by batch
    for window in plans[0].windows():
        assert len(window) <= 2 * world
        blocks = [list(p.mine(window)) for p in plans]
        assert [b for block in blocks for b in block] == list(window)  # rank order = batch order
        assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    assert sorted(b for p in plans for b in p.my_batches()) == list(range(single.n_batches))
    covered = [i for b in range(single.n_batches) for i in range(*single.bounds(b))]
    assert covered == list(range(n))  # the one-process batch boundaries: bs examples, last shorter


def test_gathered_without_group_is_the_local_stream():
    plan = BatchPlan(10, 3, Shard.single())
    assert list(gathered(plan, iter("abcd"))) == list("abcd")


def test_cache_rank_other_than_0_neither_reads_nor_writes(tmp_path):
    main = CellCache(tmp_path, "ab" * 32)
    main.put("clean", "test", {"o": 1}, {"top1_error": 0.25}, {"scores": np.arange(3.0)})
    other = CellCache(tmp_path / "r1", "ab" * 32, shard=_torchrun_shard(1, 2))
    other.put("clean", "test", {"o": 1}, {"top1_error": 0.5})
    assert not (tmp_path / "r1").exists()
    # a rank > 0 gets rank 0's answer by broadcast; with no process group there is nobody to ask
    reader = CellCache(tmp_path, "ab" * 32, shard=_torchrun_shard(1, 2))
    assert reader.get("clean", "test", {"o": 1}) is None
    values, arrays = CellCache(tmp_path, "ab" * 32, shard=_torchrun_shard(0, 2)).get(
        "clean", "test", {"o": 1}
    )
    assert values == {"top1_error": 0.25} and np.array_equal(arrays["scores"], np.arange(3.0))


def test_decode_workers_keep_pixels_and_order(tmp_path):
    images, labels = heldout_digits(11)
    write_png_tree(tmp_path / "tree", images, labels, scale=2)
    paths, labs, _ = rdata.list_imagefolder(tmp_path / "tree")
    expected = rdata.FileSource(paths, labs, 24, 0.875).batch(0, len(paths))
    picked = [2, 0, 1]  # any batch order the caller asks for comes back in that order
    for workers in (0, 1, 2):
        src = rdata.FileSource(paths, labs, 24, 0.875, workers=workers)
        got = list(_batches(src, 4, picked))
        assert [start for start, _ in got] == [8, 0, 4]
        for start, batch in got:
            assert batch.dtype == np.uint8 and np.array_equal(batch, expected[start : start + len(batch)])
    direct = list(decode_in_workers(rdata.FileSource(paths, labs, 24, 0.875, workers=2), [(3, 5)]))
    assert len(direct) == 1 and np.array_equal(direct[0][1], expected[3:5])


# ------------------------------------------------------------------------------------------------
# end to end: torchrun with 2 gloo ranks on the CPU against one process
# ------------------------------------------------------------------------------------------------


def _data_root(root: Path) -> Path:
    """CIFAR-10 test split, -C (2 corruptions), -C-bar (1), -P, an .npy and a PNG-folder OOD set."""
    images, labels = heldout_digits(30)
    rdata.write_cifar(root / "cifar-10-batches-py", "cifar10", images, labels)
    write_c_folder(root / "CIFAR-10-C", images, labels, ("gaussian_noise", "fog"))
    write_c_folder(root / "CIFAR-10-C-bar", images, labels, ("blue_noise_sample",))
    write_p_folder(root / "CIFAR-10-P", images[:5], names=("gaussian_noise", "translate"), frames=4)
    rng = np.random.default_rng(3)
    (root / "ood").mkdir(parents=True)
    np.save(root / "ood" / "noise_npy.npy", rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8))
    write_png_tree(root / "ood" / "textures", rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8), None, 2)
    return root


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("sharded")
    return write_project_checkpoint(base / "model.pth"), _data_root(base / "data")


def _command(setup, out: Path, world: int, log_dir: Path | None = None) -> list[str]:
    checkpoint, data = setup
    args = [
        "all", str(checkpoint), "--data-dir", str(data), "--out", str(out), "--batch-size", "4",
        "--steps", "2", "--workers", "1", "--perturbations", "gaussian_noise,translate",
    ]  # fmt: skip
    if world == 1:
        return [sys.executable, "-m", "robust_eval.cli", *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={world}"]
    if log_dir is not None:  # rank 1's stdout and stderr into files there; rank 0's stay on ours
        launcher += ["--log-dir", str(log_dir), "--redirects", "1:3"]
    return [*launcher, "-m", "robust_eval.cli", *args]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _files(out: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``out`` (relative path -> (inode, mtime ns))."""
    return {
        str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in out.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def one_process(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "out"
    _run(_command(setup, out, 1))
    return out


@pytest.mark.slow
def test_two_ranks_write_the_bytes_of_one_process_and_rank_1_is_silent(setup, one_process, tmp_path):
    out, logs = tmp_path / "two", tmp_path / "logs"
    done = _run(_command(setup, out, 2, logs))
    assert (out / "all.json").read_bytes() == (one_process / "all.json").read_bytes()
    assert (out / "all.md").read_bytes() == (one_process / "all.md").read_bytes()
    assert set(_files(out)) == set(_files(one_process))  # same cells, plots; no stray temporary files
    assert "wrote" in done.stderr and "OOD AUROC" in done.stdout  # rank 0 reports as one process does
    rank1 = sorted(logs.rglob("1/std*.log"))
    assert len(rank1) == 2, list(logs.rglob("*"))
    assert [p.read_text() for p in rank1] == ["", ""]  # rank 1 prints nothing


@pytest.mark.slow
def test_killed_two_rank_run_resumes_in_one_process_with_the_same_bytes(setup, one_process, tmp_path):
    out = tmp_path / "resumed"
    cells = out / ".cache"
    job = subprocess.Popen(
        _command(setup, out, 2),
        env=SUBPROCESS_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while len(list(cells.rglob("*.json"))) < 3 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait()
    before = {k: v for k, v in _files(out).items() if k.endswith(".json")}
    total = sum(1 for k in _files(one_process) if k.startswith(".cache") and k.endswith(".json"))
    assert 3 <= len(before) < total, "the run was not killed part-way"
    assert not (out / "all.json").exists()

    _run(_command(setup, out, 1))
    assert (out / "all.json").read_bytes() == (one_process / "all.json").read_bytes()
    after = _files(out)
    assert all(after[k] == v for k, v in before.items())  # the finished cells were reused, not rewritten
