"""Readers (and writers, for tests and conversions) of the standard data-set layouts.

Readers stream or memory-map; nothing is downloaded. Layouts are exactly those the benchmark
authors publish, so existing downloads work unchanged (see README, "Data layouts").

Clean sets handled here:

- CIFAR-10/100 "python version" folders (``cifar-10-batches-py/`` with ``data_batch_1..5`` and
  ``test_batch``; ``cifar-100-python/`` with ``train`` and ``test``). These files are pickles; they
  are read with a restricted unpickler that only rebuilds plain containers and numpy arrays, so a
  tampered file cannot run code.
- ImageFolder trees (``root/<class>/<image>``).
- ``.npy`` arrays of uint8 images ``(N, H, W, C)``, memory-mapped.
"""

from __future__ import annotations

import functools
import io
import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from albumentations_ipmix.files import (
    FileProblem,
    decode_image,
    list_images,
    resize_center_crop,
)
from robust_eval.constants import SEVERITIES

__all__ = [
    "CIFAR_FOLDERS",
    "DataLayoutError",
    "find_cifar_folder",
    "list_imagefolder",
    "list_perturbation_videos",
    "load_cifar",
    "load_npy_images",
    "load_perturbation",
    "read_image",
    "read_video",
    "write_cifar",
]

#: Folder names of the official CIFAR python archives, by data set.
CIFAR_FOLDERS: dict[str, str] = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_CIFAR_FILES: dict[str, dict[bool, tuple[str, ...]]] = {
    "cifar10": {True: tuple(f"data_batch_{i}" for i in range(1, 6)), False: ("test_batch",)},
    "cifar100": {True: ("train",), False: ("test",)},
}
_CIFAR_LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}
_CIFAR_META = {"cifar10": ("batches.meta", "label_names"), "cifar100": ("meta", "fine_label_names")}


class DataLayoutError(ValueError):
    """A data folder or file is missing or does not follow the expected layout."""


class _SafeUnpickler(pickle.Unpickler):
    """Rebuilds only builtin containers and numpy arrays (what CIFAR batch files contain)."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: CIFAR batch files only hold arrays, lists and dicts"
        )


def _safe_unpickle(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fh:
        raw = _SafeUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()
    if not isinstance(raw, dict):
        raise DataLayoutError(
            f"{path}: expected a pickled dict (CIFAR python batch), got {type(raw).__name__}"
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in raw.items()}


def find_cifar_folder(root: str | os.PathLike[str], dataset: str) -> Path:
    """The CIFAR python folder for ``dataset`` under ``root`` (or ``root`` itself if it is one)."""
    if dataset not in CIFAR_FOLDERS:
        raise DataLayoutError(f"dataset must be one of {sorted(CIFAR_FOLDERS)}, got {dataset!r}")
    root = Path(root)
    test_file = _CIFAR_FILES[dataset][False][0]
    for candidate in (root / CIFAR_FOLDERS[dataset], root):
        if (candidate / test_file).is_file():
            return candidate
    raise DataLayoutError(
        f"no {dataset} python folder under '{root}': put the extracted official archive at "
        f"'{root / CIFAR_FOLDERS[dataset]}' (it contains '{test_file}')"
    )


def load_cifar(
    folder: str | os.PathLike[str], dataset: str, train: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load a CIFAR split from its python folder.

    Returns:
        images: uint8 ``(N, 32, 32, 3)`` RGB; labels: int64 ``(N,)``; class names (may be generic).
    """
    folder = Path(folder)
    images, labels = [], []
    for name in _CIFAR_FILES[dataset][train]:
        path = folder / name
        if not path.is_file():
            raise DataLayoutError(
                f"CIFAR file '{path}' is missing ({dataset}, {'train' if train else 'test'} split)"
            )
        batch = _safe_unpickle(path)
        try:
            data = np.asarray(batch["data"], dtype=np.uint8)
            lab = np.asarray(batch[_CIFAR_LABEL_KEY[dataset]], dtype=np.int64)
        except KeyError as exc:
            raise DataLayoutError(f"{path}: missing key {exc}; not a {dataset} python batch") from exc
        if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != lab.shape[0]:
            raise DataLayoutError(
                f"{path}: data has shape {data.shape}, expected (N, 3072) matching {lab.shape[0]} labels"
            )
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    meta_file, meta_key = _CIFAR_META[dataset]
    n_classes = 10 if dataset == "cifar10" else 100
    class_names = [f"class_{i}" for i in range(n_classes)]
    if (folder / meta_file).is_file():
        meta = _safe_unpickle(folder / meta_file)
        names = meta.get(meta_key)
        if isinstance(names, list) and len(names) == n_classes:
            class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels), class_names


