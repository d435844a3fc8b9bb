"""Batched, per-sample mixing (timm_ext.batch) vs the per-image path, and `timm train` with each.

Section 1, transforms: images/s of BatchIPMix / BatchPixMix / BatchAugMix (grouped and masked
evaluation) against the per-image transforms (IPMix / PixMix from Albumentations, timm's AugMix on
PIL), on one CPU core (torch and OpenCV limited to one thread), at 32 and 224 px, batch 128 and 256,
on real photos; on CUDA too when a GPU is present (the per-image path stays one CPU core: the
ratio is "one GPU vs one worker core").

Section 2, training: `timm train` images/s (resnet18 on 32 px digits in the CIFAR layout, IPMix +
JSD) with --mix-device workers (per image in loader workers) vs cpu (batched, main process) vs
auto (batched on the training device: the GPU when present), in the same process.

    python benchmarks/batch_mixing.py [--draws 512] [--sizes 32 224] [--batches 128 256] [--no-train]
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
import torch
from PIL import Image
from skimage import data

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


def _photos(size: int) -> np.ndarray:
    return np.stack(
        [cv2.resize(getattr(data, n)(), (size, size), interpolation=cv2.INTER_AREA) for n in PHOTOS]
    )


def _pictures() -> np.ndarray:
    """Mixing pictures: 32 smooth random fields at 256 px (the same for both paths)."""
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(p, (256, 256), interpolation=cv2.INTER_CUBIC) for p in small])


def _rate(fn: Callable[[], object], images: int, repeats: int) -> float:
    fn()  # warm-up (bank fitting, caches)
    best = min(_timed(fn) for _ in range(repeats))
    return images / best


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _per_image(method: str, imgs: np.ndarray, pictures: np.ndarray, draws: int) -> Callable[[], object]:
    if method == "augmix":
        from timm.data.auto_augment import augment_and_mix_transform

        hparams = {"translate_pct": 0.3, "img_mean": (124, 116, 104), "interpolation": Image.BILINEAR}
        transform = augment_and_mix_transform("augmix-m3-w3", hparams)
        pils = [Image.fromarray(i) for i in imgs]
        random.seed(0)
        return lambda: [transform(pils[i % len(pils)]) for i in range(draws)]
    from albumentations_ipmix import IPMix, PixMix

    t = (IPMix if method == "ipmix" else PixMix)(fractals=pictures, p=1.0)
    t.set_random_seed(0)
    return lambda: [t(image=imgs[i % len(imgs)]) for i in range(draws)]


def _batched(method: str, strategy: str, batch: torch.Tensor, pictures: np.ndarray) -> Callable[[], object]:
    from timm_ext.batch import create_batch_mixing

    config = {"ipmix": "ipmix-w3-d3-b3-s3", "pixmix": "pixmix-k4-b3-s3", "augmix": "augmix-m3-w3"}[method]
    fractals = None if method == "augmix" else pictures
    transform = create_batch_mixing(config, fractals=fractals, strategy=strategy)
    generator = torch.Generator(device=batch.device).manual_seed(0)
    return lambda: transform(batch, generator)


def transforms_section(
    sizes: list[int], batches: list[int], draws: int, repeats: int, strategies: list[str]
) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    pictures = _pictures()
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    print("| method | px | batch | device | per-image img/s (1 core) | " + " | ".join(f"{s} img/s" for s in strategies)
          + " | best ratio |")  # fmt: skip
    print("|---|---|---|---|---|" + "---|" * len(strategies) + "---|")
    for method in ("ipmix", "pixmix", "augmix"):
        for size in sizes:
            imgs = _photos(size)
            per_image = _rate(_per_image(method, imgs, pictures, draws), draws, repeats)
            for bsz in batches:
                for device in devices:
                    batch = (
                        torch.from_numpy(imgs[np.arange(bsz) % len(imgs)]).permute(0, 3, 1, 2).contiguous()
                    )
                    batch = batch.to(device)
                    rates = [_rate(_batched(method, s, batch, pictures), bsz, repeats) for s in strategies]
                    cells = " | ".join(f"{r:,.0f}" for r in rates)
                    print(
                        f"| {method} | {size} | {bsz} | {device} | {per_image:,.0f} | {cells} | {max(rates) / per_image:.2f}x |"
                    )


def train_section(images: int, epochs: int, workers: int) -> None:
    from sklearn.datasets import load_digits
    from typer.testing import CliRunner

    from robust_mix.cifar import write_cifar
    from timm_ext.cli import app

    digits = load_digits()
    gray = (digits.images / 16.0 * 255.0).astype(np.uint8)
    up = np.stack([cv2.resize(g, (32, 32), interpolation=cv2.INTER_LINEAR) for g in gray])
    rgb, labels = np.repeat(up[..., None], 3, axis=3), digits.target.astype(np.int64)
    idx = np.arange(images) % len(rgb)
    modes = ["workers", "cpu", *(["auto"] if torch.cuda.is_available() else [])]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(
        f"\n| timm train (resnet18, 32 px, IPMix + JSD, {images} images, -j {workers}, {device}) | img/s | ratio |"
    )
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "cifar-10-batches-py"
        write_cifar(folder, "cifar10", rgb[idx], labels[idx], train=True)
        write_cifar(folder, "cifar10", rgb[:64], labels[:64], train=False)
        base = None
        for mode in modes:
            out = Path(tmp) / f"run-{mode}"
            args = [
                "train", "--data-dir", tmp, "--model", "resnet18", "--aug", "ipmix", "--jsd", "--mix-device", mode,
                "-b", "128", "-j", str(workers), "--epochs", str(epochs), "--device", device, "--no-progress",
                "--output", str(out),
            ]  # fmt: skip
            result = CliRunner().invoke(app, args)
            if result.exit_code != 0:
                raise SystemExit(f"timm train --mix-device {mode} failed: {result.output[-500:]}")
            rows = list(csv.DictReader((out / "metrics.csv").open()))
            rate = float(rows[-1]["train_images_per_s"]) / 3  # views -> source images
            base = base or rate
            print(f"| --mix-device {mode} | {rate:,.0f} | {rate / base:.2f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, default=256, help="per-image draws per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--strategies", nargs="+", default=["group", "mask"], choices=["group", "mask"])
    parser.add_argument("--no-train", action="store_true", help="skip the timm train section")
    parser.add_argument("--train-images", type=int, default=1024)
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1, help="loader workers in the train section")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.draws, args.repeats, args.sizes, args.batches = 16, 1, [32], [16]
        args.train_images, args.train_epochs, args.workers = 256, 1, 0
    transforms_section(args.sizes, args.batches, args.draws, args.repeats, args.strategies)
    if not args.no_train:
        train_section(args.train_images, args.train_epochs, args.workers)


if __name__ == "__main__":
    main()
