"""``robust-eval data check``: every layout this package reads, validated under a data root."""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robust_eval.data.corruptions import corruption_folder, expected_corruption_folder, severity_folders
from robust_eval.data.images import imagefolder_split, list_image_files, list_imagefolder
from robust_eval.data.ood import OOD_SET_PLACES, list_ood_sets
from robust_eval.data.perturbations import list_perturbation_videos, perturbation_folder, read_video
from robust_mix.cifar import (
    CIFAR_CLASSES,
    CIFAR_FOLDERS,
    CIFAR_TITLES,
    DataLayoutError,
    find_cifar_folder,
    load_cifar,
)

__all__ = ["LayoutEntry", "check_layouts"]


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
    n_classes = CIFAR_CLASSES[dataset]
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
    for ds, title in CIFAR_TITLES.items():
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
    entries = []
    for name, places in OOD_SET_PLACES.items():
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
