"""`timm train`: bad input, config files, end-to-end runs, checkpoints, resume, torchrun."""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from robust_eval.checkpoints.checkpoint import DATA_CONFIG_KEYS, FORMAT_VERSION, REQUIRED_KEYS
from robust_eval.data import write_cifar
from timm_ext.cli import app
from timm_ext.train import (
    AUGMENTATIONS,
    RESUME_KIND,
    TrainConfig,
    _validate,
    config_from_dict,
    load_config_file,
)

# A very small CNN registered with timm, so runs take seconds on a CPU. Written to a file so the
# torchrun workers (separate processes) can register it too.
TINY_MODEL = """
import torch
from timm.models import register_model
from torch import nn


class TinyNet(nn.Module):
    def __init__(self, num_classes=10, in_chans=3, drop_rate=0.0, **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.fc = nn.Linear(32, num_classes)
        self.pretrained_cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3,
                               "interpolation": "bilinear", "crop_pct": 1.0}

    def forward(self, x):
        return self.fc(self.body(x))


@register_model
def timm_ext_test_tinynet(pretrained=False, **kwargs):
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    return TinyNet(**kwargs)
"""
TINY = "timm_ext_test_tinynet"
runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def _restore_timm_factory():
    """imagefolder runs register the IPMix hook (process-wide): leave timm as we found it."""
    yield
    import timm_ext.registry

    timm_ext.registry.unregister()


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tinymodel")
    (folder / "timm_ext_test_tinymodel.py").write_text(TINY_MODEL)
    sys.path.insert(0, str(folder))
    importlib.import_module("timm_ext_test_tinymodel")
    yield folder
    sys.path.remove(str(folder))


