"""The real OOD sets of the published CIFAR protocol (Outlier Exposure; used by PixMix and IPMix).

Outlier Exposure's CIFAR test (``CIFAR/test.py``) scores the test set against Gaussian, Rademacher
and Blobs noise (:data:`robust_eval.data.SYNTHETIC_OOD`) and five real sets, each read in its
published format and brought to the model's size the way that script does:

- Textures (DTD): the image tree of the DTD archive, ``<data>/dtd/images/<class>/*.jpg``;
- SVHN: the test split ``<data>/svhn/test_32x32.mat`` (MATLAB file, read with ``scipy.io``);
- Places365: an image tree at ``<data>/places365/``;
- LSUN: an image tree at ``<data>/LSUN/``;
- the other CIFAR (CIFAR-100 for a CIFAR-10 model and vice versa): its official python folder,
  through :func:`robust_eval.data.load_cifar`.

Image trees are decoded with Pillow and resized as torchvision's ``Resize(size)`` +
``CenterCrop(size)`` do in the reference (shorter side to ``size`` with Pillow's bilinear filter,
longer side ``int(size * long / short)``, crop offsets ``round((extent - size) / 2)``); SVHN and CIFAR
are already 32 x 32. Each set may also sit under ``<data>/ood/<name>`` (see :data:`robust_eval.data.layouts.OOD_SET_PLACES`).

Synthetic sets (Gaussian, Rademacher, Blobs) are generated deterministically, batch by batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robust_eval.data.images import list_image_files, load_npy_images, read_image
from robust_eval.data.sources import ArraySource, FileSource, ImageSource
from robust_mix.cifar import DataLayoutError, load_cifar

__all__ = [
    "PROTOCOL_OOD_SETS",
    "REAL_OOD_SETS",
    "SYNTHETIC_BLOCK",
    "SYNTHETIC_OOD",
    "OODSet",
    "SyntheticSource",
    "load_svhn",
    "ood_source",
    "other_cifar",
    "read_image_pil",
    "reference_resize_crop",
    "synthetic_ood",
]

#: Synthetic OOD sets of the Outlier Exposure protocol, generated deterministically.
SYNTHETIC_OOD: tuple[str, ...] = ("gaussian", "rademacher", "blobs")


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


#: The real OOD sets of the published CIFAR protocol (their places: the table of layouts,
#: :data:`robust_eval.data.layouts.LAYOUTS` ``ood:<name>``).
REAL_OOD_SETS: tuple[str, ...] = ("textures", "svhn", "places365", "lsun")

#: The OOD sets of the published CIFAR protocol, in its order; "cifar" is the other CIFAR.
PROTOCOL_OOD_SETS: tuple[str, ...] = (*SYNTHETIC_OOD, *REAL_OOD_SETS, "cifar")


@dataclass(frozen=True)
class OODSet:
    """A real OOD set found under the data root: its name, where it is, and how it is stored."""

    name: str
    path: Path
    kind: str  # "images" (image tree) | "svhn" (test_32x32.mat) | "cifar" (python folder) | "npy"


def other_cifar(dataset: str) -> str | None:
    """The CIFAR data set that is OOD for ``dataset`` (cifar10 <-> cifar100), None otherwise."""
    return {"cifar10": "cifar100", "cifar100": "cifar10"}.get(dataset)


def load_svhn(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """SVHN's ``test_32x32.mat``: uint8 images ``(N, 32, 32, 3)`` and int64 labels 0..9 (the file
    stores digit 0 as label 10)."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        mat = loadmat(str(path))
    except (OSError, ValueError) as exc:
        raise DataLayoutError(f"'{path}' is not a readable SVHN .mat file: {exc}") from exc
    images, labels = mat.get("X"), mat.get("y")
    if images is None or labels is None or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataLayoutError(
            f"'{path}' lacks SVHN's 'X' (32, 32, 3, N) uint8 and 'y' (N, 1) arrays; use the official "
            "test_32x32.mat"
        )
    x = np.ascontiguousarray(np.asarray(images, dtype=np.uint8).transpose(3, 0, 1, 2))
    return x, np.asarray(labels, dtype=np.int64).reshape(-1) % 10


def read_image_pil(path: str | os.PathLike[str]) -> np.ndarray:
    """An image decoded with Pillow as uint8 ``(H, W, 3)`` RGB (torchvision ImageFolder's loader; the
    project's one decoder, :func:`robust_eval.data.read_image`, which also applies EXIF orientation)."""
    return read_image(path)


def reference_resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """torchvision ``Resize(size)`` (Pillow bilinear, antialiased) then ``CenterCrop(size)`` on a uint8
    ``(H, W, 3)`` image, pixel for pixel, for images at least ``size`` on each side after the resize."""
    from PIL import Image

    h, w = image.shape[:2]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size * long / short)
    nh, nw = (size, new_long) if h <= w else (new_long, size)
    if (nh, nw) != (h, w):
        resized = Image.fromarray(np.ascontiguousarray(image)).resize((nw, nh), Image.BILINEAR)
        image = np.asarray(resized)
    top, left = round((nh - size) / 2.0), round((nw - size) / 2.0)
    return np.ascontiguousarray(image[top : top + size, left : left + size])


class ReferenceFileSource(FileSource):
    """Image files decoded with Pillow and brought to ``size`` by :func:`reference_resize_crop`."""

    def __init__(self, paths: Sequence[str], size: int, workers: int = 0) -> None:
        super().__init__(paths, None, size, 1.0, "bilinear", workers)

    def _load(self, path: str) -> np.ndarray:
        return reference_resize_crop(read_image_pil(path), self.size)

    def with_paths(self, paths: Sequence[str], labels: np.ndarray | None) -> ReferenceFileSource:
        return ReferenceFileSource(paths, self.size, self.workers)


def ood_source(entry: OODSet, size: int, workers: int = 0) -> ImageSource:
    """The images of one OOD set at ``size`` pixels (see the module docstring for each format)."""
    if entry.kind == "svhn":
        return ArraySource(load_svhn(entry.path)[0])
    if entry.kind == "cifar":
        return ArraySource(load_cifar(entry.path, entry.name)[0])
    if entry.kind == "npy":
        return ArraySource(load_npy_images(entry.path))
    files = list_image_files(entry.path)
    if not files:
        raise DataLayoutError(f"OOD set '{entry.name}' at '{entry.path}' holds no image files")
    return ReferenceFileSource(files, size, workers)
