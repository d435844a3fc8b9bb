"""Hostile checkpoint files: each is refused with one clear error, quickly, before anything is built.

Issue 23: empty / text / FIFO files, crafted metadata values, non-positive or mis-sized std, the papers'
checkpoints with empty dimensions, and a few bytes claiming a huge architecture.
"""

from __future__ import annotations

import os
import time

import pytest
import timm
import torch
from robust_eval_fixtures import DATA_CONFIG, MODEL, trained_state_dict
from test_zoo import random_state, rb_resnet18

import timm_ext.models  # noqa: F401 - registers wrn_cifar
from robust_eval.checkpoints.formats import BARE_CHECKPOINT_FLAGS, load_checkpoint
from robust_mix.checkpoint import make_checkpoint
from robust_mix.errors import RobustMixError


def _project(tmp_path, name="ck.pth", **changes):
    """This project's format with ``changes`` applied (``dc_<field>`` changes the data_config)."""
    ck = make_checkpoint(
        trained_state_dict(), model=MODEL, num_classes=10, dataset="cifar10", data_config=DATA_CONFIG
    )
    for key, value in changes.items():
        if key.startswith("dc_"):
            ck["data_config"] = {**ck["data_config"], key[3:]: value}
        else:
            ck[key] = value
    torch.save(ck, tmp_path / name)
    return tmp_path / name


def test_empty_and_text_files_are_not_pytorch_checkpoints(tmp_path):
    (tmp_path / "zero.pth").write_bytes(b"")
    with pytest.raises(RobustMixError, match=r"zero\.pth' is empty \(0 bytes\): not a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "zero.pth")
    (tmp_path / "text.pth").write_bytes(b"hello world 1234")  # 16 bytes
    with pytest.raises(
        RobustMixError, match=r"text\.pth' is not a PyTorch checkpoint: it starts with b'hello wo'"
    ):
        load_checkpoint(tmp_path / "text.pth")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_is_refused_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "pipe.pth")
    os.symlink(tmp_path / "pipe.pth", tmp_path / "link.pth")
    for name in ("pipe.pth", "link.pth"):
        with pytest.raises(RobustMixError, match="is not a regular file"):
            load_checkpoint(tmp_path / name)


def _zoo_file(tmp_path, name="Modas2021PRIMEResNet18"):
    folder = tmp_path / "cifar10" / "corruptions"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.pt"


def test_a_robustbench_file_that_links_to_text_is_named(tmp_path):
    (tmp_path / "notes.txt").write_text("see the README\n")
    os.symlink(tmp_path / "notes.txt", _zoo_file(tmp_path, "Standard"))
    with pytest.raises(RobustMixError, match=r"Standard\.pt' is not a PyTorch checkpoint"):
        load_checkpoint("robustbench:Standard", model_dir=tmp_path, dataset="cifar10")


