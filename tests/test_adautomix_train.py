"""`timm train --aug adautomix | automix` end to end: resume, checkpoints, robust-eval, DDP, learning.

Model: timm's ``test_resnet`` at 32 px; data: scikit-learn digits in the CIFAR-10 layout
(fixtures shared with test_timm_train.py).
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import torch
from test_timm_train import _assert_one_line_error, _invoke, _rows, tiny_model_dir, write_digits  # noqa: F401

from timm_ext.train import TrainConfig

MODEL = ["--model", "test_resnet", "--img-size", "32"]


@pytest.fixture(scope="module")
def digits_256(tmp_path_factory) -> Path:
    """256 train / 64 test digits, 32 px RGB, in the CIFAR-10 python layout."""
    return write_digits(tmp_path_factory.mktemp("digits_256"), 256, 64)


@pytest.fixture(scope="module")
def digits_128(tmp_path_factory) -> Path:
    """128 train / 32 test digits (4 steps of 32 per epoch)."""
    return write_digits(tmp_path_factory.mktemp("digits_128"), 128, 32)


def run_killed_after_first_epoch(monkeypatch, args: list[str]):
    """Run ``timm train`` and interrupt it (Ctrl-C) right after the first epoch's files are written."""
    import timm_ext.train.loop as loop

    def interrupt(*_args, **_kwargs) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "_report_epoch", interrupt)
        result = _invoke(*args)
    assert result.exit_code == 130, result.output


def _args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data-dir", str(data_dir), *MODEL, "--aug", "adautomix", "-b", "32", "-j", "0", "--lr", "0.05",
        "--device", "cpu", "--no-progress", "--output", str(out), "--adautomix-momentum", "0.9",
        "--adautomix-momentum-end", "0.99", "--drop", "0.1", *extra,
    ]  # fmt: skip


def _tensors_equal(a, b, where: str = "") -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _tensors_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _tensors_equal(x, y, f"{where}[{i}]")


@pytest.mark.slow
def test_adautomix_resumes_bit_identically_and_final_loads_in_robust_eval(digits_128, tmp_path, monkeypatch):
    from robust_eval.checkpoints.formats import load_checkpoint

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert _invoke(*_args(digits_128, straight, "--epochs", "2")).exit_code == 0
    run_killed_after_first_epoch(monkeypatch, _args(digits_128, split, "--epochs", "2"))
    result = _invoke(*_args(digits_128, split, "--epochs", "2", "--resume", str(split)))
    assert result.exit_code == 0, result.output
    a = torch.load(straight / "last.pth", map_location="cpu", weights_only=True)
    b = torch.load(split / "last.pth", map_location="cpu", weights_only=True)
    assert a["num_updates"] == b["num_updates"] == 2 * (128 // 32)
    assert set(a["method"]) == {"online_mix", "generator", "teacher", "teacher_mix"}
    for key in ("model", "method", "optimizer"):  # online model, mix heads, G, teacher + buffers, SGD state
        _tensors_equal(a[key], b[key], key)
    assert len(a["optimizer"]["param_groups"]) == 2  # {q + hm_q}, {G}
    final = torch.load(split / "final.pth", map_location="cpu", weights_only=True)
    _tensors_equal(final["state_dict"], a["method"]["teacher"], "teacher")  # the EMA teacher is reported
    _tensors_equal(final["state_dict_online"], a["model"], "online")
    assert not any(k.startswith(("generator", "online_mix", "teacher_mix")) for k in final["state_dict"])
    rows = _rows(split / "metrics.csv")
    straight_rows = _rows(straight / "metrics.csv")
    drop_time = ("epoch_time_s", "train_images_per_s")
    assert [{k: v for k, v in r.items() if k not in drop_time} for r in rows] == [
        {k: v for k, v in r.items() if k not in drop_time} for r in straight_rows
    ]
    for row in rows:
        assert 0.0 < float(row["mask_entropy"]) <= math.log(3) + 1e-6
        assert row["online_val_top1"] != "" and row["val_top1"] != ""
    # robust-eval's default loading (strict state_dict, no flags) takes the file as it is
    wrapped, info = load_checkpoint(split / "final.pth")
    assert info.model == "test_resnet"
    assert wrapped(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.usefixtures("tiny_model_dir")
def test_adautomix_needs_forward_intermediates(digits_256, tmp_path):
    result = _invoke(
        "--data-dir", str(digits_256), "--model", "timm_ext_test_tinynet", "--aug", "adautomix", "-j", "0",
        "--device", "cpu", "--output", str(tmp_path / "o"),
    )  # fmt: skip
    _assert_one_line_error(result, "has no forward_intermediates()")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--adautomix-sources", "4"], "--adautomix-sources must be 2 or 3"),
        (["--adautomix-beta", "1.5"], "--adautomix-beta must be in [0, 1]"),
        (["--adautomix-margin", "0.5"], "--adautomix-margin must be in [0, 0.5)"),
        (["--model-ema"], "--model-ema cannot be combined with --aug adautomix"),
        (["--jsd"], "--jsd cannot be combined with --aug adautomix"),
        (["--adautomix-upsample", "cubic"], "unknown --adautomix-upsample 'cubic'"),
    ],
)
def test_bad_adautomix_options(digits_256, tmp_path, args, fragment):
    _assert_one_line_error(_invoke(*_args(digits_256, tmp_path / "o", "--epochs", "1"), *args), fragment)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*adautomix*.yaml")), ids=lambda p: p.name
)
def test_shipped_adautomix_configs(path):
    from timm_ext.train import _validate, config_from_dict, load_config_file

    cfg = config_from_dict(load_config_file(path))
    assert cfg.aug == "adautomix"
    _validate(config_from_dict({**load_config_file(path), "data_dir": "."}))


