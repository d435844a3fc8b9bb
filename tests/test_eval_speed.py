"""robust-eval speed flags (robust_eval.speed) and decoding at scale (robust_eval.data.gpu_decode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from robust_eval_fixtures import (
    SUBPROCESS_ENV,
    heldout_digits,
    make_context,
    make_data_root,
    write_project_checkpoint,
)

from robust_eval import suites as S
from robust_eval.data import FileSource
from robust_eval.data.gpu_decode import decode_batches, resize_center_crop_tensor
from robust_eval.report.compare import protocol_differences
from robust_eval.speed import SpeedSettings, resolve_speed
from robust_eval.suites import _batches
from robust_mix.errors import UsageError
from robust_mix.files import resize_center_crop

CUDA = torch.cuda.is_available()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "robust_eval.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=300)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("speed")
    make_data_root(root / "data", n=60, with_p=False, with_c=False)
    return write_project_checkpoint(root / "ckpt.pth"), root / "data"


# ------------------------------------------------------------------------------------------------
# options
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--amp", "fp16"], "--amp fp16 needs a CUDA device"),
        (["--amp", "fp32"], "--amp must be one of off, bf16, fp16"),
        (["--decode", "gpu"], "--decode gpu needs a CUDA device"),
        (["--decode", "nvjpeg"], "--decode must be one of cpu, gpu, auto"),
    ],
)
def test_bad_speed_flags_on_the_cpu_exit_2_with_one_line(inputs, tmp_path, flags, said):
    ckpt, data = inputs
    run = _cli("clean", str(ckpt), "--data-dir", str(data), "--device", "cpu", "--out", str(tmp_path), *flags)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], run.stderr


def test_defaults_change_nothing_not_even_the_cache_key():
    speed = resolve_speed(torch.device("cpu"))
    assert speed == SpeedSettings() and speed.is_default and speed.protocol() == {}
    assert resolve_speed(torch.device("cpu"), decode="auto").decode == "cpu"
    assert not isinstance(speed.autocast(torch.device("cpu")), torch.autocast)


def test_pgd_stays_float32_unless_asked():
    cpu = torch.device("cpu")
    bf16 = SpeedSettings(amp="bf16")
    assert isinstance(bf16.autocast(cpu), torch.autocast)
    assert not isinstance(bf16.autocast(cpu, pgd=True), torch.autocast)
    assert bf16.protocol()["pgd_precision"] == "float32"
    both = SpeedSettings(amp="bf16", pgd_amp=True)
    assert isinstance(both.autocast(cpu, pgd=True), torch.autocast)
    assert both.protocol()["pgd_precision"] == "bf16"
    with pytest.raises(UsageError, match="fp16"):
        resolve_speed(cpu, amp="fp16")


# ------------------------------------------------------------------------------------------------
# mixed precision, channels-last: recorded, cached apart, numbers near float32
# ------------------------------------------------------------------------------------------------


def _clean_logits(ctx: S.Context) -> np.ndarray:
    source, _ = S.clean_source(ctx)
    return np.concatenate([logits.numpy() for _, logits in S.forward(ctx, source, "clean")])


def test_bf16_and_channels_last_logits_stay_near_float32_and_cache_apart(inputs, tmp_path):
    ckpt, data = inputs
    ref_ctx = make_context(ckpt, data, tmp_path / "cache")
    ref = _clean_logits(ref_ctx)
    speed = SpeedSettings(amp="bf16", channels_last=True)
    fast_ctx = make_context(ckpt, data, tmp_path / "cache", speed=speed)
    fast_ctx.model = speed.prepare(fast_ctx.model)
    fast = _clean_logits(fast_ctx)
    assert fast.dtype == np.float32 and fast.shape == ref.shape
    assert not np.array_equal(fast, ref)  # bf16 did run
    scale = np.abs(ref).max()
    assert np.abs(fast - ref).max() < 0.05 * scale  # bf16 keeps 8 significant bits
    assert (fast.argmax(1) == ref.argmax(1)).mean() >= 0.95
    assert ref_ctx.options() != fast_ctx.options()  # a bf16 cell never answers a float32 one
    assert fast_ctx.options()["speed"]["amp"] == "bf16"
    assert "speed" not in ref_ctx.options()


def test_the_result_records_the_speed_flags_and_compare_refuses_mixed_precision(inputs, tmp_path):
    ckpt, data = inputs
    common = ["clean", str(ckpt), "--data-dir", str(data), "--device", "cpu", "--no-progress"]
    ref = _cli(*common, "--out", str(tmp_path / "f32"))
    fast = _cli(*common, "--out", str(tmp_path / "bf16"), "--amp", "bf16", "--channels-last")
    assert ref.returncode == 0 and fast.returncode == 0, ref.stderr + fast.stderr
    a = json.loads((tmp_path / "f32" / "clean.json").read_text())
    b = json.loads((tmp_path / "bf16" / "clean.json").read_text())
    assert "speed" not in a["protocol"]
    assert b["protocol"]["speed"] == {
        "amp": "bf16",
        "pgd_precision": "float32",
        "channels_last": True,
        "compile": False,
        "decode": "cpu",
    }
    differences = protocol_differences([a, b], ["f32", "bf16"])
    assert len(differences) == 1 and differences[0].startswith("forward precision (--amp) differs")
    refused = _cli("compare", str(tmp_path / "f32" / "clean.json"), str(tmp_path / "bf16" / "clean.json"))
    assert refused.returncode == 2 and "--allow-mismatch" in refused.stderr, refused.stderr
    # channels-last alone is no precision change: comparable
    c = json.loads(json.dumps(b))
    c["protocol"]["speed"]["amp"] = "off"
    assert protocol_differences([a, c], ["f32", "cl"]) == []


@pytest.mark.slow
def test_compile_gives_the_eager_predictions(inputs, tmp_path):
    ckpt, data = inputs
    ref = _clean_logits(make_context(ckpt, data, tmp_path / "a"))
    speed = SpeedSettings(compile=True)
    ctx = make_context(ckpt, data, tmp_path / "b", speed=speed)
    ctx.model = speed.prepare(ctx.model)
    got = _clean_logits(ctx)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# decoding
# ------------------------------------------------------------------------------------------------


def _jpeg_tree(root: Path, n: int = 12, side: int = 32, scale: int = 3) -> list[str]:
    """``n`` JPEGs (quality 85, 4:2:0 as the published -C sets) of digits enlarged to
    ``side * scale`` x ``side * scale + 5`` px, plus one PNG."""
    images, _ = heldout_digits(n)
    paths = []
    root.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        pic = Image.fromarray(img).resize((side * scale + 5, side * scale), Image.BILINEAR)
        path = root / (f"{i:03d}.png" if i == n - 1 else f"{i:03d}.jpg")
        pic.save(path, quality=85) if path.suffix == ".jpg" else pic.save(path)
        paths.append(str(path))
    return paths


def _all(stream) -> np.ndarray:
    return np.concatenate([np.asarray(torch.as_tensor(images).cpu()) for _, images in stream])


def test_worker_decoding_gives_pillows_pixels(tmp_path):
    paths = _jpeg_tree(tmp_path)
    pillow = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    h, w = pillow[0].shape[:2]
    # at the file's size: exactly Pillow's pixels
    left = (w - h) // 2  # the center crop
    square = [p[:, left : left + h] for p in pillow]
    src = FileSource(paths, None, h, 1.0, "bilinear", workers=2)
    got = _all(_batches(src, 5))
    np.testing.assert_array_equal(got, np.stack(square))
    # resized: Pillow's pixels through the one resize-and-crop, whatever the worker count
    src = FileSource(paths, None, 40, 0.875, "bilinear", workers=2)
    expected = np.stack([resize_center_crop(p, 40, 0.875) for p in pillow])
    np.testing.assert_array_equal(_all(_batches(src, 5)), expected)
    src.workers = 0
    np.testing.assert_array_equal(_all(_batches(src, 5)), expected)


@pytest.mark.parametrize(
    ("size", "crop_pct", "interpolation"), [(40, 0.875, "bilinear"), (224, 1.0, "bicubic")]
)
def test_the_tensor_resize_is_within_a_few_levels_of_opencvs(size, crop_pct, interpolation):
    rng = np.random.default_rng(0)
    smooth = np.array(
        Image.fromarray(rng.integers(0, 256, (24, 30, 3), dtype=np.uint8)).resize((150, 120), Image.BICUBIC)
    )
    ref = resize_center_crop(smooth, size, crop_pct, interpolation).astype(int)
    got = resize_center_crop_tensor(torch.from_numpy(smooth).permute(2, 0, 1), size, crop_pct, interpolation)
    assert got.shape == ref.shape and got.dtype == torch.uint8
    diff = np.abs(got.numpy().astype(int) - ref)
    assert diff.mean() <= 0.01 and diff.max() <= 1, (diff.mean(), diff.max())  # measured: 0 / 7e-5, max 1


def _decode_bound(device: torch.device, tmp_path: Path, mean_levels: float, p99_levels: float) -> None:
    paths = _jpeg_tree(tmp_path)
    src = FileSource(paths, None, 40, 0.875, "bilinear", workers=1)
    ref = _all(_batches(src, 5)).astype(int)
    got = _all(decode_batches(src, [(0, 5), (5, 10), (10, 12)], device)).astype(int)
    assert got.shape == ref.shape
    diff = np.abs(got - ref)
    assert diff.mean() <= mean_levels and np.percentile(diff, 99) <= p99_levels, (diff.mean(), diff.max())
    np.testing.assert_array_equal(got[-1], ref[-1])  # the PNG is decoded by Pillow in the workers


def test_batched_decoding_on_the_cpu_is_within_the_resize_bound(tmp_path):
    # torchvision's CPU decoder is libjpeg-turbo as Pillow's: measured identical pixels
    _decode_bound(torch.device("cpu"), tmp_path, mean_levels=0.01, p99_levels=1)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (nvJPEG)")
def test_nvjpeg_decoding_is_within_a_few_levels_of_pillow(tmp_path):
    # nvJPEG's IDCT and chroma upsampling round differently (docs/scaling.md); not yet measured here
    _decode_bound(torch.device("cuda"), tmp_path, mean_levels=1.5, p99_levels=6)
