"""Streamable image sets: the :class:`ImageSource` interface (``batch``, ``subset``, ``head``,
``sample``), its array and file implementations, and -P sequence sources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robust_eval.data.images import read_image
from robust_mix.cifar import DataLayoutError
from robust_mix.files import resize_center_crop

__all__ = [
    "ArraySource",
    "FileSource",
    "ImageSource",
    "SequenceSource",
    "resize_center_crop",
    "sample_indices",
]


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
