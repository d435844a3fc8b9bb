"""`timm train --mix-device`: batched mixing in the transfer step (JSD views included), bitwise resume
from the saved generator state, and image folders that no longer patch timm's transform factory."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest
import torch
from PIL import Image
from test_adautomix_train import run_killed_after_first_epoch
from test_timm_train import TINY, _invoke, tiny_model_dir, write_digits  # noqa: F401

from timm_ext.train.config import TrainConfig
from timm_ext.train.device_mixing import DeviceMixing


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).resize((48, 48)).save(folder / f"{name}.png")
    return folder


def test_device_mixing_makes_clean_first_views_and_normalises(photos):
    mixer = DeviceMixing(
        "ipmix-w2-d2",
        3,
        (0.5, 0.5, 0.5),
        (0.25, 0.25, 0.25),
        torch.device("cpu"),
        torch.device("cpu"),
        1,
        0,
        str(photos),
    )
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    out = mixer(images)
    assert out.shape == (12, 3, 32, 32) and out.dtype == torch.float32
    assert torch.allclose(out[:4], (images.float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert not torch.equal(out[4:8], out[8:])  # two independent mixed views


def test_rank_generators_differ(photos):
    def first_draw(rank: int) -> torch.Tensor:
        mixer = DeviceMixing(
            "pixmix-k2",
            1,
            (0.5,) * 3,
            (0.5,) * 3,
            torch.device("cpu"),
            torch.device("cpu"),
            7,
            rank,
            str(photos),
        )
        return mixer(torch.full((8, 3, 16, 16), 100, dtype=torch.uint8))

    assert torch.equal(first_draw(0), first_draw(0))
    assert not torch.equal(first_draw(0), first_draw(1))


def test_mix_device_needs_a_batched_augmentation(tmp_path):
    result = _invoke("--data-dir", str(tmp_path), "--aug", "randaugment", "--mix-device", "cpu")
    assert result.exit_code == 2 and "--mix-device" in result.output
    result = _invoke("--data-dir", str(tmp_path), "--aug", "ipmix", "--mix-device", "tpu")
    assert result.exit_code == 2 and "unknown --mix-device" in result.output


def test_config_default_keeps_workers():
    assert TrainConfig().mix_device == "workers"


@pytest.mark.slow
@pytest.mark.usefixtures("tiny_model_dir")
def test_device_mixing_jsd_killed_and_resumed_equals_uninterrupted(tmp_path, photos, monkeypatch):
    data = write_digits(tmp_path / "digits", 128, 32)

    def args(out: Path) -> list[str]:
        return [
            "--data-dir", str(data), "--model", TINY, "--aug", "ipmix", "--jsd", "--fractals", str(photos),
            "--mix-device", "cpu", "-b", "32", "-j", "0", "--lr", "0.05", "--device", "cpu", "--no-progress",
            "--output", str(out), "--epochs", "2",
        ]  # fmt: skip

    assert _invoke(*args(tmp_path / "straight")).exit_code == 0
    run_killed_after_first_epoch(monkeypatch, args(tmp_path / "split"))
    result = _invoke(*args(tmp_path / "split"), "--resume", str(tmp_path / "split"))
    assert result.exit_code == 0, result.output
    a = torch.load(tmp_path / "straight" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pth", weights_only=True)
    assert torch.equal(a["rng"][0]["mix"]["generator"], b["rng"][0]["mix"]["generator"])
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


@pytest.mark.usefixtures("tiny_model_dir")
def test_image_folder_ipmix_leaves_timm_unpatched(tmp_path, photos):
    import timm.data.transforms_factory as factory

    from timm_ext.train.data import train_transforms

    before = factory.auto_augment_transform
    cfg = TrainConfig(dataset="imagefolder", aug="ipmix", fractals=str(photos))
    data_cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear"}
    _, secondary, _ = train_transforms(cfg, data_cfg, "ipmix-w2-d2")
    assert factory.auto_augment_transform is before
    assert [type(t).__name__ for t in secondary.transforms] == ["AlbumentationsAdapter"]
    _, secondary, final = train_transforms(cfg, data_cfg, "ipmix-w2-d2", device_mixing=True)
    assert secondary.transforms == [] and [type(t).__name__ for t in final.transforms] == ["PILToTensor"]
