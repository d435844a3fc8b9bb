"""Readers of the ImageNet evaluation sets beyond the validation split, in their published layouts:
ImageNet-V2 matched-frequency (class-index folders), ImageNet-Sketch and Stylized-ImageNet (wnid
folders, read with :func:`robust_eval.data.images.list_imagefolder`) and the ReaL labels
(``real.json``). Readers only: the metric (ReaL top-1 over the images with a label) lives in the
suites, the places in :data:`robust_eval.data.layouts.LAYOUTS`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from robust_mix.cifar import DataLayoutError
from robust_mix.files import list_images

__all__ = [
    "IMAGENET_CLASSES",
    "IMAGENET_VAL_IMAGES",
    "list_class_index_folders",
    "load_real_labels",
    "real_labels_of",
]

#: Classes of ImageNet-1k (class index = position of the wnid in sorted order).
IMAGENET_CLASSES = 1000
#: Images of the ILSVRC-2012 validation split (``ILSVRC2012_val_00000001.JPEG`` .. ``_00050000``).
IMAGENET_VAL_IMAGES = 50_000
_VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})")


def list_class_index_folders(
    root: str | os.PathLike[str], classes: int = IMAGENET_CLASSES
) -> tuple[list[str], np.ndarray, int]:
    """Image paths, int64 labels and the number of class folders of a tree whose folders are named
    by class INDEX (ImageNet-V2's ``<0..999>/<hash>.jpeg``): label = int(folder name), never the
    folder's rank in sorted order ("10" sorts before "2")."""
    root = Path(root)
    if not root.is_dir():
        raise DataLayoutError(
            f"'{root}' does not exist; expected root/<class index 0..{classes - 1}>/<images>"
        )
    folders = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    bad = sorted(d.name for d in folders if not d.name.isdigit() or int(d.name) >= classes)
    if bad:
        raise DataLayoutError(
            f"'{root}': folders {bad[:3]} are not class indices 0..{classes - 1} (ImageNet-V2 names its "
            "folders by class index)"
        )
    paths: list[str] = []
    labels: list[int] = []
    for folder in sorted(folders, key=lambda d: int(d.name)):
        found = list_images(folder)
        paths.extend(str(f) for f in found)
        labels.extend([int(folder.name)] * len(found))
    if not paths:
        raise DataLayoutError(f"'{root}' has no image files in class-index folders")
    return paths, np.asarray(labels, dtype=np.int64), len(folders)


def load_real_labels(path: str | os.PathLike[str], classes: int = IMAGENET_CLASSES) -> list[list[int]]:
    """The ReaL labels (Beyer et al. 2020, ``real.json``): one list of class indices per validation
    image, in file-name order (entry i is ``ILSVRC2012_val_{i+1:08d}``); an empty list means the
    raters kept no label for that image."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataLayoutError(f"'{path}' is not readable JSON ({exc}); expected ReaL's real.json") from None
    ok = isinstance(data, list) and all(
        isinstance(v, list)
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < classes for c in v)
        for v in data
    )
    if not ok:
        raise DataLayoutError(f"'{path}': expected a JSON list of lists of class indices 0..{classes - 1}")
    if len(data) != IMAGENET_VAL_IMAGES:
        raise DataLayoutError(
            f"'{path}' has {len(data)} entries, expected {IMAGENET_VAL_IMAGES} (one per validation image)"
        )
    return data


def real_labels_of(paths: list[str], real: list[list[int]]) -> list[list[int]]:
    """The ReaL label list of each validation image file, found by its name
    (``ILSVRC2012_val_00000042.JPEG`` -> ``real[41]``)."""
    out = []
    for p in paths:
        m = _VAL_NAME.search(Path(p).name)
        if m is None or not 1 <= int(m.group(1)) <= len(real):
            raise DataLayoutError(
                f"'{p}' is not named ILSVRC2012_val_<8 digits> within 1..{len(real)}: ReaL labels are "
                "matched to validation images by file name"
            )
        out.append(real[int(m.group(1)) - 1])
    return out
