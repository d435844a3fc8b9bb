"""Checkpoint loading (weights_only only; three kinds), metadata, refusal paths, the input contract."""

from __future__ import annotations

import argparse
import hashlib
import os

import pytest
import torch
from robust_eval_fixtures import (
    DATA_CONFIG,
    MODEL,
    heldout_digits,
    save_net_checkpoint,
    trained_state_dict,
    write_bare_state_dict,
    write_project_checkpoint,
    write_timm_train_checkpoint,
)

from robust_eval.checkpoints.formats import CheckpointError, InputContract, load_checkpoint


def _logits(model: torch.nn.Module, n: int = 16) -> torch.Tensor:
    x, _ = heldout_digits(n)
    with torch.inference_mode():
        return model(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255)


def test_project_checkpoint_loads_with_metadata_and_hash(tmp_path):
    path = write_project_checkpoint(tmp_path / "ck.pth")
    model, info = load_checkpoint(path)
    meta = info.to_dict()
    assert meta["kind"] == "robust-eval"
    assert (meta["model"], meta["num_classes"], meta["dataset"]) == (MODEL, 10, "cifar10")
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["data_config"]["mean"] == DATA_CONFIG["mean"]
    assert "[0, 1]" in meta["input_contract"]
    assert not model.training
    # the wrapper normalizes with the checkpoint's mean/std and resizes 32 px -> 16 px
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(DATA_CONFIG["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(DATA_CONFIG["std"]).view(1, 3, 1, 1)
    with torch.inference_mode():
        expected = model.model((model.resize(x) - mean) / std)
        torch.testing.assert_close(model(x), expected)
    acc = (_logits(model, 100).argmax(1).numpy() == heldout_digits(100)[1]).mean()
    assert acc > 0.8


def test_timm_train_checkpoint_with_namespace_and_prefixes(tmp_path):
    path = write_timm_train_checkpoint(tmp_path / "timm.pth")
    model, info = load_checkpoint(path)
    meta = info.to_dict()
    assert meta["kind"] == "timm-train"
    assert meta["dataset"] == "cifar10"  # from args.dataset = "torch/cifar10"
    assert meta["train_args"]["model"] == MODEL
    assert meta["data_config"]["source"] == "checkpoint"
    assert meta["data_config"]["detail"] == "timm train.py args"
    assert meta["data_config"]["input_size"] == [3, 16, 16] and meta["data_config"]["std"] == [0.25] * 3
    acc = (_logits(model, 100).argmax(1).numpy() == heldout_digits(100)[1]).mean()
    assert acc > 0.8  # same preprocessing as in training
    ema_model, ema_info = load_checkpoint(path, ema=True)
    ema_meta = ema_info.to_dict()
    assert ema_meta["ema"] is True
    torch.testing.assert_close(_logits(model), _logits(ema_model))


def test_bare_state_dict_needs_model_and_classes(tmp_path):
    path = write_bare_state_dict(tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="--model"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="--num-classes"):
        load_checkpoint(path, model=MODEL)
    with pytest.raises(CheckpointError, match="cifar10 images are 32 px: pass --input-size 32"):
        load_checkpoint(path, model=MODEL, num_classes=10)  # the architecture's default is 160 px
    _, info = load_checkpoint(path, model=MODEL, num_classes=10, data_overrides={"input_size": [3, 32, 32]})
    meta = info.to_dict()
    assert meta["kind"] == "state_dict" and meta["data_config"]["sources"]["input_size"] == "flag"
    assert meta["dataset"] == "cifar10" and meta["dataset_inferred_from_classes"]
    assert meta["data_config"]["source"] == "architecture default"
    import timm

    assert meta["data_config"]["mean"] == list(timm.create_model(MODEL).pretrained_cfg["mean"])
    _, info2 = load_checkpoint(path, model=MODEL, num_classes=10, dataset="imagefolder")
    meta2 = info2.to_dict()
    assert meta2["dataset"] == "imagefolder" and not meta2["dataset_inferred_from_classes"]


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": trained_state_dict(), "arch": MODEL, "hook": _Payload(str(marker))}, path)
    with pytest.raises(CheckpointError, match=r"refusing to load .*arbitrary unpickling"):
        load_checkpoint(path)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a zip or pickle")
    with pytest.raises(CheckpointError, match=r"not a PyTorch checkpoint: it starts with b.not a zi"):
        load_checkpoint(tmp_path / "junk.pth")
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pth")


def test_head_and_dataset_mismatches_are_clear(tmp_path):
    path = write_bare_state_dict(tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match=r"do not fit .*fc\.weight .*wrong --model or --num-classes"):
        load_checkpoint(path, model=MODEL, num_classes=100)
    ck = write_project_checkpoint(tmp_path / "ck.pth")
    with pytest.raises(CheckpointError, match="10 output classes but cifar100 has 100"):
        load_checkpoint(ck, dataset="cifar100")
    with pytest.raises(CheckpointError, match="--dataset must be one of"):
        load_checkpoint(ck, dataset="mnist")
    with pytest.raises(CheckpointError, match=r"cannot tell the data set of a 7-class model"):
        sd = {k: v for k, v in trained_state_dict().items() if not k.startswith("fc.")}
        sd["fc.weight"] = torch.zeros(7, trained_state_dict()["fc.weight"].shape[1])
        sd["fc.bias"] = torch.zeros(7)
        torch.save(sd, tmp_path / "seven.pth")
        load_checkpoint(tmp_path / "seven.pth", model=MODEL, num_classes=7)


def test_unknown_model_and_missing_keys(tmp_path):
    path = write_bare_state_dict(tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="unknown model 'no_such_net_v9'"):
        load_checkpoint(path, model="no_such_net_v9", num_classes=10)
    sd = dict(trained_state_dict())
    sd.pop("fc.bias")
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "partial.pth")
    with pytest.raises(
        CheckpointError, match=r"missing keys \['fc.bias'\].*unexpected keys \['extra.weight'\]"
    ):
        load_checkpoint(tmp_path / "partial.pth", model=MODEL, num_classes=10)


def test_ema_flag_without_ema_weights(tmp_path):
    path = write_project_checkpoint(tmp_path / "ck.pth")
    with pytest.raises(CheckpointError, match=r"no 'state_dict_ema'.*drop --ema"):
        load_checkpoint(path, ema=True)
    _, info = load_checkpoint(write_project_checkpoint(tmp_path / "ema.pth", ema=True), ema=True)
    meta = info.to_dict()
    assert meta["ema"]


def test_timm_args_namespace_only_is_allow_listed(tmp_path):
    ns = argparse.Namespace(model=MODEL, num_classes=10, dataset="")
    torch.save({"state_dict": trained_state_dict(), "args": ns}, tmp_path / "t.pth")
    _, info = load_checkpoint(tmp_path / "t.pth")
    meta = info.to_dict()
    assert meta["model"] == MODEL and meta["dataset"] == "cifar10"


def test_input_contract_resize_and_crop():
    wrap = InputContract(torch.nn.Identity(), size=16, mean=(0.0,) * 3, std=(1.0,) * 3, crop_pct=0.8)
    x = torch.rand(2, 3, 40, 50)
    y = wrap(x)
    assert y.shape == (2, 3, 16, 16)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    same = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(wrap(same), same)  # already the model's size: untouched
    norm = InputContract(torch.nn.Identity(), size=4, mean=(0.5, 0.25, 0.0), std=(0.5, 0.5, 2.0))
    out = norm(torch.ones(1, 3, 4, 4))
    assert out[0, :, 0, 0].tolist() == [1.0, 1.5, 0.5]


def test_project_cifar_models_load_without_flags(tmp_path):
    import timm

    import timm_ext.models  # noqa: F401

    net = timm.create_model("resnet18_cifar", num_classes=10)
    save_net_checkpoint(tmp_path / "r18.pth", net, "resnet18_cifar", 10, "cifar10")
    wrapped, info = load_checkpoint(tmp_path / "r18.pth")
    meta = info.to_dict()
    assert (meta["kind"], meta["model"], meta["dataset"]) == ("robust-eval", "resnet18_cifar", "cifar10")
    x = torch.rand(2, 3, 32, 32)
    net.eval()
    torch.testing.assert_close(wrapped(x), net((x - 0.5) / 0.5))


def test_checkpoint_model_kwargs_reach_timm(tmp_path):
    import timm

    net = timm.create_model("test_vit", num_classes=10, img_size=32)
    save_net_checkpoint(tmp_path / "vit.pth", net, "test_vit", 10, "cifar10", model_kwargs={"img_size": 32})
    wrapped, _ = load_checkpoint(tmp_path / "vit.pth")
    assert wrapped(torch.rand(1, 3, 32, 32)).shape == (1, 10)
