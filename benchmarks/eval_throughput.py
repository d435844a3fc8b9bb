"""Evaluation throughput at ImageNet scale: `robust-eval corruptions` against a bare `model(x)` loop.

On a generated ImageNet-C-shaped folder (``ImageNet-C/<corruption>/<severity>/<wnid>/*.JPEG``: 224 px
JPEGs saved at quality 85, as the published sets), the corruption suite (JPEG decoding with
``--workers`` processes, 256-resize + 224-crop, the input contract, metrics, per-cell caching) runs
against the cheapest possible evaluation: the same images decoded once beforehand, normalized and
batched as float tensors on the same device, pushed through ``model(x)``. The ratio suite / bare says
how much of the forward pass's rate an evaluation keeps (the issue's goal on one H100 with bf16 and
channels-last: >= 0.9); the last column projects the wall time of full ImageNet-C (15 corruptions x 5
severities x 50,000 = 3.75 M images) plus ImageNet-P (~600,000 frames) at the suite's rate.

    python benchmarks/eval_throughput.py --images 20 --model resnet50          # CPU (+ CUDA when there)
    python benchmarks/eval_throughput.py --images 1000 --amp bf16 --channels-last --decode auto
    python benchmarks/eval_throughput.py --smoke                               # tiny: the code path

Each device runs (bare, suite) ``--repeats`` times interleaved; the best time of each is reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robust_eval.cache import CellCache
from robust_eval.checkpoints.checkpoint import save_checkpoint
from robust_eval.checkpoints.formats import load_checkpoint
from robust_eval.data import FileSource, list_imagefolder
from robust_eval.speed import resolve_speed
from robust_eval.suites import Context, run_corruptions

#: Images of full ImageNet-C (15 benchmark corruptions x 5 severities x 50,000) and ImageNet-P frames.
IMAGENET_C_IMAGES = 15 * 5 * 50_000
IMAGENET_P_FRAMES = 600_000
CORRUPTIONS = ("gaussian_noise", "fog")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def write_imagenet_c(root: Path, n: int, classes: int, seed: int = 0) -> Path:
    """``ImageNet-C/<c>/<1..5>/<wnid>/*.JPEG`` under ``root``: ``n`` smooth random 224 px JPEGs
    (quality 85) per cell, spread over ``classes`` class folders; returns ``root``."""
    import cv2

    rng = np.random.default_rng(seed)
    for c in CORRUPTIONS:
        for s in range(1, 6):
            for k in range(classes):  # every class folder, as the published sets (some may stay empty)
                (root / "ImageNet-C" / c / str(s) / f"n{k:08d}").mkdir(parents=True, exist_ok=True)
            for i in range(n):
                image = cv2.resize(
                    rng.integers(0, 256, (28, 28, 3), dtype=np.uint8), (224, 224), cv2.INTER_CUBIC
                )
                folder = root / "ImageNet-C" / c / str(s) / f"n{i % classes:08d}"
                cv2.imwrite(
                    str(folder / f"ILSVRC2012_val_{i:08d}.JPEG"), image, [cv2.IMWRITE_JPEG_QUALITY, 85]
                )
    return root


def write_checkpoint(path: Path, model: str, classes: int) -> Path:
    """A timm ``model`` (random weights) as an ImageNet checkpoint: 224 px, crop 0.875, ImageNet stats."""
    import timm

    net = timm.create_model(model, num_classes=classes)
    config = {
        "input_size": [3, 224, 224],
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "interpolation": "bilinear",
        "crop_pct": 0.875,
    }
    save_checkpoint(
        path, net.state_dict(), model=model, num_classes=classes, dataset="imagenet", data_config=config
    )
    return path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_pass(model: torch.nn.Module, batches: list[torch.Tensor], speed, device: torch.device) -> float:
    """Seconds for ``model(x)`` over pre-decoded, normalized batches already on ``device``."""
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode(), speed.autocast(device):
        for x in batches:
            model(x)
    _sync(device)
    return time.perf_counter() - start


def suite_pass(ctx: Context) -> float:
    """Seconds of the whole corruption suite on a fresh cache."""
    ctx.cache.fresh = True
    _sync(ctx.device)
    start = time.perf_counter()
    run_corruptions(ctx)
    _sync(ctx.device)
    return time.perf_counter() - start


def measure(args: argparse.Namespace, device: torch.device, root: Path, ckpt: Path) -> dict:
    """(bare, suite) best seconds and images/s on ``device``."""
    speed = resolve_speed(device, args.amp, args.channels_last, args.compile, args.decode)
    model, info = load_checkpoint(ckpt, device=device)
    model = speed.prepare(model)
    meta = info.to_dict()
    ctx = Context(
        model=model,
        metadata=meta,
        data_dir=root,
        cache=CellCache(root / f"cache-{device.type}", meta["sha256"], fresh=True),
        device=device,
        batch_size=args.batch_size,
        workers=args.workers,
        speed=speed,
    )
    cell = root / "ImageNet-C" / CORRUPTIONS[0] / "1"
    paths, labels, _ = list_imagefolder(cell)
    src = FileSource(paths, labels, 224, 0.875, "bilinear")
    decoded = [
        torch.from_numpy(src.batch(i, min(i + args.batch_size, len(src))))
        for i in range(0, len(src), args.batch_size)
    ]
    batches = [speed.inputs(b.to(device).permute(0, 3, 1, 2).float().div_(255)) for b in decoded]
    n_suite = len(paths) * len(CORRUPTIONS) * 5
    bare_pass(model, batches[:1], speed, device)  # warm-up (and compilation)
    best_bare, best_suite = float("inf"), float("inf")
    for _ in range(args.repeats):
        best_bare = min(best_bare, bare_pass(model, batches, speed, device) / len(paths))
        best_suite = min(best_suite, suite_pass(ctx) / n_suite)
    return {"device": device.type, "bare": 1 / best_bare, "suite": 1 / best_suite, "images": n_suite}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="JPEGs per (corruption, severity) cell")
    parser.add_argument("--classes", type=int, default=1000, help="class folders (and model outputs)")
    parser.add_argument("--model", default="resnet50", help="timm model name (random weights)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of the suite")
    parser.add_argument("--amp", default="off", help="off | bf16 | fp16 (fp16: CUDA only)")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--decode", default="cpu", help="cpu | gpu | auto (gpu: CUDA only)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-cuda", action="store_true", help="measure the CPU only")
    parser.add_argument("--smoke", action="store_true", help="4 images per cell, test_resnet, 1 repeat")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.model, args.batch_size, args.workers, args.repeats = 4, "test_resnet", 8, 1, 1
    devices = [torch.device("cpu")]
    if torch.cuda.is_available() and not args.no_cuda:
        devices.append(torch.device("cuda"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_imagenet_c(Path(tmp), args.images, args.classes)
        ckpt = write_checkpoint(Path(tmp) / "ckpt.pth", args.model, args.classes)
        for device in devices:
            cpu_only = device.type == "cpu" and args.amp == "fp16"
            rows.append(
                measure(
                    args if not cpu_only else argparse.Namespace(**{**vars(args), "amp": "bf16"}),
                    device,
                    root,
                    ckpt,
                )
            )
    flags = f"--amp {args.amp}{' --channels-last' if args.channels_last else ''}{' --compile' if args.compile else ''}"
    print(
        f"**{args.model}, {args.images} JPEGs x {len(CORRUPTIONS)} corruptions x 5 severities, batch {args.batch_size}, "
        f"--workers {args.workers}, {flags}, --decode {args.decode}**\n"
    )
    print(
        "| device | bare model(x) images/s | robust-eval corruptions images/s | ratio | projected ImageNet-C + -P |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        hours = (IMAGENET_C_IMAGES + IMAGENET_P_FRAMES) / r["suite"] / 3600
        print(
            f"| {r['device']} | {r['bare']:.1f} | {r['suite']:.1f} | {r['suite'] / r['bare']:.2f} | {hours:,.1f} h |"
        )
    if len(devices) == 1:
        print("| cuda | not measured: no CUDA device | | | |")


if __name__ == "__main__":
    main()
