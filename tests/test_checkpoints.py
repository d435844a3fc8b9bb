"""Checkpoint formats: one table of parsers, one frozen record, the model_kwargs allow-list."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from alexnet_fixtures import write_compact_alexnet
from robust_eval_fixtures import (
    MODEL,
    save_net_checkpoint,
    trained_state_dict,
    write_bare_state_dict,
    write_project_checkpoint,
    write_timm_train_checkpoint,
)

from robust_eval.checkpoints import formats as models
from robust_eval.checkpoints.formats import (
    FORMATS,
    CheckpointError,
    CheckpointFormat,
    CheckpointInfo,
    ParseRequest,
    find_format,
    load_checkpoint,
)


def _raw(path):
    return torch.load(path, weights_only=False)


def test_every_format_is_one_row_and_recognised_by_it(tmp_path):
    assert [f.name for f in FORMATS] == [
        "robust-eval",
        "reference",
        "torchvision-alexnet",
        "timm-train",
        "state_dict",
    ]
    files = {
        "robust-eval": write_project_checkpoint(tmp_path / "p.pth"),
        "timm-train": write_timm_train_checkpoint(tmp_path / "t.pth"),
        "state_dict": write_bare_state_dict(tmp_path / "b.pth"),
        "torchvision-alexnet": write_compact_alexnet(tmp_path / "a.pth"),
    }
    for name, path in files.items():
        assert find_format(_raw(path), path).name == name
    with pytest.raises(CheckpointError, match="matches no known checkpoint format"):
        find_format({"weights": [1, 2]}, tmp_path / "x.pth")


def test_load_returns_one_frozen_record_whose_dict_is_the_result_block(tmp_path):
    path = write_project_checkpoint(tmp_path / "p.pth")
    _, info = load_checkpoint(path)
    assert isinstance(info, CheckpointInfo)
    assert (info.kind, info.model, info.num_classes, info.dataset) == ("robust-eval", MODEL, 10, "cifar10")
    assert info.config_source == "checkpoint" and info.path == str(path) and info.state_dict == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.model = "other"  # type: ignore[misc]
    meta = info.to_dict()
    assert list(meta) == [
        "path",
        "sha256",
        "kind",
        "model",
        "num_classes",
        "dataset",
        "dataset_inferred_from_classes",
        "ema",
        "data_config",
        "input_contract",
    ]
    assert json.loads(json.dumps(meta)) == meta  # JSON-native
    meta["data_config"]["mean"][0] = 9.0  # a fresh copy: the record is not changed through it
    assert info.data_config["mean"][0] != 9.0


def test_adding_a_format_is_one_parser_and_one_row(tmp_path, monkeypatch):
    """A made-up format {"weights": ..., "net": NAME, "classes": K}: one parser + one table row."""

    def parse(raw, request: ParseRequest) -> CheckpointInfo:
        return CheckpointInfo("toy", raw["weights"], raw["net"], raw["classes"], "cifar10")

    row = CheckpointFormat("toy", lambda raw: set(raw) == {"weights", "net", "classes"}, parse)
    monkeypatch.setattr(models, "FORMATS", (row, *FORMATS))
    torch.save({"weights": trained_state_dict(), "net": MODEL, "classes": 10}, tmp_path / "toy.pth")
    wrapped, info = load_checkpoint(tmp_path / "toy.pth", data_overrides={"input_size": [3, 32, 32]})
    assert (info.kind, info.model, info.dataset) == ("toy", MODEL, "cifar10")
    assert wrapped(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_torchvision_alexnet_weights_load_with_no_flags(tmp_path):
    import torchvision

    path = write_compact_alexnet(tmp_path / "alexnet-owt-7be5be79.pth")
    wrapped, info = load_checkpoint(path)
    assert (info.kind, info.model, info.num_classes, info.dataset) == (
        "torchvision-alexnet",
        "alexnet",
        1000,
        "imagenet",
    )
    assert not info.dataset_inferred_from_classes
    config = info.data_config
    assert config["input_size"] == [3, 224, 224] and config["crop_pct"] == pytest.approx(0.875)
    assert config["source"] == "reference format" and "torchvision AlexNet" in config["detail"]
    net = torchvision.models.alexnet(weights=None)
    net.load_state_dict(torch.load(path, weights_only=True))
    x = torch.rand(2, 3, 224, 224)
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    with torch.inference_mode():
        torch.testing.assert_close(wrapped(x), net.eval()((x - mean) / std))
    with pytest.raises(CheckpointError, match="drop --model"):
        load_checkpoint(path, model="resnet18")
    with pytest.raises(CheckpointError, match="no EMA weights"):
        load_checkpoint(path, ema=True)


def test_ema_on_a_file_without_ema_weights_is_refused_not_ignored(tmp_path):
    with pytest.raises(CheckpointError, match=r"bare state_dict: it has no EMA weights \(drop --ema\)"):
        load_checkpoint(write_bare_state_dict(tmp_path / "b.pth"), model=MODEL, num_classes=10, ema=True)


def test_checkpoint_kwargs_are_recorded(tmp_path):
    import timm

    net = timm.create_model("test_vit", num_classes=10, img_size=32)
    save_net_checkpoint(tmp_path / "vit.pth", net, "test_vit", 10, "cifar10", model_kwargs={"img_size": 32})
    _, info = load_checkpoint(tmp_path / "vit.pth")
    assert info.model_kwargs == {"img_size": 32} and info.to_dict()["model_kwargs"] == {"img_size": 32}


def _crafted(tmp_path, kwargs):
    """A project-format checkpoint whose model_kwargs were written by someone else."""
    import timm

    net = timm.create_model(MODEL, num_classes=10)
    return save_net_checkpoint(tmp_path / "crafted.pth", net, MODEL, 10, "cifar10", model_kwargs=kwargs)


def test_model_kwargs_cannot_make_timm_open_another_file(tmp_path, monkeypatch):
    """checkpoint_path in model_kwargs would make timm.create_model torch.load a second file."""
    import builtins

    import timm

    other = write_bare_state_dict(tmp_path / "other.pth")
    ckpt = _crafted(tmp_path, {"checkpoint_path": str(other)})
    opened, built = [], []
    real_open, real_load, real_create = builtins.open, torch.load, timm.create_model

    def spy_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def spy_load(f, *args, **kwargs):
        opened.append(str(f))
        return real_load(f, *args, **kwargs)

    def spy_create(*args, **kwargs):
        built.append(kwargs)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(torch, "load", spy_load)
    monkeypatch.setattr(timm, "create_model", spy_create)
    with pytest.raises(
        CheckpointError, match=r"model_kwargs key 'checkpoint_path' is not an allowed architecture argument"
    ):
        load_checkpoint(ckpt)
    assert str(ckpt) in opened  # the spies see file access ...
    assert str(other) not in opened  # ... and the other file was never opened
    assert built == []  # nothing reached timm


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"pretrained": True}, "'pretrained'"),
        ({"pretrained_cfg": {"file": "/etc/passwd"}}, "'pretrained_cfg'"),
        ({"pretrained_cfg_overlay": {"url": "http://x"}}, "'pretrained_cfg_overlay'"),
        ({"cache_dir": "/tmp"}, "'cache_dir'"),
        ({"features_only": True}, "'features_only'"),
        ({"img_size": {"h": 32}}, r"model_kwargs\['img_size'\] is a dict"),
        ({"layers": ["a", "b"]}, r"model_kwargs\['layers'\] is a list"),
    ],
)
def test_model_kwargs_outside_the_allow_list_are_refused(tmp_path, kwargs, named):
    with pytest.raises(CheckpointError, match=named):
        load_checkpoint(_crafted(tmp_path, kwargs))


def test_crafted_model_kwargs_fail_the_cli_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from robust_eval.cli import app

    ckpt = _crafted(tmp_path, {"checkpoint_path": str(write_bare_state_dict(tmp_path / "other.pth"))})
    r = CliRunner().invoke(
        app, ["clean", str(ckpt), "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("robust-eval: error: checkpoint") and "'checkpoint_path'" in line
    assert not (tmp_path / "o").exists()
