"""Throughput of a timm training loader: IPMix vs no auto-augment vs timm's AugMix.

Every loader is built by ``timm.data.create_loader`` (RandomResizedCrop + flip, the auto-augment
stage, ToTensor + Normalize, 2 worker processes, no prefetcher); only ``auto_augment`` changes.
IPMix reaches the loader through ``timm_ext.register()``. Images come from memory (scikit-image
photos: 32 x 32 for the 32 px rows, 256 x 256 for the 224 px rows), so decoding is not measured.
The mixing set is a folder of 16 photos (``--fractals DIR`` to use yours).

Variants run interleaved, ``--rounds`` times each; the table reports the best round (the least
disturbed by other processes) and ratios against the no-augmentation and AugMix loaders measured in
the same run. Goal: IPMix >= 0.5x the no-augmentation loader at 224 px, and faster than AugMix.

Usage::

    NO_ALBUMENTATIONS_UPDATE=1 python benchmarks/loader.py            # full run
    NO_ALBUMENTATIONS_UPDATE=1 python benchmarks/loader.py --quick    # fewer images
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timm.data import create_loader

import timm_ext.registry as registry
from timm_ext.train import ArrayImageDataset

#: (label, auto_augment string per image size)
VARIANTS: dict[str, dict[int, str | None]] = {
    "no auto-augment": {32: None, 224: None},
    "timm AugMix": {32: "augmix-m3-w3", 224: "augmix-m3-w3"},
    "IPMix": {32: "ipmix-w3-d3-b3-s3", 224: "ipmix-w3-d3-b4-s1"},
}


def _photos(side: int, count: int) -> np.ndarray:
    from skimage import data

    names = ["astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "gravel", "camera"]
    out = []
    for name in names:
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.asarray(Image.fromarray(img[..., :3]).resize((side, side), Image.BILINEAR)))
    return np.stack([out[i % len(out)] for i in range(count)])


def _mixing_folder(root: Path) -> Path:
    pictures = _photos(256, 16)
    for i, pic in enumerate(pictures):
        Image.fromarray(np.ascontiguousarray(pic[:, ::-1] if i % 2 else pic)).save(root / f"mix_{i:02d}.png")
    return root


def measure(size: int, aa: str | None, images: int, batch_size: int, workers: int) -> float:
    """Images per second of one epoch of a timm training loader (worker start-up excluded)."""
    src_side = 32 if size == 32 else 256
    dataset = ArrayImageDataset(
        _photos(src_side, images + batch_size), np.zeros(images + batch_size, np.int64)
    )
    loader = create_loader(
        dataset,
        input_size=(3, size, size),
        batch_size=batch_size,
        is_training=True,
        auto_augment=aa,
        color_jitter=None,
        num_workers=workers,
        use_prefetcher=False,
        persistent_workers=False,
    )
    it = iter(loader)
    next(it)  # workers started, first batch ready
    start = time.perf_counter()
    seen = 0
    for x, _ in it:
        seen += x.shape[0]
    elapsed = time.perf_counter() - start
    del it
    return seen / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer images (a quick but meaningful run)")
    parser.add_argument("--smoke", action="store_true", help="a few batches at 32 px: checks the script runs")
    parser.add_argument("--fractals", type=str, default=None, help="folder of mixing pictures")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.rounds, args.workers, args.batch_size = [32], 1, 0, 16
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        fractals = args.fractals or str(_mixing_folder(Path(tmp)))
        registry.register(fractals=fractals)
        images = {32: 1024 if args.quick else 4096, 224: 256 if args.quick else 1024}
        if args.smoke:
            images = {32: 32}
        results: dict[tuple[int, str], float] = {}
        for size in args.sizes:
            n = images.get(size, 1024)
            for _ in range(args.rounds):
                for label, per_size in VARIANTS.items():
                    rate = measure(size, per_size.get(size, per_size[224]), n, args.batch_size, args.workers)
                    results[size, label] = max(results.get((size, label), 0.0), rate)
        registry.unregister()

    print(
        f"\ntimm create_loader throughput, {args.workers} workers, batch {args.batch_size}, "
        f"best of {args.rounds} rounds (images/s)\n"
    )
    print("| size | loader | auto_augment | images/s | vs no auto-augment | vs timm AugMix |")
    print("|---:|---|---|---:|---:|---:|")
    for size in args.sizes:
        base = results[size, "no auto-augment"]
        augmix = results[size, "timm AugMix"]
        for label, per_size in VARIANTS.items():
            rate = results[size, label]
            aa = per_size.get(size, per_size[224]) or "-"
            print(f"| {size} | {label} | `{aa}` | {rate:,.0f} | {rate / base:.2f}x | {rate / augmix:.2f}x |")
    ipmix224 = results.get((224, "IPMix"))
    if ipmix224 is not None:
        ok_base = ipmix224 >= 0.5 * results[224, "no auto-augment"]
        ok_augmix = ipmix224 > results[224, "timm AugMix"]
        print(
            f"\ngoal at 224 px: IPMix >= 0.5x no auto-augment: {'met' if ok_base else 'NOT met'}; "
            f"faster than timm AugMix: {'met' if ok_augmix else 'NOT met'}"
        )


if __name__ == "__main__":
    main()