@pytest.mark.parametrize(
    ("sigma", "message"),
    [
        ([-0.2, 0.3, 0.25], r"std must be > 0 for every channel"),
        ([0.0, 0.3, 0.25], r"std must be > 0 for every channel"),
        ([0.2, 0.3, 0.25, 0.1, 0.1], r"std has 5 values for 3-channel inputs"),
    ],
)
def test_a_robustbench_sigma_that_is_not_positive_is_refused(tmp_path, sigma, message):
    """PRIME's mu/sigma buffers come from the file: a negative one would invert the image silently."""
    sd = random_state(rb_resnet18(10))
    sd["mu"] = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)
    sd["sigma"] = torch.tensor(sigma).view(1, -1, 1, 1)
    torch.save({"state_dict": sd}, _zoo_file(tmp_path))
    with pytest.raises(RobustMixError, match=rf"Modas2021PRIMEResNet18\.pt'.*{message}"):
        load_checkpoint("robustbench:Modas2021PRIMEResNet18", model_dir=tmp_path, dataset="cifar10")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format_version": [1]}, "format_version must be a whole number"),
        ({"state_dict": [1, 2]}, "state_dict must be a dict of tensors"),
        ({"class_names": 5}, "class_names must be a list of names"),
        ({"num_classes": "10"}, "num_classes must be a whole number"),
        ({"dc_crop_pct": 0}, r"crop_pct must be in \(0, 1\], got 0"),
        ({"dc_crop_pct": -1}, r"crop_pct must be in \(0, 1\], got -1"),
        ({"dc_input_size": [3, 0, 0]}, r"input_size must be \[C, H, W\] with C, H, W >= 1"),
        ({"dc_mean": [0.5] * 5}, "mean has 5 values for 3-channel inputs"),
        ({"dc_std": [0.25] * 5}, "std has 5 values for 3-channel inputs"),
        ({"dc_std": [-0.25, 0.25, 0.25]}, "std must be > 0 for every channel"),
        ({"dc_std": "0.25"}, "std must be a list of finite numbers"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_crafted_metadata_values_are_one_clear_error(tmp_path, changes, message):
    with pytest.raises(RobustMixError, match=rf"ck\.pth'.*{message}"):
        load_checkpoint(_project(tmp_path, **changes))


def _reference(tmp_path, model, state_dict):
    path = tmp_path / f"{model}.pth.tar"
    torch.save(
        {"epoch": 1, "dataset": "cifar10", "model": model, "state_dict": state_dict, "best_acc": 0.0}, path
    )
    return path


@pytest.mark.parametrize(
    ("model", "state_dict"),
    [
        (
            "resnext",
            {
                "stage_1.0.conv_conv.weight": torch.zeros(128, 0, 3, 3),
                "classifier.weight": torch.zeros(10, 1),
            },
        ),
        (
            "densenet",
            {
                "dense1.0.conv1.weight": torch.zeros(12, 3, 3, 3),
                "trans1.conv1.weight": torch.zeros(0, 0, 1, 1),
                "fc.weight": torch.zeros(10, 1),
            },
        ),
        ("wrn", {"block1.layer.0.conv1.weight": torch.zeros(64, 16, 3, 3), "fc.weight": torch.zeros(0, 256)}),
    ],
    ids=["resnext", "densenet", "wrn"],
)
def test_reference_checkpoints_with_an_empty_dimension_are_refused(tmp_path, model, state_dict):
    with pytest.raises(RobustMixError, match="has no empty dimensions"):
        load_checkpoint(_reference(tmp_path, model, state_dict))


def test_a_few_bytes_cannot_claim_a_million_blocks(tmp_path):
    """Reference layout: block numbers must be 0..n-1; this project's format: layer counts bounded by
    the tensors held, widths and classes checked on a shapes-only build before any allocation."""
    sd = {
        "block1.layer.0.conv1.weight": torch.zeros(64, 16, 3, 3),
        "block1.layer.200000.conv1.weight": torch.zeros(1),
        "fc.weight": torch.zeros(10, 256),
    }
    start = time.monotonic()
    with pytest.raises(RobustMixError, match="numbered up to 200000 but only 2 are present"):
        load_checkpoint(_reference(tmp_path, "wrn", sd))
    with pytest.raises(RobustMixError, match=r"depth=7200004 asks for more layers than the \d+ tensors"):
        load_checkpoint(
            _project(tmp_path, model="wrn_cifar", model_kwargs={"depth": 7200004, "widen_factor": 1})
        )
    with pytest.raises(RobustMixError, match=r"do not fit 'wrn_cifar'.*\(1600000, 16, 3, 3\)"):
        small = make_checkpoint(
            timm.create_model("wrn_cifar", depth=10, widen_factor=1, num_classes=10).state_dict(),
            model="wrn_cifar",
            num_classes=10,
            dataset="cifar10",
            data_config=DATA_CONFIG,
            model_kwargs={"depth": 10, "widen_factor": 100000},
        )
        torch.save(small, tmp_path / "wide.pth")
        load_checkpoint(tmp_path / "wide.pth")
    with pytest.raises(RobustMixError, match=r"do not fit .*\(1000000000, "):
        load_checkpoint(_project(tmp_path, num_classes=10**9, dataset="imagefolder"))
    assert time.monotonic() - start < 30


def test_a_bare_state_dict_on_32px_data_names_every_flag(tmp_path):
    """timm's default for the architecture (test_resnet: 160 px) would upsample every CIFAR image."""
    torch.save(trained_state_dict(), tmp_path / "bare.pth")
    with pytest.raises(RobustMixError) as missing:
        load_checkpoint(tmp_path / "bare.pth")
    with pytest.raises(RobustMixError, match="cifar10 images are 32 px: pass --input-size 32") as size:
        load_checkpoint(tmp_path / "bare.pth", model=MODEL, num_classes=10, dataset="cifar10")
    for exc in (missing, size):
        assert BARE_CHECKPOINT_FLAGS[1:] in str(exc.value)
        assert all(
            flag in str(exc.value)
            for flag in ("--model", "--num-classes", "--dataset", "--input-size", "--mean", "--std")
        )
    _, info = load_checkpoint(
        tmp_path / "bare.pth",
        model=MODEL,
        num_classes=10,
        dataset="cifar10",
        data_overrides={"input_size": [3, 32, 32]},
    )
    assert (
        info.data_config["input_size"] == [3, 32, 32] and info.data_config["sources"]["input_size"] == "flag"
    )