def write_cifar(
    folder: str | os.PathLike[str],
    dataset: str,
    images: np.ndarray,
    labels: np.ndarray,
    train: bool = False,
    class_names: Sequence[str] | None = None,
) -> Path:
    """Write images in the official CIFAR python layout (used by tests and conversions).

    For the CIFAR-10 train split the images are spread over the five ``data_batch_*`` files.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise DataLayoutError(f"CIFAR images must be uint8 (N, 32, 32, 3), got {images.shape}")
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    files = _CIFAR_FILES[dataset][train]
    # str keys and str class names, as the published files read with encoding="latin1" (what
    # torchvision.datasets.CIFAR10/100 and our reader do); bytes keys would break torchvision.
    for name, idx in zip(files, np.array_split(np.arange(len(images)), len(files))):
        batch = {
            "batch_label": name,
            "data": data[idx],
            _CIFAR_LABEL_KEY[dataset]: [int(v) for v in np.asarray(labels)[idx]],
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    n_classes = 10 if dataset == "cifar10" else 100
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(n_classes)]
    meta_file, meta_key = _CIFAR_META[dataset]
    with open(folder / meta_file, "wb") as fh:
        pickle.dump({meta_key: [str(n) for n in names]}, fh, protocol=2)
    return folder


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
    (:func:`albumentations_ipmix.files.decode_image`: Pillow, as torchvision's ImageFolder loader, plus
    EXIF orientation, 16-bit scaling and decompression-bomb limits)."""
    try:
        return decode_image(path)
    except FileProblem as exc:
        raise DataLayoutError(f"image file {exc}") from None


def load_npy_images(path: str | os.PathLike[str], mmap: bool = True) -> np.ndarray:
    """A uint8 ``(N, H, W, C)`` image array from ``.npy`` (memory-mapped by default)."""
    path = Path(path)
    if not path.is_file():
        raise DataLayoutError(f"array file '{path}' is missing")
    arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise DataLayoutError(f"'{path}' holds {arr.dtype} {arr.shape}; expected uint8 (N, H, W, 3)")
    return arr


# ---------------------------------------------------------------------------------------------
# Robustness-benchmark layouts (-C, -C-bar, -P, OOD, ImageNet-A/R/O), streaming sources,
# synthetic OOD sets and `robust-eval data check`.
#
#   <data>/cifar-10-batches-py/ | cifar-100-python/      clean CIFAR test set (official python folder)
#   <data>/CIFAR-10-C/<corruption>.npy + labels.npy       uint8 [5*N, 32, 32, 3], rows by severity
#   <data>/CIFAR-10-C-bar/<corruption>.npy + labels.npy   same layout (also "CIFAR-10-C-Bar")
#   <data>/CIFAR-10-P/<perturbation>.npy                  uint8 [N, T, 32, 32, 3]
#   <data>/imagenet/<split>/<wnid>/*.JPEG                 clean ImageNet (split: val by default)
#   <data>/ImageNet-C/<corruption>/<1..5>/<wnid>/*.JPEG
#   <data>/ImageNet-C-bar/<corruption>/<param %.2f>/<wnid>/*.JPEG   (sorted ascending = severity)
#   <data>/imagenet-a | imagenet-r | imagenet-o/<wnid>/*  200-class sets
#   <data>/ood/<name>.npy  or  <data>/ood/<name>/...      OOD sets (uint8 arrays or image trees)
# ---------------------------------------------------------------------------------------------

__all__ += [
    "SYNTHETIC_OOD",
    "ArraySource",
    "FileSource",
    "ImageSource",
    "LayoutEntry",
    "SequenceSource",
    "SyntheticSource",
    "check_layouts",
    "corruption_folder",
    "imagefolder_split",
    "list_image_files",
    "list_ood_sets",
    "load_corruption_cell",
    "load_corruption_labels",
    "load_perturbation_array",
    "perturbation_folder",
    "resize_center_crop",
    "sample_indices",
    "severity_folders",
    "synthetic_ood",
]

#: Synthetic OOD sets of the Outlier Exposure protocol, generated deterministically.
SYNTHETIC_OOD: tuple[str, ...] = ("gaussian", "rademacher", "blobs")

_CIFAR_TITLE = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
_CIFAR_TEST_SIZE = 10000


