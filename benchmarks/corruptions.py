"""Throughput of the -C corruptions on one core (cv2.setNumThreads(1)), at 32 px and 224 px.

Prints images/s per corruption and preset, the extrapolated time to generate a CIFAR-10-C-sized set
(15 corruptions x 5 severities x 10,000 images at 32 px), and the glass-blur peer comparison: the
vectorized wavefront swap against the reference per-pixel swap loop, measured in the same process.

    OMP_NUM_THREADS=1 NO_ALBUMENTATIONS_UPDATE=1 python benchmarks/corruptions.py [--batch 64] [--repeats 3]
    python benchmarks/corruptions.py --figures docs/   # the visual-check grids
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
from skimage import data

from robust_eval.constants import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS
from robust_eval.corruptions import apply_corruption, glass_shuffle_indices


def _images(size: int, n: int) -> np.ndarray:
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    return np.stack([cv2.resize(photos[i % 4], (size, size), interpolation=cv2.INTER_AREA) for i in range(n)])


def _rate(x: np.ndarray, name: str, preset: str, repeats: int) -> float:
    """Images per second, severities 1..5 averaged, best of ``repeats``."""
    best = float("inf")
    for r in range(repeats):
        t = time.perf_counter()
        for sev in range(1, 6):
            apply_corruption(x, name, sev, preset, np.random.default_rng([r, sev]))
        best = min(best, (time.perf_counter() - t) / 5)
    return len(x) / best


def _glass_loop(img: np.ndarray, delta: int, disp: np.ndarray) -> np.ndarray:
    """The reference per-pixel loop (the peer), with its statement verbatim (a copy on numpy views)."""
    x = img.copy()
    h, w = x.shape[:2]
    for a, hh in enumerate(range(h - delta, delta, -1)):
        for b, ww in enumerate(range(w - delta, delta, -1)):
            dx, dy = disp[a, b]
            h_prime, w_prime = hh + dy, ww + dx
            x[hh, ww], x[h_prime, w_prime] = x[h_prime, w_prime], x[hh, ww]
    return x


def write_grids(folder: str) -> None:
    """The visual check: all 19 corruptions x severities 1..5 on skimage's astronaut, per preset.

    CIFAR tiles are 32 px shown at 3x (nearest); ImageNet tiles are 224 px shown at 1/2 (area) to keep
    the file small; both are saved as 256-colour PNGs.
    """
    from PIL import Image

    photo = data.astronaut()[:400, 50:450]
    label_w = 150
    for preset, size, show in (("cifar", 32, 96), ("imagenet", 224, 112)):
        clean = cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)[None]
        rows = []
        header = np.full((24, label_w + 6 * show, 3), 255, np.uint8)
        for j, title in enumerate(["clean", "s1", "s2", "s3", "s4", "s5"]):
            cv2.putText(
                header, title, (label_w + j * show + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1
            )
        rows.append(header)
        for name in ALL_CORRUPTIONS:
            tiles = [clean[0]] + [
                apply_corruption(clean, name, s, preset, np.random.default_rng(s))[0] for s in range(1, 6)
            ]
            interp = cv2.INTER_NEAREST if show > size else cv2.INTER_AREA
            tiles = [cv2.resize(t, (show, show), interpolation=interp) for t in tiles]
            label = np.full((show, label_w, 3), 255, np.uint8)
            cv2.putText(label, name, (4, show // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
            rows.append(np.concatenate([label, *tiles], axis=1))
        grid = np.concatenate(rows, axis=0)
        path = os.path.join(folder, f"corruptions_{preset}.png")
        Image.fromarray(grid).quantize(256, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB, {grid.shape[1]}x{grid.shape[0]} px)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--batch", type=int, default=64, help="images per call at 32 px (224 px uses batch/4)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--figures", metavar="FOLDER", help="only write the corruption grids into FOLDER")
    parser.add_argument("--smoke", action="store_true", help="a few images, one run: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.batch, args.repeats = 4, 1
    cv2.setNumThreads(1)
    if args.figures:
        write_grids(args.figures)
        return
    small, large = _images(32, args.batch), _images(224, max(4, args.batch // 4))
    print(f"one core; batch {len(small)} at 32 px, {len(large)} at 224 px; severities 1..5 averaged\n")
    print(f"| {'corruption':<18} | cifar 32 px img/s | imagenet 224 px img/s | 224 px ms/img |")
    print(f"|{'-' * 20}|-------------------|-----------------------|---------------|")
    total_s = 0.0
    for name in ALL_CORRUPTIONS:
        r32 = _rate(small, name, "cifar", args.repeats)
        r224 = _rate(large, name, "imagenet", max(1, args.repeats - 1))
        if name in BENCHMARK_CORRUPTIONS:
            total_s += 5 * 10_000 / r32
        print(f"| {name:<18} | {r32:17,.0f} | {r224:21,.1f} | {1000 / r224:13.2f} |")
    print(
        f"\nCIFAR-10-C-sized set (15 x 5 x 10,000 at 32 px), extrapolated: {total_s:.0f} s = {total_s / 60:.1f} min"
        f" (goal <= 5 min) -> {'OK' if total_s <= 300 else 'MISSED'}"
    )

    # peer: glass-blur pixel shuffle, wavefront vs the reference loop, ImageNet severity 5 (delta 4)
    rng = np.random.default_rng(0)
    img = large[0]
    delta = 4
    disp = rng.integers(-delta, delta, (1, 224 - 2 * delta, 224 - 2 * delta, 2))
    t = time.perf_counter()
    ref = _glass_loop(img, delta, disp[0])
    t_loop = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(5):
        perm = glass_shuffle_indices((224, 224), delta, disp)
        got = np.take_along_axis(img.reshape(1, -1, 3), perm[..., None], axis=1).reshape(1, 224, 224, 3)
    t_vec = (time.perf_counter() - t) / 5
    batch_disp = rng.integers(-delta, delta, (len(large), 224 - 2 * delta, 224 - 2 * delta, 2))
    t = time.perf_counter()
    glass_shuffle_indices((224, 224), delta, batch_disp)
    t_batch = (time.perf_counter() - t) / len(large)
    same = np.array_equal(ref, got[0])
    print(f"\nglass-blur shuffle at 224 px, delta 4, one pass (identical output: {same})")
    print("| implementation                  | ms/img | speed-up |")
    print("|---------------------------------|--------|----------|")
    print(f"| reference per-pixel loop (peer) | {t_loop * 1000:6.1f} |     1.0x |")
    print(f"| wavefront, 1 image              | {t_vec * 1000:6.1f} | {t_loop / t_vec:7.1f}x |")
    print(
        f"| wavefront, batch of {len(large):<3}         | {t_batch * 1000:6.1f} | {t_loop / t_batch:7.1f}x |"
    )
    glass = 1000 / _rate(large, "glass_blur", "imagenet", max(1, args.repeats - 1))
    print(
        f"\nglass_blur (whole corruption) at 224 px: {glass:.1f} ms/img (goal <= 20) -> {'OK' if glass <= 20 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