# --------------------------------------------------------------------------- DDP
def _ddp_steps(rank: int, world: int, init_file: str, out_file: str, steps: int) -> None:
    """Run ``steps`` AdAutoMix steps (alternating adversarial / cooperative) on one fixed batch."""
    import timm

    from timm_ext.train.methods import create_method

    torch.set_num_threads(1)
    if world > 1:
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world
        )
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    cfg = TrainConfig(aug="adautomix", model="test_resnet", seed=3)
    method = create_method(cfg, model, 10, rank=0)  # same draws on both ranks: same data, same plan
    net = method.network
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, broadcast_buffers=True)
    opt = torch.optim.SGD(method.param_groups(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    net.train()
    for t in range(steps):
        loss = method.step(net, x, y, t).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        method.after_update(t + 1, 100)
    if rank == 0:
        torch.save({"model": model.state_dict(), **method.state_dict()}, out_file)
    if world > 1:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_on_gloo_equals_one_process(tmp_path):
    """Two gloo processes with the same data and draws end where one process does (float tolerance):
    one wrapped module for the step, every trainable parameter gets its gradient, G's through k."""
    import torch.multiprocessing as mp

    single, double = str(tmp_path / "one.pth"), str(tmp_path / "two.pth")
    _ddp_steps(0, 1, "", single, 3)
    mp.start_processes(
        _ddp_steps, args=(2, str(tmp_path / "init"), double, 3), nprocs=2, start_method="fork", join=True
    )
    a = torch.load(single, weights_only=True)
    b = torch.load(double, weights_only=True)
    for part in ("model", "generator", "online_mix", "teacher", "teacher_mix"):
        for key, value in a[part].items():
            torch.testing.assert_close(b[part][key], value, rtol=1e-5, atol=1e-6, msg=f"{part}.{key}")
    start = copy.deepcopy(a["generator"])  # the generator really moved
    assert any(v.abs().sum() > 0 for v in start.values())


# --------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_adautomix_learns_on_digits(digits_256, tmp_path):
    """A short run: loss falls, the EMA teacher beats chance, masks are neither uniform nor one-hot."""
    out = tmp_path / "learn"
    result = _invoke(*_args(digits_256, out, "--epochs", "3", "--lr", "0.1", "--adautomix-gen-lr", "0.5"))
    assert result.exit_code == 0, result.output
    rows = _rows(out / "metrics.csv")
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[-1]["val_top1"]) > 10.0 + 5.0  # 10 classes: chance is 10%
    entropy = np.array([float(r["mask_entropy"]) for r in rows])
    assert ((entropy > 0.0) & (entropy < math.log(3))).all()
    assert float(rows[-1]["mask_spatial_std"]) > 0.0
