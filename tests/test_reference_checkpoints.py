"""The papers' reference checkpoints and bare state_dicts through ``robust-eval clean``.

Every checkpoint is written in the AugMix/PixMix/IPMix ``cifar.py`` format (random weights with
non-trivial BN statistics, DataParallel prefixes, SGD state); the expected error comes from the
independent reference forwards of tests/reference_nets.py with the papers' normalization
((x - 0.5) / 0.5 at 32 px) on the same images.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from reference_nets import REFERENCE_NETS, center_head, randomize, ref_wrn, write_reference_checkpoint
from robust_eval_fixtures import digits_32
from typer.testing import CliRunner

import timm_ext.models  # noqa: F401
from robust_eval.cli import app
from robust_eval.data import CIFAR_FOLDERS, write_cifar

runner = CliRunner()
N = 40


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("refdata")
    images = digits_32()[0][:N]
    rng = np.random.default_rng(0)
    labels = {"cifar10": rng.integers(0, 10, N), "cifar100": rng.integers(0, 100, N)}
    for ds, folder in CIFAR_FOLDERS.items():
        write_cifar(root / folder, ds, images, labels[ds])
    return root, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, labels


def _expected_error(reference, sd, x, labels, mean, std) -> float:
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        pred = reference(sd, (x - m) / s).argmax(1).numpy()
    assert len(set(pred.tolist())) > 1  # the weights discriminate: a wrong mapping would change the error
    return float((pred != labels).mean())


def _clean(args, out):
    result = runner.invoke(app, ["clean", *map(str, args), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads((out / "clean.json").read_text())


#: kind -> (data set, classes); IPMix's resnet18() always builds 100 classes.
CASES = {
    "wrn": ("cifar10", 10),
    "resnext": ("cifar10", 10),
    "densenet": ("cifar100", 100),
    "resnet": ("cifar100", 100),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(CASES))
def test_reference_checkpoint_evaluates_with_no_flags(kind, data, tmp_path):
    root, x, labels = data
    ds, classes = CASES[kind]
    name, reference = REFERENCE_NETS[kind]
    net = timm.create_model(name, num_classes=classes).eval()
    randomize(net, seed=5)
    sd = center_head(net, (x - 0.5) / 0.5)
    ckpt = write_reference_checkpoint(tmp_path / "checkpoint.pth.tar", net, kind, ds)
    raw = torch.load(ckpt, weights_only=True)  # everything in it, optimizer included, is plain data
    assert all(k.startswith("module.") for k in raw["state_dict"]) and raw["optimizer"]["state"]
    res = _clean([ckpt, "--data-dir", root], tmp_path / "out")
    expected = _expected_error(reference, sd, x, labels[ds], (0.5,) * 3, (0.5,) * 3)
    assert res["suites"]["clean"]["top1_error"] == pytest.approx(expected, abs=1e-12)
    ck = res["checkpoint"]
    assert (ck["kind"], ck["model"], ck["dataset"], ck["num_classes"]) == ("reference", name, ds, classes)
    assert ck["data_config"]["source"] == "reference format"
    assert ck["data_config"]["mean"] == [0.5] * 3 and ck["data_config"]["input_size"] == [3, 32, 32]
    assert ck["reference"]["model"] == kind and ck["reference"]["best_acc"] == pytest.approx(0.4321)


def test_any_wrn_size_is_inferred_from_the_shapes(tmp_path):
    from robust_eval.checkpoints.formats import load_checkpoint

    net = timm.create_model("wrn_cifar", depth=16, widen_factor=3, num_classes=100).eval()
    sd = randomize(net, seed=6)
    ckpt = write_reference_checkpoint(tmp_path / "ck.pth.tar", net, "wrn", "cifar100")
    wrapped, info = load_checkpoint(ckpt)
    meta = info.to_dict()
    assert meta["model"] == "wrn_cifar" and meta["model_kwargs"] == {"depth": 16, "widen_factor": 3}
    assert meta["reference"]["architecture"] == "WRN-16-3"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), ref_wrn(sd, (x - 0.5) / 0.5), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_bare_state_dict_with_mean_std_flags(data, tmp_path):
    root, x, labels = data
    net = timm.create_model("wrn40_2", num_classes=10).eval()
    randomize(net, seed=7)
    mean, std = (0.4, 0.45, 0.5), (0.25, 0.25, 0.3)
    sd = center_head(net, (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    torch.save(sd, tmp_path / "bare.pth")
    args = [tmp_path / "bare.pth", "--data-dir", root, "--model", "wrn40_2", "--num-classes", "10"]
    res = _clean(
        [*args, "--mean", ",".join(map(str, mean)), "--std", ",".join(map(str, std))], tmp_path / "o"
    )
    assert res["suites"]["clean"]["top1_error"] == pytest.approx(
        _expected_error(ref_wrn, sd, x, labels["cifar10"], mean, std)
    )
    config = res["checkpoint"]["data_config"]
    assert config["source"] == "flag" and config["mean"] == pytest.approx(list(mean))
    assert config["sources"]["std"] == "flag" and config["sources"]["input_size"] == "architecture default"
    # the same file without flags: the architecture's pretrained_cfg (0.5 / 0.5), said so
    res = _clean(args, tmp_path / "o2")
    assert res["checkpoint"]["data_config"]["source"] == "architecture default"
    assert res["suites"]["clean"]["top1_error"] == pytest.approx(
        _expected_error(ref_wrn, sd, x, labels["cifar10"], (0.5,) * 3, (0.5,) * 3)
    )


def test_bare_state_dict_in_a_reference_layout_needs_no_model_flag(tmp_path):
    from robust_eval.checkpoints.formats import load_checkpoint

    net = timm.create_model("densenet40_k12", num_classes=10)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "d.pth")
    _, info = load_checkpoint(tmp_path / "d.pth")
    meta = info.to_dict()
    assert (meta["model"], meta["num_classes"]) == ("densenet40_k12", 10)
    assert meta["inferred_architecture"] == "DenseNet-40 (k=12)"
    assert meta["data_config"]["source"] == "architecture default" and meta["data_config"]["std"] == [0.5] * 3


@pytest.mark.slow
def test_normalization_is_printed_with_its_source(data, tmp_path):
    root, _, _ = data
    net = timm.create_model("resnext29_4x32d", num_classes=10)
    ckpt = write_reference_checkpoint(tmp_path / "r.pth.tar", net, "resnext", "cifar10")
    result = runner.invoke(
        app, ["clean", str(ckpt), "--data-dir", str(root), "--out", str(tmp_path / "o"), "--input-size", "32"]
    )
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stderr.splitlines() if ln.startswith("normalization"))
    assert (
        "mean (0.5, 0.5, 0.5)" in line
        and "[reference format" in line
        and "32 px" in line
        and "[flag]" in line
    )


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_unknown_checkpoint_names_what_was_found(tmp_path):
    torch.save(
        {"net": {"encoder.conv.weight": torch.zeros(1), "encoder.fc.bias": torch.zeros(1)}, "step": 3},
        tmp_path / "x.pth",
    )
    line = _one_line_error(
        runner.invoke(app, ["clean", str(tmp_path / "x.pth"), "--out", str(tmp_path / "o")])
    )
    assert (
        "top-level keys: ['net', 'step']" in line and "encoder.conv.weight" in line and "--model NAME" in line
    )


def test_unsupported_reference_model_and_bad_flags(tmp_path):
    torch.save(
        {
            "epoch": 1,
            "dataset": "cifar10",
            "model": "allconv",
            "state_dict": {"module.c.weight": torch.zeros(1)},
        },
        tmp_path / "a.pth",
    )
    line = _one_line_error(
        runner.invoke(app, ["clean", str(tmp_path / "a.pth"), "--out", str(tmp_path / "o")])
    )
    assert "'allconv'" in line and "wrn" in line
    net = timm.create_model("wrn40_2", num_classes=10)
    ckpt = write_reference_checkpoint(tmp_path / "w.pth.tar", net, "wrn", "cifar10")
    for flag, value, match in (
        ("--mean", "128,128,128", "0..1"),
        ("--std", "0.2,0.2", "1 or 3 values"),
        ("--input-size", "3,32,16", "H = W"),
        ("--crop-pct", "1.5", "(0, 1]"),
    ):
        line = _one_line_error(
            runner.invoke(app, ["clean", str(ckpt), flag, value, "--out", str(tmp_path / "o")])
        )
        assert flag in line and match in line
