"""The one table of data layouts: where each data set goes under the data root, what goes there, how
it is validated and which function reads it.

Every record of :data:`LAYOUTS` is used three ways: the readers' location functions
(:func:`corruption_folder`, :func:`perturbation_folder`, :func:`find_ood_sets`, the suites'
``clean_source``) find a set with :meth:`Layout.find`; a set that is not there is reported with
:meth:`Layout.hint` ("put X at Y", the only place those texts are written); and ``robust-eval data
check`` calls :meth:`Layout.check` on every record (:func:`check_layouts`). Adding a layout is one
record here and one reader in its module.

Besides the fixed places, a model trained on an image folder finds the -C / -P sets that
``robust-eval make-c`` / ``make-p`` wrote from that folder by their manifest (:func:`generated_set`), and
a checkpoint's recorded training data folder is used when the default data root lacks its data set
(:func:`fallback_data_dir`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from robust_eval.constants import (
    ALL_CORRUPTIONS,
    BENCHMARK_CORRUPTIONS,
    CIFAR_CBAR_CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    IMAGENET_CBAR_CORRUPTIONS,
    NOISE_PERTURBATIONS,
    P_DIFFICULTIES,
    TEST_PERTURBATIONS,
    VALIDATION_PERTURBATIONS,
)
from robust_eval.data.corruptions import (
    corruption_severities,
    generator_manifest,
    load_corruption_cell,
    severity_folders,
)
from robust_eval.data.imagenet_sets import IMAGENET_CLASSES, list_class_index_folders, load_real_labels
from robust_eval.data.images import (
    EVAL_SPLITS,
    TRAIN_SPLIT,
    imagefolder_split,
    list_image_files,
    list_imagefolder,
)
from robust_eval.data.ood import REAL_OOD_SETS, OODSet, load_svhn, ood_source, other_cifar
from robust_eval.data.perturbations import list_perturbation_videos, load_perturbation, read_video
from robust_mix.cifar import (
    CIFAR_ARCHIVE,
    CIFAR_CLASSES,
    CIFAR_FOLDERS,
    CIFAR_TITLES,
    DataLayoutError,
    cifar_test_file,
    load_cifar,
)

__all__ = [
    "LAYOUTS",
    "OOD_SET_PLACES",
    "Layout",
    "LayoutEntry",
    "check_layouts",
    "clean_layout",
    "clean_root",
    "corruption_folder",
    "corruption_layout",
    "expected_corruption_folder",
    "fallback_data_dir",
    "find_ood_sets",
    "generated_hint",
    "generated_set",
    "list_ood_sets",
    "perturbation_folder",
    "perturbation_layout",
    "recorded_data_dir",
]

#: A validator's answer for a set that is there: ("present" | "partial" | "malformed", detail).
Verdict = tuple[str, str]


@dataclass
class LayoutEntry:
    """One line of ``robust-eval data check``: a data set, where it is expected, and its state."""

    name: str
    path: str
    status: str  # "present" | "partial" | "missing" | "malformed"
    detail: str


@dataclass(frozen=True)
class Layout:
    """One data layout: a name, its places under the data root (first existing wins), what goes there
    (for "put X at Y"), a validator and the function that reads it.

    ``marker``: a file that must exist inside a place for it to count (CIFAR: ``test_batch``);
    ``file``: the place is a file (SVHN's ``.mat``), not a folder.
    """

    name: str
    places: tuple[str, ...]
    what: str
    validate: Callable[[Path], Verdict] = field(compare=False)
    reader: Callable[..., Any] = field(compare=False)
    marker: str | None = None
    file: bool = False

    def find(self, root: str | os.PathLike[str]) -> Path | None:
        """The first place under ``root`` that holds this layout, or None."""
        for rel in self.places:
            path = Path(root) / rel
            if self.marker is not None:
                if (path / self.marker).is_file():
                    return path
            elif path.is_file() if self.file else path.is_dir():
                return path
        return None

    def expected(self, root: str | os.PathLike[str]) -> Path:
        """Where the set should go (the first place), for messages."""
        return Path(root) / self.places[0]

    def hint(self, root: str | os.PathLike[str]) -> str:
        """``put <what> at '<place>'``."""
        return f"put {self.what} at '{self.expected(root)}'"

    def check(self, root: str | os.PathLike[str]) -> LayoutEntry:
        """The ``data check`` line: missing (with the hint), or the validator's verdict; never raises
        for bad data (a reader's error becomes "malformed" with its reason)."""
        found = self.find(root)
        if found is None:
            return LayoutEntry(self.name, str(self.expected(root)), "missing", self.hint(root))
        try:
            status, detail = self.validate(found)
        except (DataLayoutError, OSError, ValueError) as exc:
            status, detail = "malformed", str(exc)
        return LayoutEntry(self.name, str(found), status, detail)


# ------------------------------------------------------------------------------------------------
# validators (found path -> verdict)
# ------------------------------------------------------------------------------------------------


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a .npy file without reading its data."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return tuple(arr.shape), arr.dtype


def _members(
    names: Iterable[str], probe: Callable[[str], str | None], required: Sequence[str], unit: str
) -> Verdict:
    """Verdict over a set's members: ``probe(name)`` is None when the member is absent, "" when it is
    fine, else the problem. Any problem: malformed; a required member absent: partial; else present."""
    problems, found, missing = [], [], []
    for name in names:
        problem = probe(name)
        if problem is None:
            if name in required:
                missing.append(name)
        elif problem:
            problems.append(problem)
        else:
            found.append(name)
    if problems:
        return "malformed", "; ".join(problems)
    if missing:
        status = "partial" if found else "missing"
        return status, f"{len(found)} {unit}; missing: {', '.join(missing)}"
    return "present", f"{len(found)} {unit}"


def _validate_cifar(folder: Path, dataset: str) -> Verdict:
    images, labels, _ = load_cifar(folder, dataset)
    k = CIFAR_CLASSES[dataset]
    if labels.min() < 0 or labels.max() >= k:
        return "malformed", f"labels outside 0..{k - 1}"
    return "present", f"test split: {len(images)} images"


def _member_header(folder: Path, name: str) -> tuple[tuple[int, ...], np.dtype] | str | None:
    """``<name>.npy``'s (shape, dtype); None when absent, the problem when unreadable."""
    path = folder / f"{name}.npy"
    if not path.is_file():
        return None
    try:
        return _npy_header(path)
    except (OSError, ValueError) as exc:
        return f"{path.name}: unreadable ({exc})"


def _npy_c_member(folder: Path, n_labels: int | None, k: int, name: str) -> str | None:
    header = _member_header(folder, name)
    if not isinstance(header, tuple):
        return header
    path, (shape, dtype) = folder / f"{name}.npy", header
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3 or shape[0] % k:
        return f"{path.name}: {dtype} {shape}, expected uint8 ({k}*N, H, W, 3)"
    if shape[0] == 0:
        return f"{path.name}: 0 rows (an empty array), expected {k}*N rows with N >= 1"
    if n_labels is not None and shape[0] != n_labels:
        return f"{path.name}: {shape[0]} rows but labels.npy has {n_labels}"
    return ""


def _validate_npy_c(folder: Path, members: Sequence[str], optional: Sequence[str]) -> Verdict:
    """A CIFAR-layout -C / -C-bar folder: labels.npy and ``<corruption>.npy`` with matching rows."""
    k = len(corruption_severities(folder))
    problems: list[str] = []
    n_labels: int | None = None
    try:
        shape, dtype = _npy_header(folder / "labels.npy")
        if len(shape) != 1 or not np.issubdtype(dtype, np.integer) or shape[0] == 0:
            problems.append(f"labels.npy is {dtype} {shape}, expected integer ({k}*N,) with N >= 1")
        else:
            n_labels = shape[0]
    except (OSError, ValueError) as exc:
        problems.append(f"labels.npy unreadable or missing ({exc.__class__.__name__})")
    status, detail = _members(
        (*members, *optional), partial(_npy_c_member, folder, n_labels, k), members, "arrays"
    )
    if problems:
        return "malformed", "; ".join([*problems, *([detail] if status == "malformed" else [])])
    return status, detail


def _npy_p_member(folder: Path, name: str) -> str | None:
    header = _member_header(folder, name)
    if not isinstance(header, tuple):
        return header
    path, (shape, dtype) = folder / f"{name}.npy", header
    if dtype != np.uint8 or len(shape) != 5 or shape[-1] != 3 or shape[1] < 2:
        return f"{path.name}: {dtype} {shape}, expected uint8 (N, T, H, W, 3)"
    if shape[0] == 0:
        return f"{path.name}: 0 sequences (an empty array), expected N >= 1"
    return ""


def _validate_npy_p(folder: Path, members: Sequence[str]) -> Verdict:
    return _members(members, partial(_npy_p_member, folder), members, "arrays")


def _validate_tree(folder: Path, classes: int | None = None) -> Verdict:
    files, _, names = list_imagefolder(folder)
    if classes is not None and len(names) != classes:
        return "malformed", f"{len(names)} class folders, expected {classes}"
    return "present", f"{len(names)} classes, {len(files)} images"


def _validate_split_tree(root: Path, classes: int | None = None) -> Verdict:
    """A data set root holding split folders: its evaluation split (:func:`imagefolder_split`)."""
    split = imagefolder_split(root)
    status, detail = _validate_tree(split, classes)
    return status, f"{split.name}/: {detail}" if split != root else detail


def _validate_image_split(folder: Path) -> Verdict:
    """An image-folder split found under the data root; ``train/`` alone is only partial (robust-eval
    evaluates a held-out split; see :func:`imagefolder_split`)."""
    status, detail = _validate_tree(folder)
    if folder.name != TRAIN_SPLIT or status != "present":
        return status, f"{folder.name}/: {detail}"
    return "partial", (
        f"{TRAIN_SPLIT}/ only ({detail}): evaluation needs a held-out {'/, '.join(EVAL_SPLITS)}/ split "
        f"(or --split {TRAIN_SPLIT}, which measures the training images)"
    )


def _tree_c_member(folder: Path, name: str) -> str | None:
    if not (folder / name).is_dir():
        return None
    try:
        for sev in severity_folders(folder / name):
            list_imagefolder(sev)
    except DataLayoutError as exc:
        return str(exc)
    return ""


def _validate_tree_c(folder: Path, members: Sequence[str]) -> Verdict:
    return _members(members, partial(_tree_c_member, folder), members, "corruptions")


def _video_member(folder: Path, name: str) -> str | None:
    videos = list_perturbation_videos(folder, name)
    if not videos:
        return None
    try:
        read_video(videos[0])
    except DataLayoutError as exc:
        return str(exc)
    return ""


def _validate_videos(folder: Path, members: Sequence[str]) -> Verdict:
    """ImageNet-P (or a ``make-p`` image-folder set): one readable video per perturbation checked, and
    the noise difficulty folders present."""
    status, detail = _members(members, partial(_video_member, folder), members, "perturbations")
    levels = [
        f"{p}_{d}"
        for p in sorted(NOISE_PERTURBATIONS)
        for d in P_DIFFICULTIES[1:]
        if list_perturbation_videos(folder, f"{p}_{d}")
    ]
    return (
        status,
        f"{detail}; difficulty folders: {', '.join(levels) if levels else 'none (difficulty 1 only)'}",
    )


def _validate_image_files(folder: Path) -> Verdict:
    files = list_image_files(folder)
    return ("present", f"{len(files)} images") if files else ("malformed", "no image files")


def _validate_npy_images(path: Path) -> Verdict:
    shape, dtype = _npy_header(path)
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
        return "malformed", f"{dtype} {shape}, expected uint8 (N, H, W, 3)"
    if shape[0] == 0:
        return "malformed", "0 images (an empty array)"
    return "present", f"{shape[0]} images {shape[1]}x{shape[2]}"


def _validate_svhn(path: Path) -> Verdict:
    """SVHN's .mat header (shapes only, nothing loaded): X (32, 32, 3, N) and y (N, 1)."""
    from scipy.io import whosmat

    try:
        shapes = {name: shape for name, shape, _ in whosmat(str(path))}
    except (OSError, ValueError) as exc:
        return "malformed", f"unreadable .mat file ({exc})"
    x, y = shapes.get("X"), shapes.get("y")
    if x is None or y is None or len(x) != 4 or tuple(x[:3]) != (32, 32, 3) or y[0] != x[3]:
        return "malformed", f"expected X (32, 32, 3, N) and y (N, 1), got {shapes}"
    if x[3] == 0:
        return "malformed", "0 images"
    return "present", f"{x[3]} images 32x32"


def _validate_class_index_tree(folder: Path) -> Verdict:
    """ImageNet-V2 matched-frequency: folders 0..999 named by class index."""
    paths, _, n = list_class_index_folders(folder)
    if n != IMAGENET_CLASSES:
        return "malformed", f"{n} class-index folders, expected {IMAGENET_CLASSES}"
    return "present", f"{n} classes, {len(paths)} images"


def _validate_real(path: Path) -> Verdict:
    """ReaL's real.json: 50,000 label lists (an empty list: the image has no ReaL label)."""
    real = load_real_labels(path)
    labelled = sum(1 for v in real if v)
    return "present", f"{len(real)} images, {labelled} with a ReaL label"


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------

_P_ALL = (*TEST_PERTURBATIONS, *VALIDATION_PERTURBATIONS)


def _cifar_layouts(dataset: str) -> dict[str, Layout]:
    title = CIFAR_TITLES[dataset]
    c_what = "<corruption>.npy (uint8 [5N, 32, 32, 3]) + labels.npy"
    return {
        dataset: Layout(
            dataset,
            (CIFAR_FOLDERS[dataset], "."),
            CIFAR_ARCHIVE[dataset],
            partial(_validate_cifar, dataset=dataset),
            load_cifar,
            marker=cifar_test_file(dataset),
        ),
        f"{dataset}-c": Layout(
            f"{title}-C",
            (f"{title}-C",),
            c_what,
            partial(_validate_npy_c, members=BENCHMARK_CORRUPTIONS, optional=EXTRA_CORRUPTIONS),
            load_corruption_cell,
        ),
        f"{dataset}-c-bar": Layout(
            f"{title}-C-bar",
            (f"{title}-C-bar", f"{title}-C-Bar", f"{title}-C-BAR"),
            c_what,
            partial(_validate_npy_c, members=CIFAR_CBAR_CORRUPTIONS, optional=()),
            load_corruption_cell,
        ),
        f"{dataset}-p": Layout(
            f"{title}-P",
            (f"{title}-P",),
            "<perturbation>.npy (uint8 [N, T, 32, 32, 3])",
            partial(_validate_npy_p, members=_P_ALL),
            load_perturbation,
        ),
    }


def _tree_layout(name: str, what: str, classes: int) -> Layout:
    return Layout(name, (name,), what, partial(_validate_tree, classes=classes), list_imagefolder)


#: Every layout robust-eval reads, by key (``data check`` prints them in this order).
LAYOUTS: dict[str, Layout] = {
    **_cifar_layouts("cifar10"),
    **_cifar_layouts("cifar100"),
    "imagefolder": Layout(
        "imagefolder (--dataset imagefolder)",
        (*EVAL_SPLITS, TRAIN_SPLIT),
        "<class>/<image files> folders of a held-out split (or val/, validation/)",
        _validate_image_split,
        list_imagefolder,
    ),
    "imagenet": Layout(
        "imagenet (val)",
        ("imagenet",),
        "the ILSVRC-2012 validation set as val/<wnid>/*.JPEG (1000 class folders)",
        partial(_validate_split_tree, classes=1000),
        list_imagefolder,
    ),
    "imagenet-c": Layout(
        "ImageNet-C",
        ("ImageNet-C",),
        "<corruption>/<1..5>/<wnid>/*.JPEG",
        partial(_validate_tree_c, members=ALL_CORRUPTIONS),
        severity_folders,
    ),
    "imagenet-c-bar": Layout(
        "ImageNet-C-bar",
        ("ImageNet-C-bar", "ImageNet-C-Bar"),
        "<corruption>/<parameter %.2f>/<wnid>/*.JPEG",
        partial(_validate_tree_c, members=IMAGENET_CBAR_CORRUPTIONS),
        severity_folders,
    ),
    "imagenet-p": Layout(
        "ImageNet-P",
        ("ImageNet-P",),
        "<perturbation>/<wnid>/<name>.mp4 videos",
        partial(_validate_videos, members=_P_ALL),
        load_perturbation,
    ),
    "imagenet-a": _tree_layout("imagenet-a", "ImageNet-A (<wnid>/*.jpg, 200 classes)", 200),
    "imagenet-r": _tree_layout("imagenet-r", "ImageNet-R (<wnid>/*.jpg, 200 classes)", 200),
    "imagenet-o": _tree_layout("imagenet-o", "ImageNet-O (<wnid>/*.jpg, 200 classes)", 200),
    "imagenet-real": Layout(
        "imagenet-real",
        ("imagenet/real.json", "imagenet-real/real.json", "real.json"),
        "ReaL's real.json (google-research/reassessed-imagenet; 50,000 label lists in validation file order)",
        _validate_real,
        load_real_labels,
        file=True,
    ),
    "imagenet-v2-matched-frequency": Layout(
        "imagenet-v2-matched-frequency",
        (
            "imagenetv2-matched-frequency-format-val",
            "imagenet-v2-matched-frequency",
            "imagenetv2-matched-frequency",
        ),
        "ImageNet-V2 matched-frequency as released (<class index 0..999>/*.jpeg)",
        _validate_class_index_tree,
        list_class_index_folders,
    ),
    "imagenet-sketch": Layout(
        "imagenet-sketch",
        ("imagenet-sketch", "ImageNet-Sketch", "sketch"),
        "ImageNet-Sketch as released (sketch/<wnid>/*.JPEG, 1000 class folders)",
        partial(_validate_tree, classes=IMAGENET_CLASSES),
        list_imagefolder,
    ),
    "stylized-imagenet": Layout(
        "stylized-imagenet",
        ("stylized-imagenet", "Stylized-ImageNet", "stylized_imagenet"),
        "Stylized-ImageNet's val/<wnid>/*.JPEG (1000 class folders; or the wnid folders directly)",
        partial(_validate_split_tree, classes=IMAGENET_CLASSES),
        list_imagefolder,
    ),
    "ood:textures": Layout(
        "ood: Textures (DTD)",
        ("dtd/images", "ood/dtd/images", "ood/textures"),
        "the DTD archive's images/<class>/*.jpg",
        _validate_image_files,
        ood_source,
    ),
    "ood:svhn": Layout(
        "ood: SVHN",
        ("svhn/test_32x32.mat", "ood/svhn/test_32x32.mat"),
        "the official test split test_32x32.mat",
        _validate_svhn,
        load_svhn,
        file=True,
    ),
    "ood:places365": Layout(
        "ood: Places365",
        ("places365", "ood/places365"),
        "an image tree (e.g. the test images)",
        _validate_image_files,
        ood_source,
    ),
    "ood:lsun": Layout(
        "ood: LSUN",
        ("LSUN", "ood/LSUN", "ood/lsun"),
        "an image tree of LSUN images",
        _validate_image_files,
        ood_source,
    ),
}


#: Where each real OOD set of the protocol is looked for, relative to the data root, first match wins.
OOD_SET_PLACES: dict[str, tuple[str, ...]] = {n: LAYOUTS[f"ood:{n}"].places for n in REAL_OOD_SETS}


def clean_layout(dataset: str) -> Layout:
    """The clean test set's layout of ``dataset`` (cifar10, cifar100, imagenet; anything else is an
    image folder)."""
    return LAYOUTS[dataset] if dataset in ("cifar10", "cifar100", "imagenet") else LAYOUTS["imagefolder"]


def clean_root(root: str | os.PathLike[str], dataset: str) -> Path | None:
    """The folder under ``root`` that holds the clean data of ``dataset``: the CIFAR python folder,
    ``<root>/imagenet`` (its split folders), or ``root`` itself for an image folder; None when absent."""
    if dataset in ("cifar10", "cifar100", "imagenet"):
        return LAYOUTS[dataset].find(root)
    return Path(root) if Path(root).is_dir() else None


def corruption_layout(dataset: str, bar: bool = False) -> Layout | None:
    """The published -C (or -C-bar) layout of ``dataset``; None for an image folder (see
    :func:`generated_set`)."""
    if dataset not in ("cifar10", "cifar100", "imagenet"):
        return None
    return LAYOUTS[f"{dataset}-c-bar" if bar else f"{dataset}-c"]


def perturbation_layout(dataset: str) -> Layout | None:
    """The published -P layout of ``dataset``; None for an image folder (see :func:`generated_set`)."""
    return LAYOUTS[f"{dataset}-p"] if dataset in ("cifar10", "cifar100", "imagenet") else None


# ------------------------------------------------------------------------------------------------
# location functions the readers and suites use
# ------------------------------------------------------------------------------------------------


def _made_from_split(
    root: str | os.PathLike[str], dataset: str, family: str, split: str | None
) -> Path | None:
    """An image folder's ``make-c`` / ``make-p`` set (:func:`generated_set` of its evaluation split)."""
    if clean_layout(dataset) is not LAYOUTS["imagefolder"] or not Path(root).is_dir():
        return None
    try:
        source = imagefolder_split(root, split)
    except DataLayoutError:
        return None
    return generated_set(root, source, family)


def corruption_folder(
    root: str | os.PathLike[str], dataset: str, bar: bool = False, split: str | None = None
) -> Path | None:
    """Folder of the -C (or -C-bar) set for ``dataset`` under ``root``, or None if absent. For an image
    folder: the set ``make-c`` wrote from its evaluation split (``split``, default as
    :func:`imagefolder_split`), found by its manifest (:func:`generated_set`)."""
    layout = corruption_layout(dataset, bar)
    if layout is not None:
        return layout.find(root)
    return None if bar else _made_from_split(root, dataset, "C", split)


def expected_corruption_folder(root: str | os.PathLike[str], dataset: str, bar: bool = False) -> Path:
    """Where :func:`corruption_folder` looks first (for "put X at Y" messages)."""
    layout = corruption_layout(dataset, bar)
    return layout.expected(root) if layout is not None else Path(root) / f"{dataset}-C{'-bar' if bar else ''}"


def perturbation_folder(root: str | os.PathLike[str], dataset: str, split: str | None = None) -> Path | None:
    """The CIFAR-10/100-P (``.npy``) or ImageNet-P (videos) folder under ``root``, or None; for an image
    folder the set ``make-p`` wrote from its evaluation split (as :func:`corruption_folder`)."""
    layout = perturbation_layout(dataset)
    return layout.find(root) if layout is not None else _made_from_split(root, dataset, "P", split)


def generated_hint(root: str | os.PathLike[str], dataset: str, family: str, split: str | None = None) -> str:
    """How to make the -C / -P set of an image folder, for "no data" messages."""
    try:
        source: Path | str = imagefolder_split(root, split)
    except DataLayoutError:
        source = "<image folder>"
    kind, command = ("corruption", "make-c") if family == "C" else ("perturbation", "make-p")
    return (
        f"no {kind} benchmark exists for dataset {dataset!r} yet: no -{family} set made from '{source}' is "
        f"in, under or beside '{root}'; run `robust-eval {command} {source} OUT` with OUT inside or beside "
        "the data folder (its manifest names the source, which is how it is found)"
    )


def _manifest_candidates(root: Path) -> list[Path]:
    """Folders a ``make-c`` / ``make-p`` output may sit in, near a data root: the root, its
    sub-folders and theirs, and the root's siblings (sorted, so the first match is stable)."""

    def dirs(folder: Path) -> list[Path]:
        try:
            return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        except OSError:
            return []

    children = dirs(root)
    siblings = [d for d in dirs(root.parent) if d != root] if root.parent != root else []
    return [root, *children, *(g for c in children for g in dirs(c)), *siblings]


def generated_set(root: str | os.PathLike[str], source: str | os.PathLike[str], family: str) -> Path | None:
    """The -C (``family="C"``) or -P (``"P"``) set that ``robust-eval make-c`` / ``make-p`` wrote from
    the image folder ``source``, looked for near ``root`` (see :func:`_manifest_candidates`): the
    folder whose ``manifest.json`` was written by the generator, names ``source`` (resolved) as its
    source and holds the image-folder layout. None when there is none."""
    want = str(Path(source).resolve())
    layouts = {"C": "folder", "P": "mp4"}
    for folder in _manifest_candidates(Path(root)):
        manifest = generator_manifest(folder)
        src = manifest.get("source")
        if (
            isinstance(src, dict)
            and src.get("path") == want
            and manifest.get("layout") == layouts[family]
            and str(manifest.get("benchmark", "")).endswith(f"-{family}")
        ):
            return folder
    return None


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


def find_ood_sets(root: str | os.PathLike[str], dataset: str) -> tuple[list[OODSet], list[str]]:
    """The real OOD sets present under ``root`` for a ``dataset`` model, and the protocol's real sets
    that are missing (by name, "cifar" standing for the other CIFAR).

    Protocol sets come first, in the protocol's order (their places: :data:`LAYOUTS` ``ood:<name>``);
    then any other ``<root>/ood/<name>.npy`` array or ``<root>/ood/<name>/`` image tree
    (:func:`list_ood_sets`) whose name is not a protocol set. The other CIFAR counts only for CIFAR
    models.
    """
    root = Path(root)
    found: list[OODSet] = []
    missing: list[str] = []
    for name in REAL_OOD_SETS:
        path = LAYOUTS[f"ood:{name}"].find(root)
        if path is None:
            missing.append(name)
        else:
            found.append(OODSet(name, path, "svhn" if name == "svhn" else "images"))
    other = other_cifar(dataset)
    if other is not None:
        path = LAYOUTS[other].find(root)
        if path is None:
            missing.append("cifar")
        else:
            found.append(OODSet(other, path, "cifar"))
    for name, path in list_ood_sets(root).items():
        if name in REAL_OOD_SETS or name in {"dtd", "svhn"}:
            continue  # a protocol set's own folder (used above when it holds the published layout)
        found.append(OODSet(name, path, "npy" if path.suffix == ".npy" else "images"))
    return found, missing


def recorded_data_dir(metadata: Mapping[str, Any]) -> Path | None:
    """The training data folder a checkpoint records (``timm train --data-dir``), or None."""
    recorded = metadata.get("train_data_dir") or (metadata.get("train_args") or {}).get("data_dir")
    return Path(str(recorded)) if recorded else None


def fallback_data_dir(default: Path, metadata: Mapping[str, Any]) -> tuple[Path, str | None]:
    """The data root to use when none was given: ``default`` when it holds the checkpoint's clean
    test set, else the training data folder the checkpoint records when that one holds it.

    Returns:
        ``(root, note)``: ``note`` is the one line to show when the recorded folder is used, else None.
    """
    layout = clean_layout(str(metadata.get("dataset")))
    recorded = recorded_data_dir(metadata)
    if layout.find(default) is not None or recorded is None or layout.find(recorded) is None:
        return default, None
    note = (
        f"data: '{default}' has no {layout.name} set; using the data folder recorded in the "
        f"checkpoint, '{recorded}' (pass --data-dir to choose another)"
    )
    return recorded, note


# ------------------------------------------------------------------------------------------------
# robust-eval data check
# ------------------------------------------------------------------------------------------------


def _check_extra_ood(name: str, path: Path) -> LayoutEntry:
    """A ``<root>/ood/<name>`` set beyond the protocol's (an array or an image tree)."""
    label = f"ood/{name}"
    try:
        status, detail = _validate_npy_images(path) if path.suffix == ".npy" else _validate_image_files(path)
    except (OSError, ValueError) as exc:
        status, detail = "malformed", f"unreadable ({exc})"
    return LayoutEntry(label, str(path), status, detail)


def check_layouts(root: str | os.PathLike[str]) -> list[LayoutEntry]:
    """Validate every layout this package reads under the data root (shapes, dtypes, label files,
    file counts; a set with 0 rows or 0 images is malformed). Never raises for bad data: each problem
    becomes a "malformed" entry with its reason."""
    root = Path(root)
    entries = [layout.check(root) for layout in LAYOUTS.values()]
    have_cifar = all(LAYOUTS[d].find(root) is not None for d in CIFAR_FOLDERS)
    entries.append(
        LayoutEntry(
            "ood: the other CIFAR",
            str(root),
            "present" if have_cifar else "partial",
            "CIFAR-100's test set is OOD for CIFAR-10 models and vice versa, read from the cifar10 / "
            "cifar100 folders above",
        )
    )
    entries += [_check_extra_ood(name, path) for name, path in list_ood_sets(root).items()]
    if not (root / "ood").is_dir():
        entries.append(
            LayoutEntry("ood", str(root / "ood"), "missing", "put <name>.npy or <name>/ image trees there")
        )
    return entries
