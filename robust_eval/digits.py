"""A small real data set for CPU-scale studies: scikit-learn's handwritten digits as CIFAR-10.

``write_digits(root)`` (CLI: ``robust-eval data digits DATA``) writes

- ``DATA/cifar-10-batches-py/``: the 1,797 digits (8 x 8 grey, 17 levels, shipped with
  scikit-learn) upscaled to 32 x 32 RGB, in the official CIFAR-10 "python version" layout
  (``data_batch_1..5``, ``test_batch``, ``batches.meta``), written by the project's one CIFAR writer,
  :func:`robust_mix.cifar.write_cifar`, with a fixed stratified train/test split;
- ``DATA/ood/photos.npy``: uint8 ``(N, 32, 32, 3)`` crops of the photographs bundled with
  scikit-image, a real out-of-distribution set for ``robust-eval ood``.

Why this layout: ``timm train --dataset cifar10`` trains on it with the CIFAR pipeline (random crop
with padding + flip), ``robust-eval make-c/make-p --preset cifar`` regenerate CIFAR-10-C/-P from its
test split, and ``robust-eval all`` reads all of it, so the whole -C/-P/OOD protocol runs with the
public commands. The published reader, ``torchvision.datasets.CIFAR10``, parses the same files (it
only refuses them in its md5 check, which exists to recognize the official download).

Everything is deterministic: the same call writes byte-identical files. A folder that already reads
back as the same images, labels and class names is kept; one with other content is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from robust_mix.cifar import CIFAR_FOLDERS, DataLayoutError, load_cifar, write_cifar

__all__ = [
    "DIGITS_SIZE",
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_FRACTION",
    "OOD_PHOTOS",
    "digits_dataset",
    "photo_crops",
    "split_digits",
    "write_digits",
]

#: Side of the written images in pixels (the CIFAR layout fixes 32).
DIGITS_SIZE = 32
#: Fraction of each class held out as the test split (stratified).
DIGITS_TEST_FRACTION = 0.2
#: Seed of the train/test split; part of the data set's identity.
DIGITS_SPLIT_SEED = 0
#: scikit-image photographs cropped into the real OOD set (all bundled, none downloaded).
OOD_PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "brick")
_CLASS_NAMES = [str(i) for i in range(10)]


def digits_dataset(size: int = DIGITS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits as uint8 ``(N, size, size, 3)`` RGB (dark ink on white) and int64 labels.

    The 8 x 8 images hold 0..16 (ink amount); they are mapped to grey ``255 - 255 * v / 16`` and
    upscaled with bicubic interpolation, then copied to three channels.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    grey = (255.0 - bunch.images * (255.0 / 16.0)).astype(np.float32)
    up = np.stack([cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC) for g in grey])
    up = np.clip(np.rint(up), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(up[..., None], 3, axis=-1)), bunch.target.astype(np.int64)


def split_digits(
    labels: np.ndarray, test_fraction: float = DIGITS_TEST_FRACTION, seed: int = DIGITS_SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices of a stratified split: ``test_fraction`` of every class is test."""
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    idx = np.arange(len(labels))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


def photo_crops(n: int = 400, size: int = DIGITS_SIZE, seed: int = 0) -> np.ndarray:
    """``n`` random square crops (side 1/8 .. 1/2 of the shorter side) of :data:`OOD_PHOTOS`,
    resized to ``size`` px: uint8 ``(n, size, size, 3)``, deterministic given ``seed``."""
    from skimage import data

    photos = [getattr(data, name)() for name in OOD_PHOTOS]
    photos = [np.repeat(p[..., None], 3, -1) if p.ndim == 2 else p[..., :3] for p in photos]
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 8, min(h, w) // 2 + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        out[i] = cv2.resize(photo[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)
    return out


def _write_split_folder(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """The CIFAR-10 python folder of the fixed split, written by :func:`robust_mix.cifar.write_cifar`."""
    train, test = split_digits(labels)
    write_cifar(folder, "cifar10", images[train], labels[train], train=True, class_names=_CLASS_NAMES)
    write_cifar(folder, "cifar10", images[test], labels[test], train=False, class_names=_CLASS_NAMES)


def _holds_split(folder: Path, images: np.ndarray, labels: np.ndarray) -> bool:
    """Whether ``folder`` already reads back as exactly the digits split (images, labels, names)."""
    train, test = split_digits(labels)
    try:
        for split, idx in ((True, train), (False, test)):
            x, y, names = load_cifar(folder, "cifar10", train=split)
            if names != _CLASS_NAMES or not (
                np.array_equal(x, images[idx]) and np.array_equal(y, labels[idx])
            ):
                return False
    except (DataLayoutError, OSError):
        return False
    return True


def _publish_folder(target: Path, images: np.ndarray, labels: np.ndarray) -> bool:
    """Write the CIFAR folder into ``target`` atomically (temp folder + rename); False if already there."""
    if target.exists():
        if _holds_split(target, images, labels):
            return False
        raise DataLayoutError(
            f"'{target}' already exists with other content; remove it or pass another data root"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_split_folder(tmp, images, labels)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return True


def _publish_file(target: Path, content: bytes) -> bool:
    if target.exists():
        if target.read_bytes() == content:
            return False
        raise DataLayoutError(f"'{target}' already exists with other content; remove it or pass another root")
    from robust_eval.cache import atomic_write_bytes

    atomic_write_bytes(target, content)
    return True


def write_digits(root: str | os.PathLike[str], ood: bool = True) -> dict[str, str]:
    """Write the digits (and, with ``ood``, the photo-crop OOD set) under ``root``.

    Returns:
        ``{path: "written" | "kept"}`` for ``root/cifar-10-batches-py`` and ``root/ood/photos.npy``.

    Raises:
        DataLayoutError: a target exists with other content (nothing is overwritten).
    """
    import io

    root = Path(root)
    images, labels = digits_dataset()
    status: dict[str, str] = {}
    folder = root / CIFAR_FOLDERS["cifar10"]
    status[str(folder)] = "written" if _publish_folder(folder, images, labels) else "kept"
    if ood:
        buf = io.BytesIO()
        np.save(buf, photo_crops(), allow_pickle=False)
        path = root / "ood" / "photos.npy"
        status[str(path)] = "written" if _publish_file(path, buf.getvalue()) else "kept"
    return status
