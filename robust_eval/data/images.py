"""Image files, image trees (ImageFolder: ``root/<class>/<image>``) and ``.npy`` image arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from robust_mix.cifar import DataLayoutError
from robust_mix.files import EVAL_SPLITS, TRAIN_SPLIT, FileProblem, decode_image, list_images

__all__ = [
    "EVAL_SPLITS",
    "TRAIN_SPLIT",
    "imagefolder_split",
    "list_image_files",
    "list_imagefolder",
    "load_npy_images",
    "open_npy",
    "read_image",
]


def list_imagefolder(root: str | os.PathLike[str]) -> tuple[list[str], np.ndarray, list[str]]:
    """Image paths, int64 labels and class names of an ImageFolder tree (classes sorted by name).

    Files in nested sub-folders of a class folder belong to that class.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(f"image folder '{root}' does not exist; expected root/<class>/<image files>")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataLayoutError(
            f"image folder '{root}' has no class sub-folders; expected root/<class>/<image files>"
        )
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = list_images(root / name)
        paths.extend(str(f) for f in found)
        labels.extend([label] * len(found))
    if not paths:
        raise DataLayoutError(f"image folder '{root}' has class folders but no image files")
    return paths, np.asarray(labels, dtype=np.int64), classes


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as uint8 ``(H, W, 3)`` RGB, decoded by the project's one decoder
    (:func:`robust_mix.files.decode_image`: Pillow, as torchvision's ImageFolder loader, plus
    EXIF orientation, 16-bit scaling and decompression-bomb limits)."""
    try:
        return decode_image(path)
    except FileProblem as exc:
        raise DataLayoutError(f"image file {exc}") from None


def open_npy(path: str | os.PathLike[str], mmap: bool = True) -> np.ndarray:
    """A ``.npy`` array (memory-mapped by default) with at least one row.

    Raises:
        DataLayoutError: the file is missing, unreadable or truncated (named, with numpy's reason), or
            holds 0 rows (an empty set gives no numbers, only errors further on).
    """
    path = Path(path)
    if not path.is_file():
        raise DataLayoutError(f"array file '{path}' is missing")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataLayoutError(
            f"'{path}' is not a readable .npy array ({exc}); regenerate or re-copy it"
        ) from None
    if arr.ndim == 0 or len(arr) == 0:
        raise DataLayoutError(
            f"'{path}' holds 0 rows ({arr.dtype} {arr.shape}); an empty set cannot be evaluated"
        )
    return arr


def load_npy_images(path: str | os.PathLike[str], mmap: bool = True) -> np.ndarray:
    """A uint8 ``(N, H, W, C)`` image array from ``.npy`` (memory-mapped by default), N >= 1
    (:func:`open_npy`)."""
    arr = open_npy(path, mmap)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise DataLayoutError(f"'{path}' holds {arr.dtype} {arr.shape}; expected uint8 (N, H, W, 3)")
    return arr


def imagefolder_split(root: str | os.PathLike[str], split: str | None = None) -> Path:
    """The ImageFolder root of a split: ``root/<split>`` (default: the first of :data:`EVAL_SPLITS` that
    exists), or ``root`` itself when it directly holds class folders and no split folder exists.

    A root whose only split is ``train/`` is refused unless ``split="train"`` is asked for: its images
    are the ones the model was trained on, and errors measured on them are not test errors.

    Raises:
        DataLayoutError: the split is missing, only ``train/`` exists, or ``root`` holds no folders.
    """
    root = Path(root)
    if split is not None:
        if not (root / split).is_dir():
            raise DataLayoutError(f"split folder '{root / split}' does not exist")
        return root / split
    for name in EVAL_SPLITS:
        if (root / name).is_dir():
            return root / name
    if (root / TRAIN_SPLIT).is_dir():
        raise DataLayoutError(
            f"'{root}' has a {TRAIN_SPLIT}/ split but no {'/, '.join(EVAL_SPLITS)}/ split: robust-eval does "
            f"not evaluate training images unasked; add a held-out split, or pass --split {TRAIN_SPLIT} to "
            "measure the training images (optimistic numbers)"
        )
    if root.is_dir() and any(d.is_dir() for d in root.iterdir()):
        return root
    raise DataLayoutError(
        f"no image folder at '{root}': expected '{root}/{'|'.join(EVAL_SPLITS)}/<class>/<image files>'"
    )


def list_image_files(root: str | os.PathLike[str]) -> list[str]:
    """Every image file under ``root`` (recursively, sorted); for unlabelled sets such as OOD trees."""
    return [str(p) for p in list_images(root)]
