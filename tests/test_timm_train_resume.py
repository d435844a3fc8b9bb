"""Reproducibility of `timm train`: every augmentation's random state at an epoch boundary is a
function of (seed, epoch, rank, worker), so a killed and resumed run ends with the weights of an
uninterrupted one, and IPMix / PixMix repeat from the seed in the main process too."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import torch
from PIL import Image
from test_adautomix_train import run_killed_after_first_epoch
from test_timm_train import TINY, _digits_rgb32, _invoke, tiny_model_dir, write_digits  # noqa: F401

from timm_ext.train.data import ArrayImageDataset, EpochSeeded
from timm_ext.transforms import mixing_transform


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).resize((48, 48)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def digits_192(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits_192"), 192, 32)


def test_unseeded_ipmix_repeats_from_the_torch_seed_in_the_main_process(photos):
    """timm's create_transform path builds the adapter without a seed: the torch seed (timm's
    random_seed) decides its stream, as it does for timm's own AugMix."""
    image = Image.fromarray(_digits_rgb32()[0][0])

    def draw(seed: int) -> list[np.ndarray]:
        torch.manual_seed(seed)
        adapter = mixing_transform("ipmix-w2-d2-p1", fractals=str(photos))
        return [np.asarray(adapter(image)) for _ in range(3)]

    first, again, other = draw(5), draw(5), draw(6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_epoch_seeding_in_the_main_process(photos):
    images, labels = _digits_rgb32()
    dataset = ArrayImageDataset(
        images[:4], labels[:4], mixing_transform("ipmix-w2-d2-p1", fractals=str(photos))
    )
    seeded = EpochSeeded(dataset, seed=1, rank=0)

    def epoch(e: int) -> list[np.ndarray]:
        seeded._epoch = None  # a fresh process (a resumed run) reaching epoch e
        return [np.asarray(seeded[(e, i)][0]) for i in range(4)]

    assert all(np.array_equal(a, b) for a, b in zip(epoch(3), epoch(3)))
    assert not all(np.array_equal(a, b) for a, b in zip(epoch(3), epoch(4)))


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_model_dir")
@pytest.mark.parametrize("workers", ["0", "1"])
def test_ipmix_killed_and_resumed_equals_uninterrupted(digits_192, photos, tmp_path, workers, monkeypatch):
    def args(out: Path) -> list[str]:
        return [
            "--data-dir", str(digits_192), "--model", TINY, "--aug", "ipmix", "--fractals", str(photos),
            "-b", "32", "-j", workers, "--lr", "0.05", "--device", "cpu", "--no-progress", "--output", str(out),
            "--epochs", "2",
        ]  # fmt: skip

    assert _invoke(*args(tmp_path / "straight")).exit_code == 0
    run_killed_after_first_epoch(monkeypatch, args(tmp_path / "split"))
    result = _invoke(*args(tmp_path / "split"), "--resume", str(tmp_path / "split"))
    assert result.exit_code == 0, result.output
    a = torch.load(tmp_path / "straight" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pth", weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


# ------------------------------------------------------------------------------------------------
# torchrun: 2 gloo processes on the CPU, the first run killed (SIGKILL) right after epoch 1
# ------------------------------------------------------------------------------------------------
_KILLABLE_LAUNCHER = """
import os, signal, sys

if os.environ.get("KILL_AFTER_EPOCH"):  # rank 0 dies right after writing that epoch's last.pth
    import timm_ext.train.loop as loop

    report = loop._report_epoch

    def report_then_die(run, row):
        report(run, row)
        if row["epoch"] == int(os.environ["KILL_AFTER_EPOCH"]):
            os.kill(os.getpid(), signal.SIGKILL)

    loop._report_epoch = report_then_die
from timm_ext.cli import main

main()
"""


def _torchrun_train(launcher: Path, args: list[str], kill_after: int | None = None):
    import subprocess
    import sys

    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    if kill_after is not None:
        env["KILL_AFTER_EPOCH"] = str(kill_after)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(launcher)]
    return subprocess.run([*cmd, "train", *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("aug", "workers", "epochs"),
    [("ipmix", "1", "3"), ("adautomix", "0", "2")],
)
def test_torchrun_killed_and_resumed_equals_uninterrupted(tmp_path, aug, workers, epochs):
    """Each rank draws from its own streams (dropout, crops, mixing): a resume state holds every rank's,
    and the validation loader never draws from the global stream (its first iterator starts in another
    epoch after a resume). Before: the ranks all took rank 0's state and the weights drifted apart."""
    data = write_digits(tmp_path / "data", 128, 32)
    launcher = tmp_path / "launch.py"
    launcher.write_text(_KILLABLE_LAUNCHER)

    def args(out: Path) -> list[str]:
        return [
            "--data-dir", str(data), "--model", "test_resnet", "--img-size", "32", "--drop", "0.1",
            "--aug", aug, "-b", "16", "-j", workers, "--lr", "0.05", "--device", "cpu", "--no-progress",
            "--epochs", epochs, "--output", str(out),
        ]  # fmt: skip

    straight = _torchrun_train(launcher, args(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = _torchrun_train(launcher, args(tmp_path / "split"), kill_after=1)
    assert killed.returncode != 0
    first = torch.load(tmp_path / "split" / "last.pth", weights_only=True)
    assert first["epoch"] == 1 and first["world_size"] == 2 and len(first["rng"]) == 2
    resumed = _torchrun_train(launcher, [*args(tmp_path / "split"), "--resume", str(tmp_path / "split")])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(tmp_path / "straight" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == int(epochs)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for name, part in a["method"].items():  # AdAutoMix: generator, mix heads, teacher
        for key, value in part.items():
            assert torch.equal(value, b["method"][name][key]), f"{name}.{key}"
    assert [r["train_loss"] for r in a["history"]] == [r["train_loss"] for r in b["history"]]
