"""A small real data set for CPU-scale studies: scikit-learn's handwritten digits as CIFAR-10.

``write_digits(root)`` (CLI: ``robust-eval data digits DATA``) writes

- ``DATA/cifar-10-batches-py/``: the 1,797 digits (8 x 8 grey, 17 levels, shipped with
  scikit-learn) upscaled to 32 x 32 RGB, in the official CIFAR-10 "python version" layout
  (``data_batch_1..5``, ``test_batch``, ``batches.meta``; pickles with str keys ``data``, ``labels``,
  ``filenames``, ``batch_label`` and ``label_names``), with a fixed stratified train/test split;
- ``DATA/ood/photos.npy``: uint8 ``(N, 32, 32, 3)`` crops of the photographs bundled with
  scikit-image, a real out-of-distribution set for ``robust-eval ood``.

Why this layout: ``timm train --dataset cifar10`` trains on it with the CIFAR pipeline (random crop
with padding + flip), ``robust-eval make-c/make-p --preset cifar`` regenerate CIFAR-10-C/-P from its
test split, and ``robust-eval all`` reads all of it, so the whole -C/-P/OOD protocol runs with the
public commands. The published reader, ``torchvision.datasets.CIFAR10``, parses the same files (it
only refuses them in its md5 check, which exists to recognize the official download).

Everything is deterministic: the same call writes byte-identical files. A folder that already holds
the same content is kept; one with other content is never overwritten.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from robust_eval.data import CIFAR_FOLDERS, DataLayoutError

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
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


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


def _batch_bytes(images: np.ndarray, labels: np.ndarray, names: list[str], title: str) -> bytes:
    batch = {
        "batch_label": title,
        "labels": [int(v) for v in labels],
        "data": np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1)),
        "filenames": names,
    }
    return pickle.dumps(batch, protocol=2)


def _cifar_files(images: np.ndarray, labels: np.ndarray) -> dict[str, bytes]:
    """File name -> content of the CIFAR-10 python folder for the fixed split."""
    train, test = split_digits(labels)
    files: dict[str, bytes] = {}
    chunks = np.array_split(train, len(_TRAIN_FILES))
    for i, (name, idx) in enumerate(zip(_TRAIN_FILES, chunks), start=1):
        title = f"training batch {i} of {len(_TRAIN_FILES)} (sklearn digits)"
        files[name] = _batch_bytes(images[idx], labels[idx], [f"digit_{j:04d}.png" for j in idx], title)
    names = [f"digit_{j:04d}.png" for j in test]
    files["test_batch"] = _batch_bytes(
        images[test], labels[test], names, "testing batch 1 of 1 (sklearn digits)"
    )
    meta = {"num_cases_per_batch": len(chunks[0]), "label_names": _CLASS_NAMES, "num_vis": 3072}
    files["batches.meta"] = pickle.dumps(meta, protocol=2)
    return files


def _same_content(folder: Path, files: dict[str, bytes]) -> bool:
    def digest(b: bytes) -> str:
        return hashlib.sha256(b).hexdigest()

    return all(
        (folder / name).is_file() and digest((folder / name).read_bytes()) == digest(content)
        for name, content in files.items()
    )


def _publish_folder(target: Path, files: dict[str, bytes]) -> bool:
    """Write ``files`` into ``target`` atomically (temp folder + rename); False if already there."""
    if target.exists():
        if _same_content(target, files):
            return False
        raise DataLayoutError(
            f"'{target}' already exists with other content; remove it or pass another data root"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, content in files.items():
            (tmp / name).write_bytes(content)
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
    status[str(folder)] = "written" if _publish_folder(folder, _cifar_files(images, labels)) else "kept"
    if ood:
        buf = io.BytesIO()
        np.save(buf, photo_crops(), allow_pickle=False)
        path = root / "ood" / "photos.npy"
        status[str(path)] = "written" if _publish_file(path, buf.getvalue()) else "kept"
    return status
