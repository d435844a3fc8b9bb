"""`timm train` hardening: concurrent runs, kills, resume folders, EXIF, disk problems, size, progress, help.

Kills are real: a `timm train` subprocess is killed (SIGKILL) or interrupted (SIGINT) in its first
epoch. Disk problems use a real tmpfs (read-only, or a few KiB), skipped where mounting is not allowed.
"""

from __future__ import annotations

import ast
import io
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import test_timm_train
import torch
from PIL import Image
from test_timm_train import TINY, write_digits
from typer.testing import CliRunner

from robust_mix.files import decode_image
from timm_ext.cli import app
from timm_ext.train import TrainConfig
from timm_ext.train.data import Data, load_data
from timm_ext.train.loop import EpochProgress

REPO = Path(__file__).resolve().parents[1]
tiny_model_dir = test_timm_train.tiny_model_dir  # the fixture that registers the tiny test model
runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["train", *args])


def _one_line(result, code: int, fragment: str, after_start: bool = False) -> str:
    """The run failed with exit ``code`` and one error line (``after_start``: after the start line)."""
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    if after_start:
        assert lines[0].startswith("timm train: "), result.output
        lines = lines[1:]
    assert len(lines) == 1 and lines[0].startswith("timm: error: "), result.output
    assert fragment in lines[0] and "Traceback" not in result.output, lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits"), 256, 64)


@pytest.fixture(scope="module")
def big_digits(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits_big"), 1500, 64)


def _quick(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data-dir", str(data), "--model", TINY, "--epochs", "1", "-b", "32", "-j", "0",
        "--device", "cpu", "--no-progress", "--output", str(out), *extra,
    ]  # fmt: skip


# --------------------------------------------------------------------------- kills, locks
def _start(tiny_dir: Path, tmp_path: Path, args: list[str]) -> subprocess.Popen:
    """A real `timm train` process (the tiny test model registered first), stderr piped."""
    launcher = tmp_path / "launch_timm.py"
    launcher.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(tiny_dir)!r})\n"
        "import timm_ext_test_tinymodel  # noqa: F401\n"
        "from timm_ext.cli import main\n"
        "sys.argv = ['timm', *sys.argv[1:]]\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "NO_ALBUMENTATIONS_UPDATE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(launcher), "train", *args], stderr=subprocess.PIPE, text=True, env=env
    )


def _wait_for_start(proc: subprocess.Popen) -> str:
    """Read stderr until the start line (printed after set-up, right before epoch 1)."""
    deadline = time.monotonic() + 600
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if line.startswith("timm train: "):
            return line
    proc.kill()
    raise AssertionError(f"no start line: {''.join(seen)}")


def _slow_args(data: Path, out: Path) -> list[str]:
    # an epoch of seconds (1,500 images through AugMix at 64 px), so the signals land in epoch 1
    return _quick(data, out, "--aug", "augmix", "--img-size", "64")


@pytest.mark.slow
def test_second_run_refused_then_a_killed_first_epoch_leaves_a_reusable_folder(
    tiny_model_dir, big_digits, tmp_path
):
    out = tmp_path / "run"
    proc = _start(tiny_model_dir, tmp_path, _slow_args(big_digits, out))
    try:
        _wait_for_start(proc)
        second = _invoke(*_quick(big_digits, out))  # a second run into the same folder
        _one_line(second, 2, "is in use by timm train")
    finally:
        proc.kill()  # SIGKILL in epoch 1
        proc.wait(timeout=60)
    assert not (out / "last.pth").exists()  # it really died before its first checkpoint
    assert not (out / "args.yaml").exists()  # so nothing claims the folder holds a run
    rerun = _invoke(*_quick(big_digits, out))  # the same folder is reused (the dead run's lock taken over)
    assert rerun.exit_code == 0, rerun.output
    assert {"last.pth", "args.yaml", "final.pth"} <= {p.name for p in out.iterdir()}


