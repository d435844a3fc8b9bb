"""Scaling of evaluation: `robust-eval corruptions` with 1 and 2 processes, and image decoding in workers.

Two measurements, each a list of table rows (dicts) so ``benchmarks/scaling.py`` can print them with
its own tables:

- :func:`corruption_rows`: ``robust-eval corruptions`` on a CPU model over a CIFAR-10-C folder, run
  as one process (1 torch thread, then every core) and under ``torchrun`` with 2 ranks of 1 thread.
  Each configuration is run twice into the same ``--out``: the first run computes every cell, the
  second finds them all in the cell cache; the difference is the evaluation time without process
  start, imports, rendezvous and checkpoint loading, which images/s is computed from. The ratio is
  against one process with one thread.
- :func:`decode_rows`: the ImageNet-C folder reader (``FileSource`` of a ``<c>/<s>/<wnid>/`` folder,
  224 px JPEGs, resize to 256 + center crop 224) streamed batch by batch as ``robust-eval`` does,
  with 0, 1 and 2 decode workers, against a bare Pillow loop (``Image.open(p).convert("RGB")`` to a
  numpy array, no resize). Ratio: images/s over the bare loop's.

    python benchmarks/scaling_eval.py            # resnet18 at 32 px, 3 corruptions x 5 x 400 images
    python benchmarks/scaling_eval.py --smoke    # tiny: checks the script runs
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval import build_data, write_checkpoint  # benchmarks/eval.py: CIFAR-10(-C) folder, checkpoint

Row = dict[str, Any]


def _checkpoint(path: Path, model: str) -> Path:
    """A randomly initialised timm ``model`` (10 classes, 32 px) in this project's checkpoint format."""
    import timm
    import torch

    import timm_ext.models  # noqa: F401 - registers the CIFAR architectures with timm

    torch.manual_seed(0)
    return write_checkpoint(path, timm.create_model(model, num_classes=10), model)


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed: {done.stderr[-1500:]}")
    return time.perf_counter() - start


def corruption_rows(
    smoke: bool = False, model: str = "resnet18", images: int = 400, corruptions: int = 3
) -> list[Row]:
    """``robust-eval corruptions`` images/s with 1 process (1 thread, all cores) and 2 torchrun ranks.

    Args:
        smoke: 8 images, 1 corruption, timm ``test_resnet``, no cached rerun: checks the code path only.
        model: timm model name (random weights; 32 px inputs).
        images: clean test images (= images per -C cell).
        corruptions: how many -C corruptions (x 5 severities).
    """
    from robust_eval.constants import ALL_CORRUPTIONS

    cores = os.cpu_count() or 1
    configs = [("1 process, 1 thread", 1, 1), (f"1 process, {cores} threads", 1, cores)]
    if smoke:  # and no second (cached) run: the wall time stands for the evaluation time
        model, images, corruptions, configs = "test_resnet", 8, 1, configs[:1]
    configs.append(("torchrun, 2 ranks x 1 thread", 2, 1))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build_data(root / "data", images, list(ALL_CORRUPTIONS[:corruptions]))
        ckpt = _checkpoint(root / "model.pth", model)
        n_images = images * (5 * corruptions + 1)  # every cell and the clean pass
        for label, ranks, threads in configs:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NO_ALBUMENTATIONS_UPDATE": "1"}
            out = root / f"out-{ranks}-{threads}"
            args = [
                "corruptions",
                str(ckpt),
                "--data-dir",
                str(root / "data"),
                "--out",
                str(out),
                "--batch-size",
                "128",
            ]
            if ranks == 1:
                command = [sys.executable, "-m", "robust_eval.cli", *args]
            else:
                launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
                command = [sys.executable, *launcher, "-m", "robust_eval.cli", *args]
            fresh = _timed(command, env)
            cached = 0.0 if smoke else _timed(command, env)  # all cells cached: start-up and loading only
            seconds = max(fresh - cached, 1e-9)
            rows.append(
                {
                    "benchmark": f"robust-eval corruptions ({model}, CPU)",
                    "setting": label,
                    "images": n_images,
                    "seconds": seconds,
                    "wall_seconds": fresh,
                    "images_per_s": n_images / seconds,
                }
            )
    for row in rows:
        row["ratio"] = row["images_per_s"] / rows[0]["images_per_s"]
    return rows


def _write_imagenet_c(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` 224 px JPEGs (smooth random content, quality 85) in ``<folder>/fog/3/<wnid>/``."""
    import cv2

    rng = np.random.default_rng(seed)
    for i in range(n):
        small = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
        image = cv2.resize(small, (224, 224), interpolation=cv2.INTER_CUBIC)
        cls = folder / "fog" / "3" / f"n{i % 4:08d}"
        cls.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(cls / f"ILSVRC2012_val_{i:08d}.JPEG"), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return folder / "fog" / "3"


def _bare_pil(paths: list[str]) -> float:
    from PIL import Image

    start = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGB"))
    return time.perf_counter() - start


def _reader(paths: list[str], labels: np.ndarray, workers: int, batch_size: int) -> float:
    from robust_eval import data as rdata
    from robust_eval.suites import _batches

    source = rdata.FileSource(paths, labels, 224, 0.875, "bilinear", workers)
    start = time.perf_counter()
    for _ in _batches(source, batch_size):
        pass
    return time.perf_counter() - start


def decode_rows(smoke: bool = False, images: int = 512, batch_size: int = 64, repeats: int = 3) -> list[Row]:
    """ImageNet-C folder reader images/s with 0, 1, 2 decode workers against a bare Pillow loop
    (best of ``repeats``, runs interleaved so load changes hit every setting)."""
    from robust_eval import data as rdata

    if smoke:
        images, batch_size, repeats = 8, 4, 1
    settings: list[tuple[str, Any]] = [("bare PIL decode loop", None)] + [
        (f"reader, --workers {w}", w) for w in (0, 1, 2)
    ]
    best = {label: float("inf") for label, _ in settings}
    with tempfile.TemporaryDirectory() as tmp:
        severity = _write_imagenet_c(Path(tmp) / "ImageNet-C", images)
        paths, labels, _ = rdata.list_imagefolder(severity)
        for _ in range(repeats):
            for label, workers in settings:
                t = _bare_pil(paths) if workers is None else _reader(paths, labels, workers, batch_size)
                best[label] = min(best[label], t)
    bare = images / best[settings[0][0]]
    return [
        {
            "benchmark": "ImageNet-C folder decode (224 px JPEG -> 256 resize + 224 crop)",
            "setting": label,
            "images": images,
            "seconds": best[label],
            "images_per_s": images / best[label],
            "ratio": images / best[label] / bare,
        }
        for label, _ in settings
    ]


def format_rows(rows: list[Row]) -> str:
    """A Markdown table of rows (setting, images, seconds, images/s, ratio)."""
    lines = [
        f"**{rows[0]['benchmark']}**",
        "",
        "| setting | images | seconds | images/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {r['images']} | {r['seconds']:.2f} | {r['images_per_s']:.0f} | {r['ratio']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    parser.add_argument("--model", default="resnet18", help="timm model for the corruption runs")
    parser.add_argument("--images", type=int, default=400, help="images per -C cell")
    parser.add_argument("--corruptions", type=int, default=3)
    parser.add_argument("--decode-images", type=int, default=512)
    args = parser.parse_args()
    print(format_rows(corruption_rows(args.smoke, args.model, args.images, args.corruptions)))
    print()
    print(format_rows(decode_rows(args.smoke, args.decode_images)))


if __name__ == "__main__":
    main()
