"""Throughput of IPMix and PixMix vs timm's AugMix, timm's RandAugment and the identity.

Images per second on ONE core (OpenCV and torch limited to one thread), at 32 px and 224 px, on
real photos from scikit-image, each transform measured in the same process on the same images.
timm's transforms take and return PIL images (that is how timm's pipeline feeds them); ours take
and return numpy arrays (that is how Albumentations feeds them). Mixing pictures come from an
in-memory source that is warm (steady state of a training run, where the source's cache is full).

    python benchmarks/transforms.py [--images 300] [--repeats 3]

Goal (issue 2): IPMix >= 3x timm AugMix at 224 px and >= 2x at 32 px; <= 1.5 ms per 224 px image.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np
from PIL import Image
from skimage import data

from albumentations_ipmix import IPMix, PixMix, as_source

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


#: What the last two columns of the table are.
LEGEND = (
    "speed vs timm AugMix = AugMix's ms per image / this transform's (above 1x: faster than AugMix); "
    "ms over identity = this transform's ms per image minus that of the identity (A.NoOp in "
    "A.Compose, the cost of the Albumentations call alone): the transform's own work"
)


def _photos(size: int) -> list[np.ndarray]:
    return [cv2.resize(getattr(data, n)(), (size, size), interpolation=cv2.INTER_AREA) for n in PHOTOS]


def _mixing_pictures(count: int, size: int) -> np.ndarray:
    """Mixing pictures for the benchmark: procedural fractals when available, else smooth noise."""
    try:
        source = as_source(None)
        return np.stack([source.load(i, (size, size)) for i in range(count)])
    except Exception:  # no procedural source installed: structured random pictures
        rng = np.random.default_rng(0)
        small = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
        return np.stack([cv2.resize(p, (size, size), interpolation=cv2.INTER_CUBIC) for p in small])


def _time(fn: Callable[[object], object], inputs: list, n: int, repeats: int) -> float:
    """Best-of-``repeats`` seconds per image over ``n`` calls."""
    for x in inputs[:10]:
        fn(x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(n):
            fn(inputs[i % len(inputs)])
        best = min(best, (time.perf_counter() - start) / n)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=300, help="images per timed run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per transform (best is kept)")
    parser.add_argument("--smoke", action="store_true", help="a few images, one run: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.repeats = 4, 1

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    from timm.data.auto_augment import augment_and_mix_transform, rand_augment_transform

    print(f"one core, best of {args.repeats} runs of {args.images} images; real photos from skimage")
    print(LEGEND + "\n")
    print("| size | transform | ms / image | images / s | speed vs timm AugMix | ms over identity |")
    print("|---:|---|---:|---:|---:|---:|")
    for size in (32, 224):
        photos = _photos(size)
        pils = [Image.fromarray(p) for p in photos]
        pictures = _mixing_pictures(64, round(size * 1.125) + 4)
        hparams = {"translate_const": int(size * 0.45), "img_mean": (124, 116, 104)}
        # each factory gets its own dict: timm's factories write into the hparams they are given
        augmix = augment_and_mix_transform("augmix-m3-w3", dict(hparams))
        randaug = rand_augment_transform("rand-m9-n2-mstd0.5", dict(hparams))
        beta, severity = (3.0, 3.0) if size <= 64 else (4.0, 1.0)
        ipmix = A.Compose([IPMix(fractals=pictures, beta=beta, severity=severity)], seed=0)
        pixmix = A.Compose([PixMix(fractals=pictures, beta=beta, severity=severity)], seed=0)
        identity = A.Compose([A.NoOp()], seed=0)
        rows = {
            "identity (A.NoOp)": _time(
                lambda x, t=identity: t(image=x)["image"], photos, args.images, args.repeats
            ),
            "IPMix": _time(lambda x, t=ipmix: t(image=x)["image"], photos, args.images, args.repeats),
            "PixMix": _time(lambda x, t=pixmix: t(image=x)["image"], photos, args.images, args.repeats),
            "timm AugMix (augmix-m3-w3)": _time(augmix, pils, args.images, args.repeats),
            "timm RandAugment (rand-m9-n2-mstd0.5)": _time(randaug, pils, args.images, args.repeats),
        }
        ref_augmix, ref_identity = rows["timm AugMix (augmix-m3-w3)"], rows["identity (A.NoOp)"]
        for name, seconds in rows.items():
            print(
                f"| {size} | {name} | {seconds * 1e3:.3f} | {1 / seconds:,.0f} | "
                f"{ref_augmix / seconds:.2f}x | {(seconds - ref_identity) * 1e3:.3f} |"
            )


if __name__ == "__main__":
    main()