@pytest.mark.slow
def test_ctrl_c_in_the_first_epoch_prints_a_real_command(tiny_model_dir, big_digits, tmp_path):
    out = tmp_path / "run"
    proc = _start(tiny_model_dir, tmp_path, _slow_args(big_digits, out))
    _wait_for_start(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("timm: interrupted; no checkpoint was written yet; start again with: timm train ")
    assert "<" not in last and not out.exists()  # no placeholder; the empty run folder is gone
    words = shlex.split(last.split("start again with: ", 1)[1])
    assert words[:2] == ["timm", "train"] and words[words.index("--output") + 1] == str(out)
    again = _invoke(*[w for w in words[2:] if w], "--img-size", "32")  # the printed command runs
    assert again.exit_code == 0, again.output


def test_resume_into_another_run_is_refused_and_resume_dir_takes_the_saved_settings(
    tiny_model_dir, digits, tmp_path
):
    a, b = tmp_path / "a", tmp_path / "b"
    first = _invoke(*_quick(digits, a, "--seed", "7"))
    assert first.exit_code == 0, first.output
    assert "at 32 px" in first.output  # the start line names the image size
    assert _invoke(*_quick(digits, b)).exit_code == 0
    before = {p.name: p.read_bytes() for p in b.iterdir()}
    refused = _invoke("--resume", str(a / "last.pth"), "--output", str(b))
    _one_line(refused, 2, f"--output '{b}' already holds another run")
    assert {p.name: p.read_bytes() for p in b.iterdir()} == before  # run b untouched

    # --resume DIR alone: the saved settings (data folder, model, batch size, seed, ...); --epochs given wins
    resumed = _invoke("--resume", str(a), "--epochs", "2")
    assert resumed.exit_code == 0, resumed.output
    import yaml

    saved = yaml.safe_load((a / "args.yaml").read_text())
    assert saved["epochs"] == 2 and saved["seed"] == 7 and saved["data_dir"] == str(digits)
    assert saved["batch_size"] == 32 and saved["model"] == TINY
    assert len((a / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs


# --------------------------------------------------------------------------- bad files, disks
def test_pretrained_file_of_another_model_and_empty_resume_are_one_line(digits, tmp_path):
    weights = tmp_path / "w.pth"
    torch.save({"not_a_layer.weight": torch.zeros(2)}, weights)
    out = tmp_path / "o"
    result = _invoke("--data-dir", str(digits), "--pretrained-file", str(weights), "--output", str(out),
                     "--epochs", "1", "-j", "0", "--device", "cpu")  # fmt: skip
    _one_line(result, 2, f"--pretrained-file '{weights}' cannot start --model wrn40_4")
    assert not out.exists()  # the run folder it made is removed again
    zero = tmp_path / "zero.pth"
    zero.write_bytes(b"")
    _one_line(_invoke(*_quick(digits, out, "--resume", str(zero))), 2, "is empty (0 bytes)")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    _one_line(_invoke(*_quick(digits, a_file)), 2, "is a file, not a folder")


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a tmpfs with the given options (root only; skipped where mounting is not allowed)."""
    mounts: list[Path] = []

    def mount(options: str) -> Path:
        target = tmp_path / f"mnt{len(mounts)}"
        target.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        mounts.append(target)
        return target

    yield mount
    for target in mounts:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_read_only_output_folder_is_one_line_exit_1(tiny_model_dir, digits, tmpfs):
    folder = tmpfs("ro,size=64k")
    result = _invoke(*_quick(digits, folder / "run"))
    _one_line(result, 1, "read-only")
    assert list(folder.iterdir()) == []


def test_full_disk_is_one_line_exit_1_and_nothing_half_written(tiny_model_dir, digits, tmpfs):
    folder = tmpfs("size=64k")  # room for best.pth, not for last.pth as well
    out = folder / "run"
    result = _invoke(*_quick(digits, out))
    _one_line(result, 1, "cannot write", after_start=True)
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [name for name in left if name.startswith(".")], left  # no temporary file, no stale lock
    for name in left:  # what is there is whole
        assert name.endswith(".pth"), left
        torch.load(out / name, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------- data
def test_image_folder_applies_exif_orientation_like_robust_eval(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "train" / label).mkdir(parents=True)
        pixels = rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)  # landscape as stored
        exif = Image.Exif()
        exif[0x0112] = 6  # "rotate 90 CW to display": upright it is portrait
        Image.fromarray(pixels).save(tmp_path / "train" / label / "photo.jpg", exif=exif, quality=95)
    data = load_data(TrainConfig(dataset="imagefolder", data_dir=str(tmp_path)))
    assert data.class_names == ["a", "b"] and len(data.train) == 2
    for index, label in enumerate(("a", "b")):
        image, target = data.train[index]
        path = tmp_path / "train" / label / "photo.jpg"
        assert target == index
        np.testing.assert_array_equal(np.asarray(image), decode_image(path))  # robust-eval's decoder
        assert np.asarray(image).shape == (40, 24, 3)  # upright, unlike a plain Image.open


def test_fixed_size_data_sets_train_at_their_own_size():
    from timm_ext.train.setup import _build_model

    cfg = TrainConfig(model="test_resnet")  # timm's default input for it: 160 px
    data = Data(train=None, val=None, num_classes=10, class_names=[], dataset="cifar10", native_size=32)
    _, data_cfg, _ = _build_model(cfg, data, 10, torch.device("cpu"))
    assert data_cfg["input_size"] == (3, 32, 32)
    cfg.img_size = 48
    assert _build_model(cfg, data, 10, torch.device("cpu"))[1]["input_size"] == (3, 48, 48)
    folder = Data(train=None, val=None, num_classes=10, class_names=[], dataset="imagefolder")
    assert _build_model(TrainConfig(model="test_resnet"), folder, 10, torch.device("cpu"))[1][
        "input_size"
    ] == (
        3,
        160,
        160,
    )


# --------------------------------------------------------------------------- progress, help, structure
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_short_epoch_progress_moves_and_shows_an_eta():
    from rich.console import Console

    clock = _Clock()
    shown = Console(file=io.StringIO(), force_terminal=True, width=120)
    with EpochProgress(shown, "epoch 1/5", total=23, log_interval=50, enabled=True, get_time=clock) as bar:
        for step in range(6):  # 6 of 23 batches, far fewer than --log-interval 50
            clock.now += 0.5
            bar.advance(step, lambda: 2.5)
        text = Console(file=io.StringIO(), width=120)
        text.print(bar.progress.make_tasks_table(bar.progress.tasks))
        row = text.file.getvalue()
    assert "/23" in row and "0/23" not in row, row  # it moved
    assert "loss 2.5000" in row and "nan" not in row, row
    assert "-:--:--" not in row and "0:00:" in row, row  # an ETA


def test_help_is_readable_at_80_columns():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert "\u2026" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80

    def flat(text: str) -> str:  # the wrapping undone (click may also break after a hyphen)
        return " ".join(text.split()).replace("- ", "-")

    for f in fields(TrainConfig):
        assert flat(f.metadata["help"]) in flat(result.output), f.name  # every option's help, uncut


def test_timm_ext_has_short_functions_and_one_atomic_writer():
    for path in sorted((REPO / "timm_ext").rglob("*.py")):
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert node.end_lineno - node.lineno < 80, f"{path.name}:{node.name}"
        for private_writer in ("os.replace(", "mkstemp(", "NamedTemporaryFile("):
            assert private_writer not in source, f"{path.name}: {private_writer}"