class ImageSource:
    """A streamable set of images (and optional int64 labels) read batch by batch.

    ``batch(start, stop)`` returns uint8 ``(B, H, W, 3)`` or float32 ``(B, H, W, 3)`` in [0, 1].
    """

    labels: np.ndarray | None

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def batch(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def subset(self, indices: np.ndarray) -> ImageSource:  # pragma: no cover - interface
        """The examples at ``indices`` (int array, in that order), as a source of the same kind."""
        raise NotImplementedError

    def head(self, n: int | None) -> ImageSource:
        """The first ``n`` examples (all when ``n`` is None or at least ``len(self)``)."""
        if n is None or n >= len(self):
            return self
        return self.subset(np.arange(n))

    def sample(self, n: int | None, seed: int = 0) -> ImageSource:
        """A seeded sample of ``n`` examples, class-stratified when labelled (:func:`sample_indices`)."""
        if n is None or n >= len(self):
            return self
        return self.subset(sample_indices(len(self), n, self.labels, seed))


def sample_indices(total: int, n: int, labels: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """``n`` of ``range(total)``, sorted: what ``--subset N`` evaluates.

    With labels the sample is stratified: every class contributes in proportion to its frequency
    (each example gets the key ``(rank in a seeded permutation of its class + 0.5) / class size`` and
    the ``n`` smallest keys are kept), so the first examples of an image folder sorted by class -
    one class - are never all that is evaluated. Without labels it is a seeded uniform sample. The
    same ``(total, n, labels, seed)`` always gives the same indices, so every -C cell (same labels)
    gets the same images.
    """
    if not 0 <= n <= total:
        raise ValueError(f"cannot sample {n} of {total} examples")
    rng = np.random.default_rng([seed, total, n])
    if labels is None:
        return np.sort(rng.choice(total, n, replace=False))
    labels = np.asarray(labels)
    keys = np.empty(total, np.float64)
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        keys[rng.permutation(members)] = (np.arange(len(members)) + 0.5) / len(members)
    order = np.lexsort((rng.random(total), keys))  # random tie-break between classes of equal size
    return np.sort(order[:n])


class ArraySource(ImageSource):
    """Images from an in-memory or memory-mapped array ``(N, H, W, C)`` (only touched rows are read)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DataLayoutError(f"images must be (N, H, W, 3), got {images.shape}")
        if labels is not None and len(labels) != len(images):
            raise DataLayoutError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, start: int, stop: int) -> np.ndarray:
        out = np.array(self.images[start:stop])  # a writable in-memory copy of the (mapped) rows
        return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out

    def subset(self, indices: np.ndarray) -> ArraySource:
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) and np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
            rows = slice(int(idx[0]), int(idx[0]) + len(idx))  # a contiguous block stays memory-mapped
            return ArraySource(self.images[rows], None if self.labels is None else self.labels[rows])
        return ArraySource(np.asarray(self.images[idx]), None if self.labels is None else self.labels[idx])


class FileSource(ImageSource):
    """Image files decoded on demand (``workers`` threads) and brought to ``size`` pixels with
    :func:`resize_center_crop`."""

    def __init__(
        self,
        paths: Sequence[str],
        labels: np.ndarray | None,
        size: int,
        crop_pct: float = 1.0,
        interpolation: str = "bilinear",
        workers: int = 0,
    ) -> None:
        self.paths = list(paths)
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.size, self.crop_pct, self.interpolation = int(size), float(crop_pct), interpolation
        self.workers = int(workers)
        self._pool: Any = None

    def __len__(self) -> int:
        return len(self.paths)

    def _load(self, path: str) -> np.ndarray:
        return resize_center_crop(read_image(path), self.size, self.crop_pct, self.interpolation)

    def batch(self, start: int, stop: int) -> np.ndarray:
        paths = self.paths[start:stop]
        if self.workers > 1:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.workers)
            images = list(self._pool.map(self._load, paths))
        else:
            images = [self._load(p) for p in paths]
        return np.stack(images) if images else np.zeros((0, self.size, self.size, 3), np.uint8)

    def with_paths(self, paths: Sequence[str], labels: np.ndarray | None) -> FileSource:
        """A source of the same kind and settings over other files (a slice or a selection)."""
        return FileSource(paths, labels, self.size, self.crop_pct, self.interpolation, self.workers)

    def subset(self, indices: np.ndarray) -> FileSource:
        idx = np.asarray(indices, dtype=np.int64)
        return self.with_paths(
            [self.paths[i] for i in idx], None if self.labels is None else self.labels[idx]
        )


class SequenceSource:
    """-P sequences: a uint8 array ``(N, T, H, W, 3)`` (memory-mapped), read a few sequences at a time."""

    def __init__(self, array: np.ndarray) -> None:
        if array.ndim != 5 or array.shape[-1] != 3:
            raise DataLayoutError(f"-P arrays must be uint8 (N, T, H, W, 3), got {array.shape}")
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    @property
    def frames(self) -> int:
        """Frames per sequence (T)."""
        return int(self.array.shape[1])

    def sequences(self, start: int, stop: int) -> np.ndarray:
        """uint8 ``(B, T, H, W, 3)``: sequences ``start..stop-1`` read into memory."""
        return np.array(self.array[start:stop])

    def head(self, n: int | None) -> SequenceSource:
        return self if n is None or n >= len(self) else SequenceSource(self.array[:n])

    def sample(self, n: int | None, seed: int = 0) -> SequenceSource:
        """A seeded uniform sample of ``n`` sequences (sorted), see :func:`sample_indices`."""
        if n is None or n >= len(self):
            return self
        return SequenceSource(np.asarray(self.array[sample_indices(len(self), n, None, seed)]))


def _first_existing(candidates: Sequence[Path]) -> Path | None:
    return next((c for c in candidates if c.is_dir()), None)


def corruption_folder(root: str | os.PathLike[str], dataset: str, bar: bool = False) -> Path | None:
    """Folder of the -C (or -C-bar) set for ``dataset`` under ``root``, or None if absent."""
    root = Path(root)
    if dataset in _CIFAR_TITLE:
        base = f"{_CIFAR_TITLE[dataset]}-C"
        names = [f"{base}-bar", f"{base}-Bar", f"{base}-BAR"] if bar else [base]
    elif dataset == "imagenet":
        names = ["ImageNet-C-bar", "ImageNet-C-Bar"] if bar else ["ImageNet-C"]
    else:
        return None
    return _first_existing([root / n for n in names])


def expected_corruption_folder(root: str | os.PathLike[str], dataset: str, bar: bool = False) -> Path:
    """Where :func:`corruption_folder` looks first (for "put X at Y" messages)."""
    title = {"imagenet": "ImageNet"}.get(dataset, _CIFAR_TITLE.get(dataset, dataset))
    return Path(root) / (f"{title}-C-bar" if bar else f"{title}-C")


def generator_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` that ``robust-eval make-c`` / ``make-p`` wrote into ``folder`` ({} when the
    folder is a published set or the file is someone else's)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    ours = isinstance(manifest, dict) and manifest.get("generator") == "robust_eval.generate"
    return manifest if ours else {}


def corruption_severities(folder: str | os.PathLike[str]) -> tuple[int, ...]:
    """The severities stored in a CIFAR-layout -C folder, in row order.

    Published folders hold all five; a folder written by ``robust-eval make-c --severities 1,3,5``
    records its severities in its manifest (:func:`generator_manifest`), and its arrays hold only
    those, in that order.
    """
    sevs = generator_manifest(folder).get("severities")
    if isinstance(sevs, list) and sevs:
        if any(not isinstance(v, int) or v not in SEVERITIES for v in sevs):
            raise DataLayoutError(f"'{Path(folder) / 'manifest.json'}' lists severities {sevs}; expected 1..5")
        return tuple(sevs)
    return tuple(SEVERITIES)


def load_corruption_labels(folder: str | os.PathLike[str], n_per_severity: int | None = None) -> np.ndarray:
    """``labels.npy`` of a CIFAR -C / -C-bar folder as int64 (stored uint8; the test labels repeated once
    per stored severity, see :func:`corruption_severities`)."""
    path = Path(folder) / "labels.npy"
    if not path.is_file():
        raise DataLayoutError(f"'{path}' is missing; the -C folder needs the labels file next to the arrays")
    labels = np.load(path, mmap_mode="r", allow_pickle=False)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataLayoutError(f"'{path}' holds {labels.dtype} {labels.shape}; expected integer (5*N,)")
    k = len(corruption_severities(folder))
    if n_per_severity is not None and len(labels) != k * n_per_severity:
        raise DataLayoutError(f"'{path}' has {len(labels)} labels, expected {k} x {n_per_severity}")
    return np.asarray(labels, dtype=np.int64)


def load_corruption_cell(
    folder: str | os.PathLike[str], corruption: str, severity: int, labels: np.ndarray
) -> ArraySource:
    """One (corruption, severity) cell of a CIFAR -C / -C-bar ``.npy`` folder, memory-mapped.

    With the stored severities ``S`` (:func:`corruption_severities`, 1..5 for published folders), rows
    ``[n*i, n*(i+1))`` of ``<corruption>.npy`` are severity ``S[i]``, where ``n = len(array) / len(S)``.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1..5, got {severity}")
    sevs = corruption_severities(folder)
    if severity not in sevs:
        raise DataLayoutError(f"'{folder}' holds severities {list(sevs)} only, not {severity}")
    arr = load_npy_images(Path(folder) / f"{corruption}.npy")
    k = len(sevs)
    if len(arr) == 0 or len(arr) % k or len(arr) != len(labels):
        raise DataLayoutError(
            f"'{Path(folder) / corruption}.npy' has {len(arr)} rows and labels.npy {len(labels)}; "
            f"expected {k} severities x N rows (N >= 1) in both"
        )
    n = len(arr) // k
    i = sevs.index(severity)
    return ArraySource(arr[n * i : n * (i + 1)], labels[n * i : n * (i + 1)])


def severity_folders(corruption_dir: str | os.PathLike[str]) -> list[Path]:
    """The 5 severity folders of an ImageNet-C(-bar) corruption folder, severity 1..5 in order.

    ImageNet-C names them ``1``..``5``; ImageNet-C-bar by parameter value (``"%.2f"``), sorted ascending.
    """
    folder = Path(corruption_dir)
    subdirs = [d for d in folder.iterdir() if d.is_dir()] if folder.is_dir() else []
    try:
        ordered = sorted(subdirs, key=lambda d: float(d.name))
    except ValueError as exc:
        raise DataLayoutError(f"'{folder}' has non-numeric severity folders: {exc}") from exc
    if len(ordered) != 5:
        raise DataLayoutError(f"'{folder}' has {len(ordered)} severity folders, expected 5")
    return ordered


def perturbation_folder(root: str | os.PathLike[str], dataset: str) -> Path | None:
    """The CIFAR-10/100-P (``.npy``) or ImageNet-P (videos) folder under ``root``, or None."""
    if dataset == "imagenet":
        return _first_existing([Path(root) / "ImageNet-P"])
    if dataset not in _CIFAR_TITLE:
        return None
    return _first_existing([Path(root) / f"{_CIFAR_TITLE[dataset]}-P"])


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """All frames of a video file (ImageNet-P: MP4) as uint8 ``(T, H, W, 3)`` RGB, decoded with OpenCV."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if len(frames) < 2:
        raise DataLayoutError(f"video '{path}' could not be decoded or has fewer than 2 frames")
    if any(f.shape != frames[0].shape for f in frames):
        raise DataLayoutError(f"video '{path}' changes frame size mid-sequence")
    return np.stack(frames)


class VideoSequenceSource(SequenceSource):
    """ImageNet-P sequences: one video per image (``<perturbation>/<wnid>/<name>.mp4``), decoded on
    demand. Every video of a perturbation must have the same frame count and frame size."""

    def __init__(self, paths: Sequence[str]) -> None:
        if not paths:
            raise DataLayoutError("no videos given")
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    @functools.cached_property
    def _shape(self) -> tuple[int, ...]:
        """Shape of the first video, decoded only when needed (a cached result skips all decoding)."""
        return read_video(self.paths[0]).shape

    @property
    def frames(self) -> int:
        return int(self._shape[0])

    def sequences(self, start: int, stop: int) -> np.ndarray:
        out = []
        for path in self.paths[start:stop]:
            video = read_video(path)
            if video.shape != self._shape:
                raise DataLayoutError(
                    f"video '{path}' is {video.shape[0]} frames of {video.shape[1]}x{video.shape[2]}; the "
                    f"first video of this perturbation is {self._shape[0]} frames of {self._shape[1]}x{self._shape[2]}"
                )
            out.append(video)
        return np.stack(out)

    def head(self, n: int | None) -> VideoSequenceSource:
        return self if n is None or n >= len(self) else VideoSequenceSource(self.paths[:n])

    def sample(self, n: int | None, seed: int = 0) -> VideoSequenceSource:
        if n is None or n >= len(self):
            return self
        return VideoSequenceSource([self.paths[i] for i in sample_indices(len(self), n, None, seed)])


def list_perturbation_videos(folder: str | os.PathLike[str], perturbation: str) -> list[str]:
    """Sorted ``<folder>/<perturbation>/<wnid>/*.mp4`` paths (empty when the perturbation is absent)."""
    base = Path(folder) / perturbation
    if not base.is_dir():
        return []
    return sorted(str(p) for p in base.glob("*/*.mp4"))


def load_perturbation(folder: str | os.PathLike[str], perturbation: str) -> SequenceSource | None:
    """The sequences of one perturbation: ``<perturbation>.npy`` (CIFAR-P) or a folder of videos
    (ImageNet-P); None when neither is there."""
    if (Path(folder) / f"{perturbation}.npy").is_file():
        return load_perturbation_array(folder, perturbation)
    videos = list_perturbation_videos(folder, perturbation)
    return VideoSequenceSource(videos) if videos else None


def load_perturbation_array(folder: str | os.PathLike[str], perturbation: str) -> SequenceSource:
    """``<folder>/<perturbation>.npy`` (uint8 ``[N, T, H, W, 3]``), memory-mapped."""
    path = Path(folder) / f"{perturbation}.npy"
    if not path.is_file():
        raise DataLayoutError(f"array file '{path}' is missing")
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim != 5 or arr.shape[-1] != 3 or arr.shape[1] < 2:
        raise DataLayoutError(f"'{path}' holds {arr.dtype} {arr.shape}; expected uint8 (N, T>=2, H, W, 3)")
    return SequenceSource(arr)


def imagefolder_split(root: str | os.PathLike[str], split: str | None = None) -> Path:
    """The ImageFolder root of a split: ``root/<split>`` (default: first of test, val, validation that
    exists), or ``root`` itself when it directly holds class folders and no split folder exists."""
    root = Path(root)
    if split is not None:
        if not (root / split).is_dir():
            raise DataLayoutError(f"split folder '{root / split}' does not exist")
        return root / split
    for name in ("test", "val", "validation"):
        if (root / name).is_dir():
            return root / name
    if root.is_dir() and any(d.is_dir() for d in root.iterdir()):
        return root
    raise DataLayoutError(
        f"no image folder at '{root}': expected '{root}/test|val|validation/<class>/<image files>'"
    )


def list_image_files(root: str | os.PathLike[str]) -> list[str]:
    """Every image file under ``root`` (recursively, sorted); for unlabelled sets such as OOD trees."""
    return [str(p) for p in list_images(root)]


def list_ood_sets(root: str | os.PathLike[str]) -> dict[str, Path]:
    """Real OOD sets under ``<root>/ood``: ``<name>.npy`` arrays and ``<name>/`` image trees, by name."""
    folder = Path(root) / "ood"
    if not folder.is_dir():
        return {}
    sets: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix == ".npy":
            sets[entry.stem] = entry
        elif entry.is_dir():
            sets[entry.name] = entry
    return sets


#: Images per independently seeded block of a synthetic OOD set.
SYNTHETIC_BLOCK = 256


def _synthetic_block(name: str, size: int, seed: int, block: int) -> np.ndarray:
    """Block ``block`` (images ``[256 * block, 256 * (block + 1))``) of a synthetic set, float32 [0, 1]."""
    rng = np.random.default_rng([seed, SYNTHETIC_OOD.index(name), block])
    shape = (SYNTHETIC_BLOCK, size, size, 3)
    if name == "gaussian":
        x = np.clip(rng.normal(0.0, 0.5, shape), -1.0, 1.0)
        return ((x + 1.0) / 2.0).astype(np.float32)
    if name == "rademacher":
        return rng.integers(0, 2, shape).astype(np.float32)
    from scipy.ndimage import gaussian_filter

    blobs = rng.binomial(1, 0.7, shape).astype(np.float64)
    # One 3-D Gaussian over (H, W, C) per image -- the reference's skimage gaussian(sigma=1.5,
    # multichannel=False) blurs across the colour channels too (mode "nearest", truncate 4) -- in
    # float64 as skimage computes it, then the 0.75 threshold.
    out = gaussian_filter(blobs, sigma=(0, 1.5, 1.5, 1.5), mode="nearest", truncate=4.0)
    out[out < 0.75] = 0.0
    return out.astype(np.float32)


def synthetic_ood(name: str, n: int, size: int = 32, seed: int = 0, start: int = 0) -> np.ndarray:
    """Images ``start .. start + n - 1`` of a synthetic OOD set of the Outlier Exposure protocol, as
    float32 ``(n, size, size, 3)`` in [0, 1].

    The reference code generates them in its [-1, 1] input space; here they are mapped to [0, 1]
    with ``x01 = (x + 1) / 2`` so they pass through the same input contract as every other set:

    - ``gaussian``: ``clip(N(0, 0.5), -1, 1)`` per pixel and channel;
    - ``rademacher``: ``+-1`` with probability 0.5 each;
    - ``blobs``: Bernoulli(0.7) image ``(size, size, 3)``, one 3-D Gaussian blur with sigma 1.5 over
      height, width AND channels (the reference's ``skimage.filters.gaussian(..., multichannel=False)``;
      not a per-channel blur), values below 0.75 set to 0 (in [0, 1] space, then used as is: the
      reference maps it with ``2x - 1``).

    Deterministic and streamable: image ``i`` depends only on (name, size, seed, i), so a set can be
    generated batch by batch (:class:`SyntheticSource`) and equals the one-shot array.
    """
    if name not in SYNTHETIC_OOD:
        raise ValueError(f"unknown synthetic OOD set {name!r}; choose from {SYNTHETIC_OOD}")
    if n < 0 or size < 1 or start < 0:
        raise ValueError(f"n and start must be >= 0 and size >= 1, got {n}, {start}, {size}")
    if n == 0:
        return np.zeros((0, size, size, 3), np.float32)
    first, last = start // SYNTHETIC_BLOCK, (start + n - 1) // SYNTHETIC_BLOCK
    blocks = np.concatenate([_synthetic_block(name, size, seed, b) for b in range(first, last + 1)])
    offset = start - first * SYNTHETIC_BLOCK
    return np.ascontiguousarray(blocks[offset : offset + n])


class SyntheticSource(ImageSource):
    """A synthetic OOD set generated batch by batch (never held in memory whole)."""

    labels = None

    def __init__(self, name: str, n: int, size: int, seed: int = 0) -> None:
        if name not in SYNTHETIC_OOD:
            raise ValueError(f"unknown synthetic OOD set {name!r}; choose from {SYNTHETIC_OOD}")
        self.name, self.n, self.size, self.seed = name, int(n), int(size), int(seed)

    def __len__(self) -> int:
        return self.n

    def batch(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.n)
        return synthetic_ood(self.name, max(0, stop - start), self.size, self.seed, start)

    def head(self, n: int | None) -> SyntheticSource:
        return self if n is None or n >= self.n else SyntheticSource(self.name, n, self.size, self.seed)

    def sample(self, n: int | None, seed: int = 0) -> SyntheticSource:
        return self.head(n)  # independent draws: any n of them are a sample

    def subset(self, indices: np.ndarray) -> ArraySource:
        idx = np.asarray(indices, dtype=np.int64)
        return ArraySource(self.batch(0, self.n)[idx]) if len(idx) else ArraySource(self.batch(0, 0))


@dataclass
class LayoutEntry:
    """One line of ``robust-eval data check``: a data set, where it is expected, and its state."""

    name: str
    path: str
    status: str  # "present" | "partial" | "missing" | "malformed"
    detail: str


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file without reading its data."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return tuple(arr.shape), arr.dtype


def _check_cifar(root: Path, dataset: str) -> LayoutEntry:
    where = root / CIFAR_FOLDERS[dataset]
    try:
        folder = find_cifar_folder(root, dataset)
    except DataLayoutError:
        return LayoutEntry(dataset, str(where), "missing", f"put the extracted python archive at '{where}'")
    try:
        images, labels, _ = load_cifar(folder, dataset)
    except (DataLayoutError, pickle.UnpicklingError, OSError, EOFError) as exc:
        return LayoutEntry(dataset, str(folder), "malformed", str(exc))
    n_classes = 10 if dataset == "cifar10" else 100
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        return LayoutEntry(dataset, str(folder), "malformed", f"labels outside 0..{n_classes - 1}")
    return LayoutEntry(dataset, str(folder), "present", f"test split: {len(images)} images")


def _array_set_entry(
    name: str, folder: Path, problems: list[str], found: list[str], missing: list[str], unit: str = "arrays"
) -> LayoutEntry:
    """Status of a folder of per-member data (``.npy`` arrays, video folders): malformed, partial,
    missing or present."""
    if problems:
        return LayoutEntry(name, str(folder), "malformed", "; ".join(problems))
    if missing:
        status = "partial" if found else "missing"
        return LayoutEntry(name, str(folder), status, f"{len(found)} {unit}; missing: {', '.join(missing)}")
    return LayoutEntry(name, str(folder), "present", f"{len(found)} {unit}")


def _check_npy_set(
    folder: Path | None, expected: Path, name: str, members: Sequence[str], optional: Sequence[str] = ()
) -> LayoutEntry:
    if folder is None:
        return LayoutEntry(
            name, str(expected), "missing", f"put <name>.npy files and labels.npy in '{expected}'"
        )
    problems: list[str] = []
    try:
        labels_shape, labels_dtype = _npy_header(folder / "labels.npy")
        if len(labels_shape) != 1 or not np.issubdtype(labels_dtype, np.integer):
            problems.append(f"labels.npy is {labels_dtype} {labels_shape}, expected integer (5*N,)")
    except (OSError, ValueError) as exc:
        labels_shape = None
        problems.append(f"labels.npy unreadable or missing ({exc.__class__.__name__})")
    found, missing = [], []
    for member in (*members, *optional):
        path = folder / f"{member}.npy"
        if not path.is_file():
            if member in members:
                missing.append(member)
            continue
        try:
            shape, dtype = _npy_header(path)
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
            continue
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3 or shape[0] % 5:
            problems.append(f"{path.name}: {dtype} {shape}, expected uint8 (5*N, H, W, 3)")
        elif labels_shape is not None and shape[0] != labels_shape[0]:
            problems.append(f"{path.name}: {shape[0]} rows but labels.npy has {labels_shape[0]}")
        else:
            found.append(member)
    return _array_set_entry(name, folder, problems, found, missing)


def _check_p_set(folder: Path | None, expected: Path, name: str, members: Sequence[str]) -> LayoutEntry:
    if folder is None:
        return LayoutEntry(name, str(expected), "missing", f"put <perturbation>.npy files in '{expected}'")
    problems, found, missing = [], [], []
    for member in members:
        path = folder / f"{member}.npy"
        if not path.is_file():
            missing.append(member)
            continue
        try:
            shape, dtype = _npy_header(path)
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
            continue
        if dtype != np.uint8 or len(shape) != 5 or shape[-1] != 3 or shape[1] < 2:
            problems.append(f"{path.name}: {dtype} {shape}, expected uint8 (N, T, H, W, 3)")
        else:
            found.append(member)
    return _array_set_entry(name, folder, problems, found, missing)


def _check_tree(path: Path, name: str, expected_classes: int | None = None) -> LayoutEntry:
    if not path.is_dir():
        return LayoutEntry(name, str(path), "missing", f"put '<class>/<image files>' folders in '{path}'")
    try:
        files, _, classes = list_imagefolder(path)
    except DataLayoutError as exc:
        return LayoutEntry(name, str(path), "malformed", str(exc))
    if expected_classes is not None and len(classes) != expected_classes:
        return LayoutEntry(
            name, str(path), "malformed", f"{len(classes)} class folders, expected {expected_classes}"
        )
    return LayoutEntry(name, str(path), "present", f"{len(classes)} classes, {len(files)} images")


def _check_imagenet_c(folder: Path | None, expected: Path, name: str, members: Sequence[str]) -> LayoutEntry:
    if folder is None:
        return LayoutEntry(
            name, str(expected), "missing", f"put <corruption>/<severity>/<wnid>/*.JPEG in '{expected}'"
        )
    problems, found, missing = [], [], []
    for member in members:
        if not (folder / member).is_dir():
            missing.append(member)
            continue
        try:
            for sev in severity_folders(folder / member):
                list_imagefolder(sev)
            found.append(member)
        except DataLayoutError as exc:
            problems.append(str(exc))
    if problems:
        return LayoutEntry(name, str(folder), "malformed", "; ".join(problems))
    if missing:
        status = "partial" if found else "missing"
        return LayoutEntry(
            name, str(folder), status, f"{len(found)} corruptions; missing: {', '.join(missing)}"
        )
    return LayoutEntry(name, str(folder), "present", f"{len(found)} corruptions")


def _check_imagenet_p(folder: Path | None, expected: Path, members: Sequence[str]) -> LayoutEntry:
    name = "ImageNet-P"
    if folder is None:
        return LayoutEntry(name, str(expected), "missing", f"put <perturbation>/<wnid>/*.mp4 in '{expected}'")
    problems, found, missing = [], [], []
    for member in members:
        videos = list_perturbation_videos(folder, member)
        if not videos:
            missing.append(member)
            continue
        try:
            read_video(videos[0])
            found.append(member)
        except DataLayoutError as exc:
            problems.append(str(exc))
    entry = _array_set_entry(name, folder, problems, found, missing, unit="perturbations")
    from robust_eval.constants import NOISE_PERTURBATIONS, P_DIFFICULTIES

    levels = [
        f"{p}_{d}"
        for p in sorted(NOISE_PERTURBATIONS)
        for d in P_DIFFICULTIES[1:]
        if list_perturbation_videos(folder, f"{p}_{d}")
    ]
    entry.detail += f"; difficulty folders: {', '.join(levels) if levels else 'none (difficulty 1 only)'}"
    return entry


def check_layouts(root: str | os.PathLike[str]) -> list[LayoutEntry]:
    """Validate every layout this package reads under the data root (shapes, dtypes, label files,
    file counts). Never raises for bad data: each problem becomes a "malformed" entry."""
    from robust_eval.constants import (
        ALL_CORRUPTIONS,
        BENCHMARK_CORRUPTIONS,
        CIFAR_CBAR_CORRUPTIONS,
        EXTRA_CORRUPTIONS,
        IMAGENET_CBAR_CORRUPTIONS,
        TEST_PERTURBATIONS,
        VALIDATION_PERTURBATIONS,
    )

    root = Path(root)
    entries: list[LayoutEntry] = []
    for ds, title in _CIFAR_TITLE.items():
        entries.append(_check_cifar(root, ds))
        entries.append(
            _check_npy_set(
                corruption_folder(root, ds),
                expected_corruption_folder(root, ds),
                f"{title}-C",
                BENCHMARK_CORRUPTIONS,
                EXTRA_CORRUPTIONS,
            )
        )
        entries.append(
            _check_npy_set(
                corruption_folder(root, ds, bar=True),
                expected_corruption_folder(root, ds, bar=True),
                f"{title}-C-bar",
                CIFAR_CBAR_CORRUPTIONS,
            )
        )
        entries.append(
            _check_p_set(
                perturbation_folder(root, ds),
                root / f"{title}-P",
                f"{title}-P",
                (*TEST_PERTURBATIONS, *VALIDATION_PERTURBATIONS),
            )
        )
    imagenet = root / "imagenet"
    try:
        entries.append(_check_tree(imagefolder_split(imagenet), "imagenet (val)", 1000))
    except DataLayoutError:
        entries.append(_check_tree(imagenet / "val", "imagenet (val)", 1000))
    entries.append(
        _check_imagenet_c(
            corruption_folder(root, "imagenet"),
            expected_corruption_folder(root, "imagenet"),
            "ImageNet-C",
            ALL_CORRUPTIONS,
        )
    )
    entries.append(
        _check_imagenet_c(
            corruption_folder(root, "imagenet", bar=True),
            expected_corruption_folder(root, "imagenet", bar=True),
            "ImageNet-C-bar",
            IMAGENET_CBAR_CORRUPTIONS,
        )
    )
    entries.append(
        _check_imagenet_p(
            perturbation_folder(root, "imagenet"),
            root / "ImageNet-P",
            (*TEST_PERTURBATIONS, *VALIDATION_PERTURBATIONS),
        )
    )
    for name in ("imagenet-a", "imagenet-r", "imagenet-o"):
        entries.append(_check_tree(root / name, name, 200))
    entries += _check_protocol_ood(root)
    for name, path in list_ood_sets(root).items():
        entries.append(_check_ood(name, path))
    if not (root / "ood").is_dir():
        entries.append(
            LayoutEntry("ood", str(root / "ood"), "missing", "put <name>.npy or <name>/ image trees there")
        )
    return entries


#: What each real OOD set of the published CIFAR protocol is, for "put X at Y" lines.
_OOD_SET_TITLES = {
    "textures": ("Textures (DTD)", "the DTD archive's images/<class>/*.jpg"),
    "svhn": ("SVHN", "the official test split test_32x32.mat"),
    "places365": ("Places365", "an image tree (e.g. the test images)"),
    "lsun": ("LSUN", "an image tree of LSUN images"),
}


def _check_protocol_ood(root: Path) -> list[LayoutEntry]:
    """One entry per real OOD set of the CIFAR protocol: where it was found, or where it goes."""
    from robust_eval import ood_data

    entries = []
    for name, places in ood_data.OOD_SET_PLACES.items():
        title, what = _OOD_SET_TITLES[name]
        label = f"ood: {title}"
        found = next((root / p for p in places if (root / p).exists()), None)
        if found is None:
            where = root / places[0]
            entries.append(LayoutEntry(label, str(where), "missing", f"put {what} at '{where}'"))
        elif name == "svhn":
            entries.append(_check_svhn(label, found))
        else:
            files = list_image_files(found)
            status = "present" if files else "malformed"
            entries.append(
                LayoutEntry(label, str(found), status, f"{len(files)} images" if files else "no image files")
            )
    entries.append(
        LayoutEntry(
            "ood: the other CIFAR",
            str(root),
            "present" if all(_has_cifar(root, d) for d in CIFAR_FOLDERS) else "partial",
            "CIFAR-100's test set is OOD for CIFAR-10 models and vice versa, read from the cifar10 / "
            "cifar100 folders above",
        )
    )
    return entries


def _has_cifar(root: Path, dataset: str) -> bool:
    try:
        find_cifar_folder(root, dataset)
    except DataLayoutError:
        return False
    return True


def _check_svhn(label: str, path: Path) -> LayoutEntry:
    """SVHN's .mat header (shapes only, nothing loaded): X (32, 32, 3, N) and y (N, 1)."""
    from scipy.io import whosmat

    try:
        shapes = {name: shape for name, shape, _ in whosmat(str(path))}
    except (OSError, ValueError) as exc:
        return LayoutEntry(label, str(path), "malformed", f"unreadable .mat file ({exc})")
    x, y = shapes.get("X"), shapes.get("y")
    if x is None or y is None or len(x) != 4 or tuple(x[:3]) != (32, 32, 3) or y[0] != x[3]:
        return LayoutEntry(
            label, str(path), "malformed", f"expected X (32, 32, 3, N) and y (N, 1), got {shapes}"
        )
    return LayoutEntry(label, str(path), "present", f"{x[3]} images 32x32")


def _check_ood(name: str, path: Path) -> LayoutEntry:
    label = f"ood/{name}"
    if path.suffix == ".npy":
        try:
            shape, dtype = _npy_header(path)
        except (OSError, ValueError) as exc:
            return LayoutEntry(label, str(path), "malformed", f"unreadable ({exc})")
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            return LayoutEntry(label, str(path), "malformed", f"{dtype} {shape}, expected uint8 (N, H, W, 3)")
        return LayoutEntry(label, str(path), "present", f"{shape[0]} images {shape[1]}x{shape[2]}")
    files = list_image_files(path)
    if not files:
        return LayoutEntry(label, str(path), "malformed", "no image files")
    return LayoutEntry(label, str(path), "present", f"{len(files)} images")
