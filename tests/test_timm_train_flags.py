"""`timm train` flags named after timm's train.py, each checked against what timm itself does:
--split-bn, --sync-bn, --channels-last, --torchcompile, --drop-path, --grad-accum-steps, summary.csv,
--checkpoint-hist / --eval-metric, --recovery-interval, random erasing, the mixup flags,
--model-ema-warmup, the optional loggers, the default worker count, --pretrained-file at another size,
Ctrl-C between batches."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import torch
from test_timm_train import _assert_one_line_error, _invoke, tiny_model_dir, write_digits  # noqa: F401

from timm_ext.train import TrainConfig, TrainError
from timm_ext.train.config import default_workers

RESNET = ["--model", "test_resnet", "--img-size", "32"]


@pytest.fixture(scope="module")
def digits_64(tmp_path_factory) -> Path:
    """64 train / 32 test digits, 32 px, CIFAR-10 layout."""
    return write_digits(tmp_path_factory.mktemp("digits_64"), 64, 32)


def _args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data-dir", str(data), *RESNET, "-b", "16", "-j", "0", "--lr", "0.05", "--device", "cpu",
        "--no-progress", "--output", str(out), *extra,
    ]  # fmt: skip


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _setup(cfg: TrainConfig, out: Path, world: int = 1):
    from timm_ext.train.checks import validate
    from timm_ext.train.setup import setup

    validate(cfg)
    return setup(cfg, {"device": "cpu", "global_rank": 0, "world_size": world, "distributed": False}, out)


# --------------------------------------------------------------------------- model conversions
def test_split_bn_channels_last_compile_and_ema_warmup(digits_64, tmp_path):
    from timm.layers.split_batchnorm import SplitBatchNorm2d

    cfg = TrainConfig(
        data_dir=str(digits_64), model="test_resnet", img_size=32, aug="augmix", jsd=True, aug_splits=3,
        split_bn=True, channels_last=True, torchcompile=True, torchcompile_backend="eager", workers=0,
        batch_size=16, model_ema=True, model_ema_warmup=True, device="cpu",
    )  # fmt: skip
    run = _setup(cfg, tmp_path / "run")
    splits = [m for m in run.method.model.modules() if isinstance(m, SplitBatchNorm2d)]
    assert splits and all(m.num_splits == 3 and len(m.aux_bn) == 2 for m in splits)  # timm: num_aug_splits
    convs = [m.weight for m in run.method.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert isinstance(run.net, torch._dynamo.eval_frame.OptimizedModule)
    assert run.ema.use_warmup is True

    # the evaluated weights load strictly into the plain timm model (the clean view's BatchNorm)
    import timm

    from timm_ext.train.loop import _eval_weights

    weights = _eval_weights(run.method.model)
    assert not any("aux_bn" in k for k in weights)
    timm.create_model("test_resnet", num_classes=10).load_state_dict(weights)


@pytest.mark.usefixtures("tiny_model_dir")
def test_split_bn_needs_splits_and_sync_bn_needs_cuda(digits_64, tmp_path):
    result = _invoke(*_args(digits_64, tmp_path / "o", "--split-bn"))
    _assert_one_line_error(result, "--split-bn keeps one BatchNorm per augmentation split")

    from timm_ext.train.setup import _convert_norms

    cfg = TrainConfig(sync_bn=True)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert isinstance(
        _convert_norms(cfg, model, 1, torch.device("cpu"))[1], torch.nn.BatchNorm2d
    )  # one process
    with pytest.raises(TrainError, match="--sync-bn needs CUDA"):
        _convert_norms(cfg, model, 2, torch.device("cpu"))
    synced = _convert_norms(cfg, model, 2, torch.device("cuda"))
    assert isinstance(synced[1], torch.nn.SyncBatchNorm)


def test_drop_path_reaches_the_model(digits_64):
    from timm.layers import DropPath

    from timm_ext.train.data import load_data
    from timm_ext.train.setup import _build_model

    cfg = TrainConfig(data_dir=str(digits_64), model="test_resnet", img_size=32, drop_path=0.2)
    model, _, _ = _build_model(cfg, load_data(cfg), 10, torch.device("cpu"))
    rates = [m.drop_prob for m in model.modules() if isinstance(m, DropPath)]
    assert rates and max(rates) == pytest.approx(0.2)  # timm's stochastic-depth rule: up to the rate


def test_pretrained_file_at_another_size_than_the_models_default(digits_64, tmp_path):
    """A CNN trained at 32 px starts from its weights (it was: unexpected keyword argument 'img_size')."""
    import timm

    from timm_ext.train.data import load_data
    from timm_ext.train.setup import _build_model

    source = timm.create_model("test_resnet", num_classes=10)
    torch.save(source.state_dict(), tmp_path / "w.pth")
    cfg = TrainConfig(
        data_dir=str(digits_64), model="test_resnet", img_size=32, pretrained_file=str(tmp_path / "w.pth")
    )
    model, data_cfg, kwargs = _build_model(cfg, load_data(cfg), 10, torch.device("cpu"))
    assert kwargs == {} and data_cfg["input_size"] == (3, 32, 32)
    torch.testing.assert_close(model.conv1[0].weight, source.conv1[0].weight)


# --------------------------------------------------------------------------- data side
def test_random_erasing_is_timms_last_on_every_view(digits_64):
    from timm.data.random_erasing import RandomErasing

    from timm_ext.train.data import train_transforms

    cfg = TrainConfig(reprob=0.25, remode="const", recount=3)
    data_cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.5,) * 3, "interpolation": "bilinear"}
    _, _, final = train_transforms(cfg, data_cfg, None)
    erasing = final.transforms[-1]
    assert isinstance(erasing, RandomErasing)
    assert (erasing.probability, erasing.mode, erasing.max_count) == (0.25, "const", 3)
    _, _, final = train_transforms(TrainConfig(), data_cfg, None)
    assert not any(isinstance(t, RandomErasing) for t in final.transforms)


def test_mixup_flags_build_timms_mixup_as_train_py_does():
    from timm.data import Mixup

    from timm_ext.train.methods import MixupCutmix

    cfg = TrainConfig(
        aug="mixup", mixup=0.8, cutmix=1.0, mixup_prob=0.6, mixup_switch_prob=0.3, mixup_mode="elem",
        mixup_off_epoch=2, smoothing=0.1,
    )  # fmt: skip
    method = MixupCutmix(cfg, torch.nn.Linear(2, 10), 10)
    timm_fn = Mixup(  # timm train.py's mixup_args for the same flags
        mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.6, switch_prob=0.3, mode="elem",
        label_smoothing=0.1, num_classes=10,
    )  # fmt: skip
    for name in ("mixup_alpha", "cutmix_alpha", "mix_prob", "switch_prob", "mode", "label_smoothing"):
        assert getattr(method.mixup_fn, name) == getattr(timm_fn, name), name
    method.start_epoch(1)
    assert method.mixup_fn.mixup_enabled
    method.start_epoch(2)  # timm: `if epoch >= args.mixup_off_epoch` (0-based epoch)
    assert not method.mixup_fn.mixup_enabled
    alone = MixupCutmix(TrainConfig(aug="cutmix"), torch.nn.Linear(2, 10), 10).mixup_fn
    assert (alone.mixup_alpha, alone.cutmix_alpha) == (0.0, 1.0)


# --------------------------------------------------------------------------- optimisation and files
def test_grad_accum_steps_equals_the_bigger_batch(digits_64, tmp_path):
    """2 x 16 accumulated = one batch of 32 (a model without BatchNorm: test_vit; same images, same order)."""
    vit = ["--model", "test_vit", "--img-size", "32", "--aug", "none", "--epochs", "1", "--opt", "sgd"]
    one = _invoke(*_args(digits_64, tmp_path / "b32", *vit, "-b", "32"))
    two = _invoke(*_args(digits_64, tmp_path / "acc", *vit, "-b", "16", "--grad-accum-steps", "2"))
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    a = torch.load(tmp_path / "b32" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "acc" / "last.pth", weights_only=True)
    assert a["num_updates"] == b["num_updates"] == 2
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.usefixtures("tiny_model_dir")
def test_summary_csv_and_checkpoint_hist_follow_timm(digits_64, tmp_path):
    from timm.utils import update_summary

    out = tmp_path / "run"
    result = _invoke(
        *_args(digits_64, out, "--epochs", "3", "--checkpoint-hist", "2", "--eval-metric", "loss")
    )
    assert result.exit_code == 0, result.output
    rows = _rows(out / "summary.csv")
    timm_file = tmp_path / "timm_summary.csv"  # what timm's train.py writes for the same epoch
    update_summary(0, {"loss": 1.0}, {"loss": 1.0, "top1": 1.0, "top5": 1.0}, str(timm_file), lr=0.1)
    assert list(rows[0]) == next(csv.reader(timm_file.open()))
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]  # timm counts epochs from 0
    losses = {int(r["epoch"]) + 1: float(r["eval_loss"]) for r in rows}
    best_two = sorted(losses, key=losses.get)[:2]
    assert sorted(p.name for p in out.glob("checkpoint-*.pth")) == sorted(
        f"checkpoint-{e}.pth" for e in best_two
    )
    best = torch.load(out / "best.pth", weights_only=True)
    assert best["epoch"] == best_two[0]


@pytest.mark.usefixtures("tiny_model_dir")
def test_recovery_interval_resume_continues_mid_epoch(digits_64, tmp_path, monkeypatch):
    import timm_ext.train.loop as loop

    out = tmp_path / "run"
    args = _args(digits_64, out, "--epochs", "1", "--recovery-interval", "2")
    save = loop._save_recovery

    def save_then_stop(run, epoch, batches_done):
        save(run, epoch, batches_done)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "_save_recovery", save_then_stop)
        assert _invoke(*args).exit_code == 130
    state = torch.load(out / "recovery.pth", weights_only=True)
    assert (state["epoch"], state["batch"], state["num_updates"]) == (0, 2, 2)
    result = _invoke(*args, "--resume", str(out / "recovery.pth"))
    assert result.exit_code == 0, result.output
    last = torch.load(out / "last.pth", weights_only=True)
    assert last["num_updates"] == 4 and last["epoch"] == 1  # 64 images / 16: the 2 remaining batches
    assert not (out / "recovery.pth").exists()  # superseded by last.pth


# --------------------------------------------------------------------------- loggers, defaults, Ctrl-C
@pytest.mark.usefixtures("tiny_model_dir")
def test_loggers_only_when_installed_and_never_imported_otherwise(digits_64, tmp_path, monkeypatch):
    import importlib.machinery
    import types

    code = "import sys, timm_ext.cli, timm_ext.train; print(any(m in sys.modules for m in ('wandb', 'tensorboard')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr

    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    result = _invoke(*_args(digits_64, tmp_path / "o", "--log-wandb"))
    _assert_one_line_error(result, "--log-wandb needs the wandb package")
    monkeypatch.undo()

    logged: list[tuple[dict, int]] = []
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kwargs: fake
    fake.log = lambda values, step: logged.append((values, step))
    fake.finish = lambda: None
    monkeypatch.setitem(sys.modules, "wandb", fake)
    result = _invoke(*_args(digits_64, tmp_path / "w", "--log-wandb", "--epochs", "2"))
    assert result.exit_code == 0, result.output
    assert [step for _, step in logged] == [1, 2] and "train_loss" in logged[0][0]


def test_default_workers_never_exceed_the_cores():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert TrainConfig().workers == default_workers() == max(1, min(4, cores))


def test_first_ctrl_c_stops_between_batches_second_at_once():
    from timm_ext.train.state import interrupt_between_batches

    with interrupt_between_batches() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested  # the step in progress goes on
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    def failing_loader():
        yield 1
        raise RuntimeError("DataLoader worker (pid 1) exited unexpectedly")

    with interrupt_between_batches() as stop:
        with pytest.raises(RuntimeError, match="exited unexpectedly"):  # no stop requested: an error
            list(stop.guard(failing_loader()))
        stop.requested = True  # the workers got the terminal's Ctrl-C too: the interruption
        with pytest.raises(KeyboardInterrupt):
            list(stop.guard(failing_loader()))


def _image_root(root: Path, splits: tuple[str, ...]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in splits:
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(8 if split == "train" else 3 + len(split)):  # each split its own size
                Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
                    root / split / label / f"{i}.png"
                )
    return root


@pytest.mark.parametrize(
    ("splits", "validated"),
    [(("train", "val", "test"), "test"), (("train", "validation"), "validation"), (("train",), None)],
)
def test_validation_split_is_robust_evals_held_out_split(tmp_path, splits, validated):
    """One rule for both commands: the first of test/, val/, validation/ (robust_mix.files.EVAL_SPLITS)."""
    from robust_eval.data.images import EVAL_SPLITS as EVAL_SIDE
    from robust_mix.files import EVAL_SPLITS
    from timm_ext.train.data import load_data

    assert EVAL_SIDE is EVAL_SPLITS
    root = _image_root(tmp_path / "data", splits)
    data = load_data(TrainConfig(dataset="imagefolder", data_dir=str(root)))
    if validated is None:
        assert data.val is None
    else:
        assert len(data.val) == 2 * (3 + len(validated))


@pytest.mark.usefixtures("tiny_model_dir")
def test_no_validation_split_is_said_and_a_drivers_resume_hint_replaces_the_advice(tmp_path, monkeypatch):
    import timm_ext.train.loop as loop
    from timm_ext.cli import RESUME_HINT_ENV

    root = _image_root(tmp_path / "data", ("train",))
    args = [
        "--dataset", "imagefolder", "--data-dir", str(root), "--model", "timm_ext_test_tinynet", "--img-size", "16",
        "-b", "8", "-j", "0", "--epochs", "2", "--device", "cpu", "--no-progress", "--output", str(tmp_path / "o"),
    ]  # fmt: skip

    def interrupt(*_args, **_kwargs) -> None:
        raise KeyboardInterrupt

    monkeypatch.setenv(RESUME_HINT_ENV, "run make demo again")
    monkeypatch.setattr(loop, "_report_epoch", interrupt)
    result = _invoke(*args)
    assert result.exit_code == 130
    assert "no validation split (test/, val/, validation/ under --data-dir)" in result.output
    assert "interrupted; run make demo again" in result.output and "--resume" not in result.output


@pytest.mark.slow
def test_gpu_smoke_script_dry_mode_runs_on_the_cpu(tmp_path):
    """benchmarks/gpu_smoke.sh --dry: the GPU script's steps and flags, CPU-sized."""
    root = Path(__file__).parents[1]
    env = {**os.environ, "PYTHON": sys.executable, "WORK": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu_smoke.sh"), "--dry"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert any(line.startswith("timm train smoke:") and "img/s" in line for line in done.stdout.splitlines())
    assert len(_rows(tmp_path / "run" / "metrics.csv")) == 2
    assert "robust-eval corruptions images/s" in done.stdout  # then the evaluation throughput table
