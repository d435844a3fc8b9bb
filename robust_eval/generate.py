"""Regenerate -C / -P benchmark sets from any clean data set (library; the ``make-c`` / ``make-p``
commands are in :mod:`robust_eval.generate_cli`).

Sources (SRC): a CIFAR python folder (``cifar-10-batches-py`` / ``cifar-100-python``, test split), an
ImageFolder tree (``root/<class>/<image>``) or a ``.npy`` of uint8 images (N, H, W, C) with
``--labels LABELS.npy``.

Output layouts (exactly the published ones, so existing readers work unchanged):

- array sources (CIFAR folder, ``.npy``): ``OUT/<NAME>-C/<corruption>.npy`` uint8 ``[S*N, H, W, 3]``,
  severity-major (rows ``[N*(s-1), N*s)`` are severity s when all five are generated), and
  ``OUT/<NAME>-C/labels.npy`` (labels repeated S times, uint8 when there are < 256 classes, else
  int64); ``OUT/<NAME>-P/<p>.npy`` uint8 ``[N, T, H, W, 3]`` (``<p>_2.npy`` / ``<p>_3.npy`` for the
  noise difficulties); NAME is CIFAR-10 / CIFAR-100 or ``--name`` (default: the file stem).
- ImageFolder sources: ``OUT/<corruption>/<severity>/<class>/<name>.JPEG`` (or ``.png``) and
  ``OUT/<p>[_<d>]/<class>/<name>.mp4`` (MP4, mp4v codec, via ``cv2.VideoWriter``).

Every run writes ``manifest.json`` next to the data (parameters, seed, package version,
``"regenerated": true``). A corruption (or perturbation) is written to a hidden temporary file or
folder and moved into place when complete, so an interrupted run resumes where it stopped; a finished
file made with the same settings is kept, and one made with other settings (or not by us) is never
overwritten unless ``--force`` is given. A file is announced in the manifest (``"status":
"partial"``) before it is moved into place, so a run killed between the two steps resumes instead of
refusing. Array files are allocated on disk before they are written: a full disk is a clear error,
not a crash.

Split over processes (:mod:`robust_mix.distributed`): the random stream of a chunk of ``chunk``
images depends on the chunk's index only, so the chunks are shared out in contiguous blocks
(:meth:`~robust_mix.distributed.Shard.span` of the chunk count) and the set is byte-identical for
every number of processes. With ``--shard K/N`` (or a SLURM array) a process writes only its part,
atomically, into ``<set folder>/.shards/K-of-N/`` (:mod:`robust_mix.shard_parts`: the part's
options, span and finished files in ``part.json``), never the final layout; a rerun skips finished
files and redoes a half-written one. ``--merge`` checks that the N parts made with the same options
are done, assembles the standard layout and the manifest exactly as one process writes them, and
removes the parts. Under torchrun every rank writes its part and rank 0 merges after a barrier.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from robust_eval import __version__
from robust_eval.constants import ALL_CORRUPTIONS, NOISE_PERTURBATIONS, SEVERITIES
from robust_eval.corruptions import PARAMS, PRESETS, apply_corruption
from robust_eval.data import (
    DataLayoutError,
    find_cifar_folder,
    list_imagefolder,
    load_cifar,
    load_npy_images,
    read_image,
)
from robust_eval.frost import frost_photos
from robust_eval.perturbations import (
    ALL_PERTURBATIONS,
    DIFFICULTIES,
    FRAMES,
    NOISE_LEVELS,
    make_sequence,
)
from robust_mix.cli import progress
from robust_mix.distributed import Shard
from robust_mix.files import (
    FileProblem,
    atomic_write,
    atomic_writer,
    preallocate,
    resize_center_crop,
    stem_collisions,
)
from robust_mix.jobs import write_set
from robust_mix.shard_parts import check_merge, link_tree

__all__ = ["DEFAULT_SIZE", "MIN_SIZE", "Source", "load_source", "make_c", "make_p"]

#: Output image size (pixels, square) per preset for ImageFolder sources.
DEFAULT_SIZE: dict[str, int] = {"cifar": 32, "imagenet": 224}
#: Smallest ``size`` accepted (pixels): the corruption kernels need a few pixels to work on.
MIN_SIZE = 8
MANIFEST = "manifest.json"
REGENERATED_NOTE = (
    "regenerated with robust_eval (not bit-identical to the published set): own motion-blur kernel "
    "instead of ImageMagick, procedural frost textures instead of the six frost photographs"
)
FROST_PHOTOS_NOTE = (
    "regenerated with robust_eval (not bit-identical to the published set): own motion-blur kernel "
    "instead of ImageMagick; frost blends the reference's frost photographs (--frost-images)"
)


@dataclass
class Source:
    """A clean data set to corrupt: images are read in chunks, resized to ``size`` when set."""

    path: Path
    kind: str  # "cifar10" | "cifar100" | "folder" | "npy"
    name: str
    labels: np.ndarray | None
    class_names: list[str]
    size: int | None
    _array: np.ndarray | None = None
    _paths: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._array) if self._array is not None else len(self._paths)

    @property
    def is_folder(self) -> bool:
        return self.kind == "folder"

    def chunk(self, start: int, stop: int) -> np.ndarray:
        """uint8 (k, H, W, 3) images ``start:stop``."""
        if self._array is not None:
            imgs = np.asarray(self._array[start:stop])
            if imgs.shape[-1] == 1:
                imgs = np.repeat(imgs, 3, axis=-1)
            if self.size is not None and imgs.shape[1:3] != (self.size, self.size):
                imgs = np.stack([_resize_crop(im, self.size) for im in imgs])
            return np.ascontiguousarray(imgs)
        return np.stack([_resize_crop(read_image(p), self.size or 224) for p in self._paths[start:stop]])

    def relative_name(self, index: int, suffix: str) -> str:
        """Output path ``<class>/<file name>`` of image ``index`` of a folder source."""
        assert self.labels is not None
        cls = self.class_names[int(self.labels[index])]
        rel = Path(self._paths[index]).relative_to(self.path / cls)
        return f"{cls}/{'_'.join(rel.with_suffix('').parts)}{suffix}"

    def fingerprint(self) -> dict[str, Any]:
        first = self.chunk(0, 1)
        return {
            "path": str(self.path.resolve()),  # the same folder however it was typed
            "kind": self.kind,
            "n": len(self),
            "image_shape": list(first.shape[1:]),
        }


def _resize_crop(img: np.ndarray, size: int) -> np.ndarray:
    """Square images: resized to ``size``; others: shorter side to ``size * 256 / 224``, center crop."""
    h, w = img.shape[:2]
    return resize_center_crop(img, size, 1.0 if h == w else 224 / 256)


def load_source(
    src: str | os.PathLike[str],
    labels: str | os.PathLike[str] | None = None,
    name: str | None = None,
    size: int | None = None,
    need_labels: bool = True,
    preset: str = "cifar",
) -> Source:
    """Open SRC (CIFAR python folder, ImageFolder or ``.npy``) without reading all images.

    Raises:
        ValueError: ``size`` is below :data:`MIN_SIZE`.
        DataLayoutError: SRC is missing or malformed, or two files of an ImageFolder differ only in
            their extension (``0.png`` and ``0.jpg`` would be written to one output file).
    """
    if size is not None and size < MIN_SIZE:
        raise ValueError(f"--size must be at least {MIN_SIZE} pixels, got {size}")
    path = Path(src)
    if path.is_file() or path.suffix == ".npy":
        arr = load_npy_images(path)
        lab = None
        if labels is not None:
            lab = np.load(labels, allow_pickle=False)
            if lab.ndim != 1 or len(lab) != len(arr) or not np.issubdtype(lab.dtype, np.integer):
                raise DataLayoutError(
                    f"labels '{labels}' hold {lab.dtype} {lab.shape}; expected {len(arr)} integer labels (N,)"
                )
        elif need_labels:
            raise DataLayoutError(
                f"'{path}' is an image array: give its labels with --labels LABELS.npy (N,)"
            )
        n_classes = int(lab.max()) + 1 if lab is not None and len(lab) else 0
        return Source(
            path, "npy", name or path.stem, lab, [str(i) for i in range(n_classes)], size, _array=arr
        )
    if not path.is_dir():
        raise DataLayoutError(
            f"source '{path}' does not exist; expected a CIFAR python folder, an ImageFolder or an .npy file"
        )
    for dataset, default_name in (("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100")):
        try:
            folder = find_cifar_folder(path, dataset)
        except DataLayoutError:
            continue
        images, lab, names = load_cifar(folder, dataset, train=False)
        return Source(folder, dataset, name or default_name, lab, names, size, _array=images)
    paths, lab, classes = list_imagefolder(path)
    clashes = stem_collisions([Path(p) for p in paths], path)
    if clashes:
        a, b = clashes[0]
        raise DataLayoutError(
            f"'{a}' and '{b}' would be written to the same output file ({len(clashes)} such pair(s)); "
            "rename or remove one of each pair"
        )
    return Source(path, "folder", name or path.name, lab, classes, size or DEFAULT_SIZE[preset], _paths=paths)


# --------------------------------------------------------------------------------------------------
# helpers: manifest, atomic files, refusal
# --------------------------------------------------------------------------------------------------
def _read_manifest(folder: Path, force: bool = False) -> dict[str, Any]:
    """The manifest of an earlier run into ``folder`` ({} when there is none).

    A ``manifest.json`` that this tool did not write (the user's own file) is never overwritten: it
    is refused, and with ``force`` it is replaced only because the user asked.
    """
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if force:
            return {}
        raise DataLayoutError(f"'{path}' is not valid JSON ({exc}); delete it or pass --force") from None
    if not isinstance(data, dict) or data.get("generator") != "robust_eval.generate":
        if force:
            return {}
        raise FileExistsError(
            f"'{path}' exists and was not written by robust-eval make-c/make-p; refusing to overwrite it "
            "(choose another OUT, or pass --force to replace it)"
        )
    return data


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _plain(value: Any) -> Any:
    """Tuples -> lists, numpy scalars -> Python: what the value looks like after a JSON round trip."""
    return json.loads(json.dumps(value, default=_jsonable))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _status(target: Path, key: str, settings: dict[str, Any], files: dict[str, Any], force: bool) -> str:
    """What to do about ``target``: ``"keep"`` (a finished file with these settings), ``"make"`` (absent)
    or ``"replace"`` (remove it first: a file moved into place by a killed run, or ``force``).

    Nothing is removed here (a shard only decides; the step that writes the final layout removes).

    Raises:
        FileExistsError: ``target`` exists, was made with other settings (or not by us), no ``force``.
    """
    if not target.exists():
        return "make"
    done = files.get(key)
    if done is not None and done == _plain(settings):
        return "keep"
    if (done is not None and done.get("status") == "partial") or force:
        return "replace"
    why = (
        "was made with other settings"
        if done is not None
        else "was not made by this tool (no manifest entry)"
    )
    raise FileExistsError(
        f"'{target}' already exists and {why}; refusing to overwrite it (pass --force to replace it)"
    )


def _progress(enabled: bool) -> Progress:
    columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return progress(Console(stderr=True), *columns, enabled=enabled)


def _label_array(labels: np.ndarray, repeats: int) -> np.ndarray:
    lab = np.tile(np.asarray(labels), repeats)
    return lab.astype(np.uint8) if lab.size == 0 or int(lab.max()) < 256 else lab.astype(np.int64)


def _validate_names(names: Sequence[str] | None, allowed: Sequence[str], what: str) -> list[str]:
    if names is None:
        return list(allowed)
    out = []
    for item in names:
        out.extend(part.strip() for part in str(item).split(",") if part.strip())
    bad = [n for n in out if n not in allowed]
    if bad or not out:
        raise ValueError(
            f"unknown {what} {', '.join(bad) or '(none given)'}; choose from: {', '.join(allowed)}"
        )
    return list(dict.fromkeys(out))


def _validate_ints(values: Sequence[int | str] | None, allowed: Sequence[int], what: str) -> list[int]:
    if values is None:
        return list(allowed)
    out: list[int] = []
    for item in values:
        for part in str(item).split(","):
            if part.strip():
                try:
                    out.append(int(part))
                except ValueError:
                    raise ValueError(f"{what} must be integers in {list(allowed)}, got {part!r}") from None
    bad = [v for v in out if v not in allowed]
    if bad or not out:
        raise ValueError(f"{what} must be in {list(allowed)}, got {bad or 'nothing'}")
    return sorted(set(out))


def _base_manifest(kind: str, source: Source, preset: str, seed: int, layout: str) -> dict[str, Any]:
    return {
        "benchmark": f"{source.name}-{kind}",
        "regenerated": True,
        "note": REGENERATED_NOTE,
        "generator": "robust_eval.generate",
        "version": __version__,
        "preset": preset,
        "seed": seed,
        "layout": layout,
        "source": source.fingerprint(),
        "classes": source.class_names if source.is_folder else len(source.class_names),
    }


# --------------------------------------------------------------------------------------------------
# a set = files of row groups, written by one process, as shard parts, or merged from the parts
# --------------------------------------------------------------------------------------------------
@dataclass
class _Job:
    """One file (array layouts) or folder (image / video layouts) of a set: a :class:`robust_mix.jobs.Unit`.

    It holds ``len(groups)`` row groups (the severities of -C; one group for -P) of one row per source
    image; ``compute(k, images)`` yields ``(group, rows)`` for chunk ``k`` (the chunk index is part of
    the random stream, so the rows never depend on how the chunks are shared out).
    """

    key: str
    settings: dict[str, Any]
    target: Path
    groups: list[str]  # folder layouts: sub-folder of each group ("1".."5" for -C, "" for -P)
    row_shape: tuple[int, ...]  # array layouts: the shape of one row
    compute: Callable[[int, np.ndarray], Iterator[tuple[int, np.ndarray]]]
    encode: Callable[[Path, np.ndarray], None] | None = None  # folder layouts: write one row as a file
    suffix: str = ""
    plan: _Plan | None = None  # the set the job belongs to (set by _Plan)

    @property
    def label(self) -> str:
        return self.key

    @property
    def weight(self) -> int:
        return len(self.groups)

    @property
    def part_paths(self) -> list[str]:
        return [self.target.name]

    def _plan(self) -> _Plan:
        assert self.plan is not None, "a _Job is written through its _Plan"
        return self.plan

    def status(self) -> str:
        plan = self._plan()
        return _status(self.target, self.key, self.settings, plan.files, plan.force)

    def clear(self) -> None:
        _remove(self.target)

    def begin(self) -> None:
        plan = self._plan()
        _announce(plan.root, plan.manifest, plan.files, self.key, self.settings)

    def produce(self, folder: Path, span: range, tick: Callable[[float], Any]) -> None:
        _produce(self._plan(), self, folder, span, tick)

    def assemble(self, parts: Mapping[int, Path], tick: Callable[[float], Any]) -> None:
        _assemble(self._plan(), self, parts, tick)

    def finish(self) -> None:
        plan = self._plan()
        plan.files[self.key] = _plain(self.settings)
        plan.manifest["files"] = plan.files
        _write_json_atomic(plan.root / MANIFEST, plan.manifest)


@dataclass
class _Plan:
    """Everything one run of make-c / make-p writes: the jobs, the manifest, and where
    (a :class:`robust_mix.jobs.SetWriter`; its split indices are chunks of ``chunk`` images)."""

    source: Source
    root: Path
    manifest: dict[str, Any]
    files: dict[str, Any]
    chunk: int
    force: bool
    units: list[_Job]
    write_labels: Callable[[], None]  # written with the final layout only (labels.npy)
    command: str = "robust-eval make-c/make-p"

    def __post_init__(self) -> None:
        for job in self.units:
            job.settings = _plain(job.settings)
            job.plan = self

    @property
    def split(self) -> int:
        return -(-len(self.source) // self.chunk)

    @property
    def items(self) -> int:
        return len(self.source)

    def item_span(self, span: range) -> range:
        """The images of chunks ``span``."""
        n = len(self.source)
        return range(min(n, span.start * self.chunk), min(n, span.stop * self.chunk))

    def options(self) -> dict[str, Any]:
        """What a shard part must have been made with to be merged: the manifest minus the file records."""
        return _plain({k: v for k, v in self.manifest.items() if k != "files"})

    def before_final(self) -> None:
        self.write_labels()

    def after_final(self) -> None:
        _write_json_atomic(self.root / MANIFEST, self.manifest)

    def lock(self, folder: Path) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def progress(self, enabled: bool) -> Progress:
        return _progress(enabled)


def _produce(plan: _Plan, job: _Job, folder: Path, chunks: range, tick: Callable[[float], Any]) -> None:
    """Compute ``chunks`` of ``job`` into ``folder`` (the set's folder, or a shard's part folder).

    Rows go to a hidden temporary file (or folder) that is moved to ``folder/<target name>`` once
    complete; an interrupted attempt leaves nothing behind. An empty range writes nothing.
    """
    span = plan.item_span(chunks)
    if not span:
        return
    dest = folder / job.target.name
    tmp = folder / f".{dest.name}.partial"
    _remove(tmp)
    arr = None if job.encode else _open_array(tmp, (len(job.groups) * len(span), *job.row_shape))
    try:
        for k in chunks:
            start, stop = k * plan.chunk, min(len(plan.source), (k + 1) * plan.chunk)
            for g, rows in job.compute(k, plan.source.chunk(start, stop)):
                if arr is not None:
                    offset = g * len(span) - span.start
                    arr[offset + start : offset + stop] = rows
                else:
                    _encode_rows(plan.source, job, tmp / job.groups[g], start, rows)
                tick(stop - start)
        if arr is not None:
            arr.flush()
            del arr
        os.replace(tmp, dest)
    except BaseException:
        _remove(tmp)
        raise


def _encode_rows(source: Source, job: _Job, folder: Path, start: int, rows: np.ndarray) -> None:
    assert job.encode is not None
    for j, row in enumerate(rows):
        path = folder / source.relative_name(start + j, job.suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        job.encode(path, row)


def _assemble(plan: _Plan, job: _Job, parts: Mapping[int, Path], tick: Callable[[float], Any]) -> None:
    """Write ``job.target`` from the parts of shards ``0 .. N-1`` (``parts``: shard -> part folder)."""
    n, groups = len(plan.source), len(job.groups)
    tmp = plan.root / f".{job.target.name}.partial"
    _remove(tmp)
    arr = None if job.encode else _open_array(tmp, (groups * n, *job.row_shape))
    if arr is None:
        tmp.mkdir()
    try:
        for k, folder in sorted(parts.items()):
            span = plan.item_span(Shard(k, len(parts), "shard").span(plan.split))
            if not span:
                continue
            src = folder / job.target.name
            if arr is None:
                link_tree(src, tmp)
            else:
                part = np.load(src, mmap_mode="r", allow_pickle=False)
                m = len(span)
                if part.shape != (groups * m, *job.row_shape):
                    raise DataLayoutError(
                        f"shard part '{src}' holds {part.shape}, expected {(groups * m, *job.row_shape)}; "
                        "delete it and run that shard again"
                    )
                for g in range(groups):
                    arr[g * n + span.start : g * n + span.stop] = part[g * m : (g + 1) * m]
                del part
            tick(groups * len(span))
        if arr is not None:
            arr.flush()
            del arr
        os.replace(tmp, job.target)
    except BaseException:
        _remove(tmp)
        raise


def _write_set(plan: _Plan, shard: Shard | None, merge: bool, progress: bool) -> dict[str, Any]:
    """Run ``plan`` on :func:`robust_mix.jobs.write_set`; the manifest (plus ``"folder"``) of the set,
    or the summary of the part this process wrote."""
    outcome = write_set(plan, shard, merge, progress)
    if outcome.final:
        return {**plan.manifest, "folder": str(plan.root)}
    return {
        "benchmark": plan.manifest["benchmark"],
        "shard": f"{outcome.shard.index}/{outcome.shard.count}",
        "launcher": outcome.shard.launcher,
        "span": [outcome.span.start, outcome.span.stop],
        "files": outcome.files,
        "folder": str(outcome.folder),
    }


# --------------------------------------------------------------------------------------------------
# make-c
# --------------------------------------------------------------------------------------------------
def _open_output(out: Path, source: Any, family: str, force: bool) -> tuple[Path, dict[str, Any]]:
    """The benchmark folder for ``source`` under ``out`` (``<NAME>-C``/``-P`` for arrays, ``out`` itself for
    image folders), created if needed, and the finished-file records of an earlier run into it.

    Refuses a folder generated from another source unless ``force``.
    """
    root = out if source.is_folder else out / f"{source.name}-{family}"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileProblem(exc.errno or 0, f"cannot create '{root}': {exc.strerror or exc}") from None
    manifest = _read_manifest(root, force)
    if manifest.get("source") not in (None, _plain(source.fingerprint())):
        if not force:
            raise FileExistsError(
                f"'{root}' holds a set generated from another source ({manifest['source'].get('path')}); "
                "choose another OUT or pass --force"
            )
        return root, {}  # --force over another source: nothing of the old set is kept
    return root, dict(manifest.get("files", {}))


def _labels(root: Path, source: Source, sevs: Sequence[int], force: bool, write: bool) -> None:
    """``labels.npy`` of an array -C set: refused when it holds other labels (unless ``force``); written
    when ``write`` (with the final layout)."""
    assert source.labels is not None
    lab_path = root / "labels.npy"
    new_labels = _label_array(source.labels, len(sevs))
    if lab_path.exists():
        old = np.load(lab_path, allow_pickle=False)
        if np.array_equal(old, new_labels) and old.dtype == new_labels.dtype:
            return
        if not force:
            raise FileExistsError(
                f"'{lab_path}' exists with other labels; refusing to overwrite it (pass --force)"
            )
    if write:
        _save_npy_atomic(lab_path, new_labels)


def _corrupt_chunk(
    cname: str, sevs: Sequence[int], preset: str, seed: int, frost: str | None, k: int, images: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """Chunk ``k`` at every severity; stream ``default_rng([seed, index of cname, severity, k])``."""
    cidx = ALL_CORRUPTIONS.index(cname)
    for si, sev in enumerate(sevs):
        rng = np.random.default_rng([seed, cidx, sev, k])
        yield si, apply_corruption(images, cname, sev, preset, rng, frost_images=frost)


def _c_job(
    cname: str,
    source: Source,
    root: Path,
    row_shape: tuple[int, ...],
    preset: str,
    seed: int,
    sevs: list[int],
    chunk: int,
    fmt: str,
    frost: str | None,
) -> _Job:
    """The unit of one -C corruption: its settings (what a part must match), target and kernels."""
    settings = {"preset": preset, "seed": seed, "severities": sevs, "chunk": chunk, "status": "complete"}
    if source.is_folder:
        settings.update(size=source.size, format=fmt)
    if cname == "frost":
        settings["frost_images"] = frost
    return _Job(
        key=cname,
        settings=settings,
        target=root / cname if source.is_folder else root / f"{cname}.npy",
        groups=[str(s) for s in sevs],
        row_shape=row_shape,
        compute=functools.partial(_corrupt_chunk, cname, sevs, preset, seed, frost),
        encode=functools.partial(_write_image, fmt=fmt) if source.is_folder else None,
        suffix=".JPEG" if fmt == "JPEG" else ".png",
    )


def make_c(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    preset: str,
    *,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] | None = None,
    labels: str | os.PathLike[str] | None = None,
    seed: int = 0,
    name: str | None = None,
    size: int | None = None,
    image_format: str = "JPEG",
    force: bool = False,
    chunk: int = 256,
    progress: bool = True,
    frost_images: str | os.PathLike[str] | None = None,
    shard: Shard | None = None,
    merge: bool = False,
) -> dict[str, Any]:
    """Write a -C set for SRC under OUT; returns the manifest (plus ``"folder"``: where it was written).

    The random stream of corruption c, severity s, chunk k is ``default_rng([seed, index of c in
    ALL_CORRUPTIONS, s, k])``, so a subset of corruptions, a resumed run or a sharded one gives the
    same images as a full run with the same ``seed`` and ``chunk``. ``frost_images``: folder with the
    reference's six frost photographs (see :func:`robust_eval.corruptions.apply_corruption`);
    default: procedural frost.

    ``shard`` (from :func:`robust_mix.distributed.detect`): with ``--shard K/N`` or a SLURM array,
    this process computes only its block of chunks (:meth:`Shard.span` of the chunk count) into
    ``.shards/K-of-N`` and returns that part's summary (``"shard"``, ``"span"``, ``"files"``,
    ``"folder"``); ``merge=True`` then assembles the set from the N parts. Under torchrun the ranks
    split the chunks and rank 0 merges after a barrier. The set is byte-identical for every N.
    """
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    names = _validate_names(corruptions, ALL_CORRUPTIONS, "corruption(s)")
    sevs = _validate_ints(severities, SEVERITIES, "severities")
    fmt = image_format.upper().lstrip(".")
    if fmt not in ("JPEG", "PNG"):
        raise ValueError(f"--format must be JPEG or PNG, got {image_format!r}")
    _check_counts(chunk, seed)
    check_merge(shard or Shard.single(), merge)
    frost = None if frost_images is None else os.fspath(Path(frost_images).resolve())
    if frost is not None and "frost" in names:
        frost_photos(frost, preset)  # a missing photograph fails before any work
    source = load_source(src, labels, name, size, need_labels=True, preset=preset)
    root, files = _open_output(Path(out), source, "C", force)
    manifest = _base_manifest("C", source, preset, seed, "folder" if source.is_folder else "npy")
    if frost is not None:
        manifest["note"] = FROST_PHOTOS_NOTE
    manifest["frost_images"] = frost
    manifest["severities"] = sevs
    manifest["chunk"] = chunk
    manifest["parameters"] = {c: PARAMS[preset][c] for c in ALL_CORRUPTIONS}
    manifest["files"] = files
    before_final: Callable[[], None] = lambda: None  # noqa: E731
    if not source.is_folder:
        _labels(root, source, sevs, force, write=False)  # refused before any work
        before_final = functools.partial(_labels, root, source, sevs, force, True)
    row_shape = tuple(source.chunk(0, 1).shape[1:])
    jobs = [_c_job(cname, source, root, row_shape, preset, seed, sevs, chunk, fmt, frost) for cname in names]
    plan = _Plan(source, root, manifest, files, chunk, force, jobs, before_final)
    return _write_set(plan, shard, merge, progress)


def _announce(root: Path, manifest: dict[str, Any], files: dict[str, Any], key: str, settings: dict) -> None:
    """Record ``key`` as ours but unfinished before its file can appear (see the module docstring)."""
    files[key] = _plain({**settings, "status": "partial"})
    manifest["files"] = files
    _write_json_atomic(root / MANIFEST, manifest)


def _save_npy_atomic(path: Path, array: np.ndarray) -> None:
    with atomic_writer(path) as fh:
        np.save(fh, array, allow_pickle=False)


def _open_array(tmp: Path, shape: tuple[int, ...]) -> np.memmap:
    """A uint8 ``.npy`` memory map at ``tmp`` whose bytes are allocated on disk up front (so writing
    through the map cannot die of SIGBUS on a full disk; a clear FileProblem is raised here instead)."""
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    try:
        with open(tmp, "r+b") as fh:
            preallocate(fh, os.path.getsize(tmp), tmp)
    except BaseException:
        del arr
        tmp.unlink(missing_ok=True)
        raise
    return arr


def _write_image(path: Path, image: np.ndarray, fmt: str) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if fmt == "JPEG" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(
        ".jpg" if fmt == "JPEG" else ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params
    )
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    buf.tofile(str(path))


# --------------------------------------------------------------------------------------------------
# make-p
# --------------------------------------------------------------------------------------------------
def _p_jobs(names: Sequence[str], difficulties: Sequence[int]) -> list[tuple[str, int, str]]:
    jobs = []
    for p in names:
        for d in difficulties if p in NOISE_PERTURBATIONS else (1,):
            jobs.append((p, d, p if d == 1 else f"{p}_{d}"))
    return jobs


def _perturb_chunk(
    p: str, d: int, preset: str, seed: int, k: int, images: np.ndarray
) -> Iterator[tuple[int, np.ndarray]]:
    """Sequences of chunk ``k``; stream ``default_rng([seed, 1000 + index of p, d, k])``."""
    rng = np.random.default_rng([seed, 1000 + ALL_PERTURBATIONS.index(p), d, k])
    yield 0, make_sequence(images, p, preset, rng, difficulty=d)


def make_p(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    preset: str,
    *,
    perturbations: Sequence[str] | None = None,
    difficulties: Sequence[int] | None = None,
    labels: str | os.PathLike[str] | None = None,
    seed: int = 0,
    name: str | None = None,
    size: int | None = None,
    fps: float = 10.0,
    force: bool = False,
    chunk: int = 64,
    progress: bool = True,
    shard: Shard | None = None,
    merge: bool = False,
) -> dict[str, Any]:
    """Write a -P set for SRC under OUT; returns the manifest (plus ``"folder"``: where it was written).

    Noise perturbations are generated at each of ``difficulties`` (default 1, 2, 3; files ``<p>``,
    ``<p>_2``, ``<p>_3``); the others once. Random stream: ``default_rng([seed, 1000 + index of p, d, k])``.
    ``shard`` / ``merge``: split over processes as for :func:`make_c`.
    """
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    names = _validate_names(perturbations, ALL_PERTURBATIONS, "perturbation(s)")
    diffs = _validate_ints(difficulties, DIFFICULTIES, "difficulties")
    _check_counts(chunk, seed)
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"--fps must be a finite number > 0 (frames per second), got {fps}")
    check_merge(shard or Shard.single(), merge)
    source = load_source(src, labels, name, size, need_labels=False, preset=preset)
    if source.is_folder and not _video_writer_works():
        raise RuntimeError("this OpenCV build cannot write MP4 (mp4v); use an .npy source instead")
    root, files = _open_output(Path(out), source, "P", force)
    manifest = _base_manifest("P", source, preset, seed, "mp4" if source.is_folder else "npy")
    manifest["chunk"] = chunk
    manifest["frames"] = {p: FRAMES[preset][p] for p in ALL_PERTURBATIONS}
    manifest["noise_levels"] = NOISE_LEVELS[preset]
    manifest["files"] = files
    h, w, _ = source.chunk(0, 1).shape[1:]
    jobs = []
    for p, d, key in _p_jobs(names, diffs):
        settings = {"preset": preset, "seed": seed, "difficulty": d, "chunk": chunk, "status": "complete"}
        if source.is_folder:
            settings.update(size=source.size, fps=fps)
        jobs.append(
            _Job(
                key=key,
                settings=settings,
                target=root / key if source.is_folder else root / f"{key}.npy",
                groups=[""],
                row_shape=(FRAMES[preset][p], h, w, 3),
                compute=functools.partial(_perturb_chunk, p, d, preset, seed),
                encode=functools.partial(_write_video, fps=fps) if source.is_folder else None,
                suffix=".mp4",
            )
        )
    plan = _Plan(source, root, manifest, files, chunk, force, jobs, lambda: None)
    return _write_set(plan, shard, merge, progress)


def _video_writer_works() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (16, 16))
        ok = writer.isOpened()
        writer.release()
        return ok


def _check_counts(chunk: int, seed: int) -> None:
    """``--chunk`` >= 1 and ``--seed`` >= 0 (numpy seeds are non-negative), before any work."""
    if chunk < 1:
        raise ValueError(f"--chunk must be >= 1, got {chunk}")
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    _t, h, w, _ = frames.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter could not open '{path}' for MP4 (mp4v)")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