def _digits_rgb32() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, upscaled to 32 x 32 RGB uint8."""
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = (digits.images / 16.0 * 255.0).astype(np.uint8)
    up = np.stack([cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR) for img in gray])
    return np.repeat(up[..., None], 3, axis=3), digits.target.astype(np.int64)


def write_digits(root: Path, n_train: int, n_test: int) -> Path:
    """The first ``n_train`` digits as training set and the next ``n_test`` as test set, in the CIFAR-10
    python layout under ``root``; returns ``root``."""
    images, labels = _digits_rgb32()
    folder = root / "cifar-10-batches-py"
    write_cifar(folder, "cifar10", images[:n_train], labels[:n_train], train=True)
    write_cifar(
        folder, "cifar10", images[n_train : n_train + n_test], labels[n_train : n_train + n_test], train=False
    )
    return root


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory) -> Path:
    """The digits in the CIFAR-10 python layout: 1,500 train / 297 test images."""
    return write_digits(tmp_path_factory.mktemp("digits"), 1500, 297)


@pytest.fixture(scope="module")
def small_digits_dir(tmp_path_factory) -> Path:
    """256 train / 64 test digits (for the quick option checks)."""
    return write_digits(tmp_path_factory.mktemp("digits_small"), 256, 64)


@pytest.fixture(scope="module")
def fractal_dir(tmp_path_factory) -> Path:
    """A mixing set of real photos (scikit-image)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("mixing")
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(data, name)()).resize((64, 64)).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """A tiny ImageFolder (train/ and val/): class 'bright' vs class 'dark' textures, 48 px."""
    root = tmp_path_factory.mktemp("imagefolder")
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("val", 16)):
        for label, (low, high) in {"bright": (150, 256), "dark": (0, 106)}.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.integers(low, high, size=(48, 48, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{i}.png")
    return root


def _invoke(*args: str):
    return runner.invoke(app, ["train", *args])


def _assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("timm: error: ")
    assert fragment in lines[0], lines[0]


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _quick(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data-dir", str(data_dir), "--model", TINY, "--epochs", "1", "-b", "32", "-j", "0",
        "--lr", "0.05", "--device", "cpu", "--no-progress", "--output", str(out), *extra,
    ]  # fmt: skip


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--aug", "bogus"], "unknown --aug 'bogus'"),
        (["--model", "no_such_net"], "unknown --model 'no_such_net'"),
        (["--dataset", "mnist"], "unknown --dataset 'mnist'"),
        (["--aug", "ipmix", "--jsd", "--aug-splits", "1"], "--jsd needs --aug-splits >= 2"),
        (["--jsd"], "--jsd needs augmented views"),
        (["--aug", "mixup", "--jsd"], "--jsd cannot be combined with --aug mixup"),
        (["--aug", "cutmix", "--jsd-loss"], "--jsd cannot be combined with --aug cutmix"),
        (["--aug-splits", "3"], "--aug-splits 3 needs --aug"),
        (["--aug", "mixup", "-b", "33"], "--batch-size must be even"),
        (["--aug", "ipmix", "--aa", "augmix-m3"], "must start with 'ipmix'"),
        (["--aug", "ipmix", "--aa", "ipmix-q3"], "unknown key 'q'"),
        (["--aug", "cutout", "--aa", "rand-m9"], "--aa only applies"),
        (["--aug", "ipmix", "--fractals", "/no/such/folder"], "--fractals '/no/such/folder' is not a folder"),
        (["--epochs", "0"], "--epochs must be in [1, 100000], got 0"),
        (["--lr", "-1"], "--lr must be in (0, 1000], got -1.0"),
        (["--sched", "plateau"], "unknown --sched 'plateau'"),
        (["--resume", "/no/such/last.pth"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(tiny_model_dir, small_digits_dir, tmp_path, args, fragment):
    model = [] if "--model" in args else ["--model", TINY]
    result = _invoke("--data-dir", str(small_digits_dir), *model, "--output", str(tmp_path / "o"), *args)
    _assert_one_line_error(result, fragment)


def test_real_cli_process_bad_input(tmp_path):
    """The module entry point (what the `timm` console script runs): exit 2, one stderr line."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "timm_ext.cli", "train", "--data-dir", str(tmp_path), "--aug", "bogus"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "timm: error: unknown --aug 'bogus'; expected one of none, ipmix, pixmix, augmix, randaugment, mixup, "
        "cutmix, cutout, adautomix, automix"
    ]


def test_missing_data_folder(tmp_path):
    _assert_one_line_error(_invoke("--data-dir", str(tmp_path / "nope")), "data folder")
    _assert_one_line_error(_invoke(), "--data-dir is required")


def test_data_folder_without_cifar_files(tmp_path):
    result = _invoke("--data-dir", str(tmp_path), "--output", str(tmp_path / "o"), "--device", "cpu")
    _assert_one_line_error(result, "no cifar10 python folder")


def test_empty_image_folder(tmp_path):
    (tmp_path / "data" / "train" / "a").mkdir(parents=True)
    result = _invoke(
        "--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"), "--output", str(tmp_path / "o"),
        "--model", "resnet18_cifar", "--device", "cpu",
    )  # fmt: skip
    _assert_one_line_error(result, "image folder")


def test_errors_found_after_loading_the_data(tiny_model_dir, small_digits_dir, tmp_path):
    base = ["--data-dir", str(small_digits_dir), "--model", TINY, "--device", "cpu", "-j", "0"]
    _assert_one_line_error(
        _invoke(*base, "--output", str(tmp_path / "a"), "--num-classes", "5"), "smaller than the 10"
    )
    _assert_one_line_error(
        _invoke(*base, "--output", str(tmp_path / "b"), "--opt", "bogus"), "unknown --opt 'bogus'"
    )
    _assert_one_line_error(
        _invoke(*base, "--output", str(tmp_path / "c"), "-b", "512"), "fewer than --batch-size"
    )
    # the run folders created for these runs are gone again (nothing was written)
    assert not any((tmp_path / name).exists() for name in "abc")


def test_resume_with_another_model_is_refused(tiny_model_dir, small_digits_dir, tmp_path):
    torch.save({"kind": RESUME_KIND, "train_args": {"model": "wrn40_4"}}, tmp_path / "last.pth")
    result = _invoke("--data-dir", str(small_digits_dir), "--model", TINY, "--resume", str(tmp_path))
    _assert_one_line_error(result, "trained with --model wrn40_4")


def test_resume_needs_a_resume_state(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "final.pth")
    _assert_one_line_error(
        _invoke("--data-dir", str(tmp_path), "--resume", str(tmp_path / "final.pth")),
        "not a `timm train` resume state",
    )


# --------------------------------------------------------------------------- config files
def test_config_file_sets_values_and_flags_win(tiny_model_dir, small_digits_dir, tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text(yaml.safe_dump({"aug": "bogus", "model": TINY, "data-dir": str(small_digits_dir)}))
    _assert_one_line_error(_invoke("--config", str(cfg_file)), "unknown --aug 'bogus'")  # the file is read
    # a flag overrides the file: the error is now about the splits, not the augmentation
    result = _invoke("--config", str(cfg_file), "--aug", "ipmix", "--jsd", "--aug-splits", "1")
    _assert_one_line_error(result, "--aug-splits >= 2")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ({"epoch": 3}, "unknown setting 'epoch'"),
        ({"epochs": "ten"}, "'epochs' must be a int"),
        ({"amp": "yes"}, "'amp' must be a bool"),
        ([1, 2], "must hold a mapping"),
    ],
)
def test_bad_config_files(tmp_path, content, fragment):
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text(yaml.safe_dump(content))
    _assert_one_line_error(_invoke("--config", str(cfg_file)), fragment)


def test_config_file_missing_or_invalid(tmp_path):
    _assert_one_line_error(_invoke("--config", str(tmp_path / "none.yaml")), "does not exist")
    (tmp_path / "broken.yaml").write_text("epochs: [1,\n")
    _assert_one_line_error(_invoke("--config", str(tmp_path / "broken.yaml")), "not valid YAML")


def test_config_round_trip(tmp_path):
    cfg = TrainConfig(model="wrn40_4", aug="ipmix", jsd=True, epochs=7, lr=0.2, fractals="/x", clip_grad=None)
    path = tmp_path / "args.yaml"
    path.write_text(yaml.safe_dump(cfg.to_dict()))
    assert config_from_dict(load_config_file(path)) == cfg


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*_ipmix.yaml")), ids=lambda p: p.name
)
def test_shipped_configs_are_valid(path):
    import timm

    import timm_ext.models  # noqa: F401

    values = load_config_file(path)
    cfg = config_from_dict(values)
    assert timm.is_model(cfg.model)
    assert cfg.aug == "ipmix" and cfg.jsd
    if cfg.dataset.startswith("cifar"):
        # the README's "other rows of the table": one flag on top of the file passes validation
        for aug in AUGMENTATIONS:
            _validate(
                config_from_dict({**values, "aug": aug, "jsd": aug in ("ipmix", "augmix"), "data_dir": "."})
            )


# --------------------------------------------------------------------------- end to end
def _load_checkpoint(path: Path) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    for key in REQUIRED_KEYS:
        assert key in ckpt, key
    assert ckpt["format_version"] == FORMAT_VERSION
    assert set(DATA_CONFIG_KEYS) <= set(ckpt["data_config"])
    return ckpt


@pytest.mark.slow
def test_train_digits_ipmix_jsd_then_resume(tiny_model_dir, digits_dir, fractal_dir, tmp_path):
    import timm

    out = tmp_path / "run"
    args = [
        "--data-dir", str(digits_dir), "--model", TINY, "--aug", "ipmix", "--jsd", "--fractals", str(fractal_dir),
        "-b", "64", "-j", "2", "--lr", "0.1", "--weight-decay", "0", "--device", "cpu", "--output", str(out),
        "--model-ema", "--model-ema-decay", "0.9",
    ]  # fmt: skip
    result = _invoke(*args, "--epochs", "2")
    assert result.exit_code == 0, result.output
    rows = _rows(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert rows[1]["val_top1"] and rows[1]["ema_val_top1"]

    final = _load_checkpoint(out / "final.pth")
    assert final["model"] == TINY and final["dataset"] == "cifar10" and final["num_classes"] == 10
    assert final["data_config"]["input_size"] == [3, 32, 32]
    assert final["train_args"]["aug"] == "ipmix" and final["train_args"]["aug_splits"] == 3
    assert "state_dict_ema" in final and final["epoch"] == 2
    model = timm.create_model(final["model"], num_classes=final["num_classes"])
    model.load_state_dict(final["state_dict"])  # what robust-eval does
    best = _load_checkpoint(out / "best.pth")
    assert best["metrics"]["val_top1"] == max(float(r["val_top1"]) for r in rows)
    last = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert last["kind"] == RESUME_KIND and last["epoch"] == 2 and last["num_updates"] == 2 * (1500 // 64)

    # running into the same folder again without --resume is refused (no silent overwrite)
    _assert_one_line_error(_invoke(*args, "--epochs", "2"), "already holds a run")

    # --output defaults to the folder of the resumed last.pth
    no_output = [a for i, a in enumerate(args) if a != "--output" and (i == 0 or args[i - 1] != "--output")]
    result = _invoke(*no_output, "--epochs", "3", "--resume", str(out / "last.pth"))
    assert result.exit_code == 0, result.output
    resumed = _rows(out / "metrics.csv")
    assert resumed[:2] == rows
    assert resumed[2]["epoch"] == "3"
    assert float(resumed[2]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(resumed[2]["lr"]) == pytest.approx(1e-6)  # the 3-epoch cosine schedule ends at --min-lr
    last = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert last["epoch"] == 3 and last["num_updates"] == 3 * (1500 // 64)
    assert yaml.safe_load((out / "args.yaml").read_text())["epochs"] == 3


@pytest.mark.slow
def test_train_imagefolder_through_timm_factory(tiny_model_dir, image_folder, fractal_dir, tmp_path):
    out = tmp_path / "run"
    result = _invoke(
        "--dataset", "imagefolder", "--data-dir", str(image_folder), "--model", TINY, "--img-size", "32",
        "--aug", "ipmix", "--aa", "ipmix-w2-d2-b4-s1", "--fractals", str(fractal_dir), "--epochs", "3",
        "-b", "16", "-j", "2", "--lr", "0.05", "--device", "cpu", "--output", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = _rows(out / "metrics.csv")
    assert len(rows) == 3
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    ckpt = _load_checkpoint(out / "final.pth")
    assert ckpt["dataset"] == "imagefolder" and ckpt["num_classes"] == 2
    assert ckpt["class_names"] == ["bright", "dark"]
    assert ckpt["data_config"]["input_size"] == [3, 32, 32]


@pytest.mark.slow
@pytest.mark.parametrize(
    "extra",
    [
        ["--aug", "pixmix"],
        ["--aug", "augmix", "--jsd"],
        ["--aug", "randaugment"],
        ["--aug", "mixup"],
        ["--aug", "cutmix", "--smoothing", "0.1"],
        ["--aug", "cutout", "--amp"],
        ["--aug", "none", "--sched", "step", "--no-sched-on-updates", "--opt", "adamw", "--lr", "0.01"],
    ],
    ids=lambda e: "-".join(a.strip("-") for a in e[1:2] + e[2:3]),
)
def test_every_augmentation_runs(tiny_model_dir, small_digits_dir, fractal_dir, tmp_path, extra):
    out = tmp_path / "run"
    result = _invoke(*_quick(small_digits_dir, out, "--fractals", str(fractal_dir), *extra))
    assert result.exit_code == 0, result.output
    row = _rows(out / "metrics.csv")[0]
    assert np.isfinite(float(row["train_loss"]))
    assert float(row["val_top1"]) >= 0.0
    _load_checkpoint(out / "final.pth")


@pytest.mark.slow
def test_torchrun_two_processes_cpu(tiny_model_dir, small_digits_dir, fractal_dir, tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(tiny_model_dir)!r})
            import timm_ext_test_tinymodel  # noqa: F401
            from timm_ext.cli import main
            main()
            """
        )
    )
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
        "train", *_quick(small_digits_dir, out, "--aug", "ipmix", "--jsd", "--fractals", str(fractal_dir),
                         "--epochs", "2", "-b", "16"),
    ]  # fmt: skip
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = _rows(out / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    last = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert last["world_size"] == 2
    # 256 images shared by 2 processes, 16 per batch: 8 updates per epoch (not 16)
    assert last["num_updates"] == 2 * (256 // 2 // 16)
    # images seen per epoch across both ranks: 2 ranks x 8 batches x 16 images x 3 views
    images = float(rows[0]["train_images_per_s"]) * float(rows[0]["epoch_time_s"])
    assert images == pytest.approx(2 * 8 * 16 * 3, rel=0.02)
    # every test image evaluated exactly once across the two ranks: top-1 is a multiple of 1/64
    top1 = float(rows[-1]["val_top1"])
    assert abs(top1 * 64 / 100 - round(top1 * 64 / 100)) < 1e-6
    ckpt = _load_checkpoint(out / "final.pth")
    assert not any(k.startswith("module.") for k in ckpt["state_dict"])


@pytest.mark.slow
def test_vit_at_cifar_size_records_model_kwargs(small_digits_dir, fractal_dir, tmp_path):
    """A ViT trained at 32 px: the checkpoint says how to rebuild it (img_size) and the weights fit."""
    import timm

    out = tmp_path / "vit"
    extra = ["--img-size", "32", "--aug", "ipmix", "--opt", "adamw", "--lr", "0.001", "--amp"]
    # repeated options: the last one wins (--model, --lr)
    result = _invoke(
        *_quick(small_digits_dir, out, "--fractals", str(fractal_dir), *extra, "--model", "test_vit")
    )
    assert result.exit_code == 0, result.output
    ckpt = _load_checkpoint(out / "final.pth")
    assert ckpt["model_kwargs"] == {"img_size": 32}
    assert ckpt["data_config"]["input_size"] == [3, 32, 32]
    model = timm.create_model(ckpt["model"], num_classes=ckpt["num_classes"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["state_dict"])


# --------------------------------------------------------------------------- pretrained weights, never downloaded
def test_pretrained_file_loads_local_weights_and_replaces_a_different_head(tmp_path):
    import timm

    from timm_ext.train import _create_model

    source = timm.create_model("test_resnet", num_classes=10)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    head = {f"{source.default_cfg['classifier']}.weight", f"{source.default_cfg['classifier']}.bias"}
    for classes in (
        10,
        3,
    ):  # timm re-initializes the classifier for fine-tuning, like its own pretrained weights
        model = _create_model(
            TrainConfig(model="test_resnet", pretrained_file=str(path)), num_classes=classes
        )
        assert model.get_classifier().out_features == classes
        for key, value in source.state_dict().items():
            if key not in head:
                torch.testing.assert_close(model.state_dict()[key], value)
    first_conv = next(k for k, v in source.state_dict().items() if v.ndim == 4)
    fresh = _create_model(TrainConfig(model="test_resnet"), num_classes=10)
    assert not torch.equal(fresh.state_dict()[first_conv], source.state_dict()[first_conv])


def test_pretrained_never_downloads(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants
    import torch.hub

    from timm_ext.train import TrainError, _create_model

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    before = (hub_constants.HF_HUB_OFFLINE, torch.hub.download_url_to_file)
    with pytest.raises(TrainError, match=r"not available offline|nothing is downloaded"):
        _create_model(TrainConfig(model="resnet18", pretrained=True), num_classes=10)
    assert (hub_constants.HF_HUB_OFFLINE, torch.hub.download_url_to_file) == before  # restored afterwards


def test_missing_pretrained_file_is_one_line(tmp_path):
    result = _invoke("--data-dir", str(tmp_path), "--pretrained-file", str(tmp_path / "nope.pth"))
    _assert_one_line_error(result, "--pretrained-file")


def test_pretrained_blocks_hub_and_url_downloads_while_creating(monkeypatch):
    """--pretrained builds the model with the Hugging Face hub offline and URL downloads refused."""
    import huggingface_hub.constants as hub_constants
    import timm
    import torch.hub

    from timm_ext.train import TrainError, _create_model

    seen = {}

    def create_model(name, pretrained=False, **kwargs):
        seen.update(offline=hub_constants.HF_HUB_OFFLINE, pretrained=pretrained)
        torch.hub.download_url_to_file("https://example.invalid/weights.pth", "/nonexistent/w.pth")

    monkeypatch.setattr(timm, "create_model", create_model)
    with pytest.raises(TrainError, match="nothing is downloaded during a run"):
        _create_model(TrainConfig(model="resnet18", pretrained=True), num_classes=10)
    assert seen == {"offline": True, "pretrained": True}
