"""The three packages together, through their real command lines: `timm train --aug ipmix` writes a
checkpoint that `robust-eval all` evaluates with no other flags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from robust_eval_fixtures import SUBPROCESS_ENV, digits_32

from robust_eval.data import write_cifar


@pytest.mark.slow
def test_timm_train_then_robust_eval_all(tmp_path):
    images, labels = digits_32()
    write_cifar(tmp_path / "data" / "cifar-10-batches-py", "cifar10", images[:384], labels[:384], train=True)
    write_cifar(tmp_path / "data" / "cifar-10-batches-py", "cifar10", images[1500:1564], labels[1500:1564])
    train = [
        sys.executable, "-m", "timm_ext.cli", "train", "--data-dir", str(tmp_path / "data"), "--dataset", "cifar10",
        "--model", "test_resnet", "--aug", "ipmix", "--epochs", "2", "-b", "32", "-j", "0", "--lr", "0.1", "--hflip", "0",
        "--device", "cpu", "--no-progress", "--output", str(tmp_path / "run"),
    ]  # fmt: skip
    # trained at the data's own 32 px (the default since issue 9); digits are not mirror-symmetric
    done = subprocess.run(train, capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    checkpoint = tmp_path / "run" / "final.pth"
    assert checkpoint.is_file()

    evaluate = [
        sys.executable, "-m", "robust_eval.cli", "all", str(checkpoint), "--data-dir", str(tmp_path / "data"),
        "--subset", "48", "--out", str(tmp_path / "results"), "--json",
    ]  # fmt: skip
    done = subprocess.run(evaluate, capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["checkpoint"]["model"] == "test_resnet"
    suites = result["suites"]
    clean = suites["clean"]["top1_error"]
    assert 0.0 <= clean < 0.9  # two epochs on digits beat chance (0.9)
    adversarial = suites["adversarial"]
    assert adversarial["adversarial_error"] >= clean - 1e-9  # PGD never helps
    assert adversarial["max_linf_perturbation"] <= 2 / 255 + 1e-6
    assert adversarial["inside_unit_box"]
    assert {"auroc", "aupr", "fpr95"} <= set(next(iter(suites["ood"]["sets"].values())))
    assert "corruptions" in result["skipped"]  # no CIFAR-10-C under the data root: one line says where
