"""The official CIFAR-10/100 "python version" archives: find, read (restricted unpickler) and write.

Shared by ``timm train`` (``timm_ext``) and ``robust-eval`` (``robust_eval.data`` re-exports every name),
so neither package imports the other for it. Reading needs numpy only.

``cifar-10-batches-py/`` holds ``data_batch_1..5``, ``test_batch`` and ``batches.meta``;
``cifar-100-python/`` holds ``train``, ``test`` and ``meta``. These files are pickles; they are read with
a restricted unpickler that only rebuilds plain containers and numpy arrays, so a tampered file cannot
run code.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robust_mix.errors import RobustMixError

__all__ = [
    "CIFAR_ARCHIVE",
    "CIFAR_CLASSES",
    "CIFAR_FOLDERS",
    "CIFAR_TITLES",
    "DataLayoutError",
    "UnsafePickleError",
    "cifar_test_file",
    "find_cifar_folder",
    "load_cifar",
    "write_cifar",
]

CIFAR_FOLDERS: dict[str, str] = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
#: Number of classes, by data set.
CIFAR_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100}
_CIFAR_FILES: dict[str, dict[bool, tuple[str, ...]]] = {
    "cifar10": {True: tuple(f"data_batch_{i}" for i in range(1, 6)), False: ("test_batch",)},
    "cifar100": {True: ("train",), False: ("test",)},
}
_CIFAR_LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}
_CIFAR_META = {"cifar10": ("batches.meta", "label_names"), "cifar100": ("meta", "fine_label_names")}
#: Published names of the data sets (the -C / -P folder names start with them).
CIFAR_TITLES: dict[str, str] = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}
#: What goes into a CIFAR folder, for "put X at Y" messages (robust_eval's table of layouts uses it too).
CIFAR_ARCHIVE: dict[str, str] = {
    ds: f"the extracted official {title} python archive (it contains '{_CIFAR_FILES[ds][False][0]}')"
    for ds, title in CIFAR_TITLES.items()
}


class DataLayoutError(ValueError, RobustMixError):
    """A data folder or file is missing or does not follow the expected layout."""


class UnsafePickleError(DataLayoutError, pickle.UnpicklingError):
    """A CIFAR file asks to rebuild something other than containers and arrays (it could run code)."""


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
            ("__builtin__", "bytes"),  # an empty array's buffer, pickled with protocol 2
            ("builtins", "bytes"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to load {module}.{name}: CIFAR batch files only hold arrays, lists and dicts"
        )


def _safe_unpickle(path: Path) -> dict[str, Any]:
    """The dict pickled in a CIFAR file; every failure is one :class:`DataLayoutError` naming the file."""
    try:
        with open(path, "rb") as fh:
            raw = _SafeUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"CIFAR file '{path}': {exc}") from None
    except OSError as exc:
        raise DataLayoutError(f"cannot read CIFAR file '{path}': {exc.strerror or exc}") from None
    except Exception as exc:  # truncated or foreign bytes: pickle raises many kinds; none is ours to pass on
        reason = str(exc) or type(exc).__name__
        raise DataLayoutError(
            f"CIFAR file '{path}' is not a readable python batch ({reason}); re-extract the official archive"
        ) from None
    if not isinstance(raw, dict):
        raise DataLayoutError(
            f"{path}: expected a pickled dict (CIFAR python batch), got {type(raw).__name__}"
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in raw.items()}


def cifar_test_file(dataset: str) -> str:
    """The test-split file that marks a CIFAR python folder (``test_batch`` / ``test``)."""
    return _CIFAR_FILES[dataset][False][0]


def find_cifar_folder(root: str | os.PathLike[str], dataset: str) -> Path:
    """The CIFAR python folder for ``dataset`` under ``root`` (or ``root`` itself if it is one)."""
    if dataset not in CIFAR_FOLDERS:
        raise DataLayoutError(f"dataset must be one of {sorted(CIFAR_FOLDERS)}, got {dataset!r}")
    root = Path(root)
    for candidate in (root / CIFAR_FOLDERS[dataset], root):
        if (candidate / cifar_test_file(dataset)).is_file():
            return candidate
    raise DataLayoutError(
        f"no {dataset} python folder under '{root}': put {CIFAR_ARCHIVE[dataset]} at '{root / CIFAR_FOLDERS[dataset]}'"
    )


def _pixels(data: np.ndarray, path: Path) -> np.ndarray:
    """A batch's ``data`` as uint8, refusing what a cast would silently change: floats (0..1 values
    would all become 0) and integers outside 0..255 (they would wrap)."""
    if data.dtype == np.uint8:
        return data
    if not np.issubdtype(data.dtype, np.integer) or (data.size and (data.min() < 0 or data.max() > 255)):
        raise DataLayoutError(
            f"{path}: 'data' holds {data.dtype} values"
            + (
                f" in [{data.min()}, {data.max()}]"
                if data.size and np.issubdtype(data.dtype, np.number)
                else ""
            )
            + ", expected uint8 pixels 0..255 as in the official batches; re-extract the archive or write "
            "the set with robust_mix.cifar.write_cifar"
        )
    return data.astype(np.uint8)


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
            data = _pixels(np.asarray(batch["data"]), path)
            lab = np.asarray(batch[_CIFAR_LABEL_KEY[dataset]], dtype=np.int64)
        except KeyError as exc:
            raise DataLayoutError(f"{path}: missing key {exc}; not a {dataset} python batch") from None
        except (TypeError, ValueError) as exc:
            raise DataLayoutError(f"{path}: 'data' or labels are not numbers ({exc})") from None
        if data.ndim != 2 or data.shape[1] != 3072 or lab.ndim != 1 or data.shape[0] != lab.shape[0]:
            raise DataLayoutError(
                f"{path}: data has shape {data.shape}, expected (N, 3072) matching {lab.shape} labels"
            )
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    if sum(len(lab) for lab in labels) == 0:
        raise DataLayoutError(
            f"'{folder}' holds 0 {dataset} {'train' if train else 'test'} images; re-extract the official archive"
        )
    meta_file, meta_key = _CIFAR_META[dataset]
    n_classes = CIFAR_CLASSES[dataset]
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
    """Write images in the official CIFAR python layout: the official file names, and in each file
    the pickled dict with the official keys, so this project's reader and any code that unpickles
    the batches as the CIFAR page describes read them.

    ``torchvision.datasets.CIFAR10/100(root, download=False)`` refuses such a folder ("Dataset not
    found or corrupted"): it checks every file of the official release against that release's MD5,
    which files of other images cannot match (and a folder of one split lacks the other split's
    files). With that check bypassed (``torchvision.datasets.cifar.check_integrity`` replaced by a
    function returning True) torchvision reads them bit-exact: the same images, labels and class
    names (tested).

    For the CIFAR-10 train split the images are spread over the five ``data_batch_*`` files; the meta
    file (``batches.meta`` / ``meta``) holds ``class_names`` (default ``class_<i>``). Every file is
    written atomically (temporary file + rename) and the same call writes byte-identical files.
    """
    from robust_mix.files import atomic_write

    folder = Path(folder)
    if dataset not in CIFAR_FOLDERS:
        raise DataLayoutError(f"dataset must be one of {sorted(CIFAR_FOLDERS)}, got {dataset!r}")
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise DataLayoutError(f"CIFAR images must be uint8 (N, 32, 32, 3), got {images.shape}")
    folder.mkdir(parents=True, exist_ok=True)
    data = images.transpose(0, 3, 1, 2).reshape(len(images), 3 * 32 * 32)
    files = _CIFAR_FILES[dataset][train]
    # str keys and str class names, as the published files read with encoding="latin1" (what
    # torchvision.datasets.CIFAR10/100 and our reader do); bytes keys would break torchvision.
    for name, idx in zip(files, np.array_split(np.arange(len(images)), len(files))):
        batch = {
            "batch_label": name,
            "data": data[idx],
            _CIFAR_LABEL_KEY[dataset]: [int(v) for v in np.asarray(labels)[idx]],
        }
        atomic_write(folder / name, pickle.dumps(batch, protocol=2))
    n_classes = CIFAR_CLASSES[dataset]
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(n_classes)]
    meta_file, meta_key = _CIFAR_META[dataset]
    atomic_write(folder / meta_file, pickle.dumps({meta_key: [str(n) for n in names]}, protocol=2))
    return folder
