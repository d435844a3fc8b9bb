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
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from albumentations_ipmix.files import (
    FileProblem,
    atomic_write,
    atomic_writer,
    preallocate,
    resize_center_crop,
    stem_collisions,
)
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


def _decide(target: Path, key: str, settings: dict[str, Any], manifest: dict[str, Any], force: bool) -> bool:
    """True when ``target`` must be (re)generated; False when it is a finished file with these settings."""
    if not target.exists():
        return True
    done = manifest.get("files", {}).get(key)
    if done is not None and done == _plain(settings):
        return False
    if done is not None and done.get("status") == "partial":
        _remove(target)  # moved into place by a run killed before it could record completion
        return True
    if force:
        _remove(target)
        return True
    why = (
        "was made with other settings"
        if done is not None
        else "was not made by this tool (no manifest entry)"
    )
    raise FileExistsError(
        f"'{target}' already exists and {why}; refusing to overwrite it (pass --force to replace it)"
    )


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _chunks(n: int, size: int) -> Iterator[tuple[int, int, int]]:
    for k, start in enumerate(range(0, n, size)):
        yield k, start, min(n, start + size)


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
) -> dict[str, Any]:
    """Write a -C set for SRC under OUT; returns the manifest (plus ``"folder"``: where it was written).

    The random stream of corruption c, severity s, chunk k is ``default_rng([seed, index of c in
    ALL_CORRUPTIONS, s, k])``, so a subset of corruptions or a resumed run gives the same images as a
    full run with the same ``seed`` and ``chunk``. ``frost_images``: folder with the reference's six
    frost photographs (see :func:`robust_eval.corruptions.apply_corruption`); default: procedural frost.
    """
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    names = _validate_names(corruptions, ALL_CORRUPTIONS, "corruption(s)")
    sevs = _validate_ints(severities, SEVERITIES, "severities")
    fmt = image_format.upper().lstrip(".")
    if fmt not in ("JPEG", "PNG"):
        raise ValueError(f"--format must be JPEG or PNG, got {image_format!r}")
    if chunk < 1:
        raise ValueError(f"--chunk must be >= 1, got {chunk}")
    frost = None if frost_images is None else os.fspath(Path(frost_images).resolve())
    if frost is not None and "frost" in names:
        frost_photos(frost, preset)  # a missing photograph fails before any work
    source = load_source(src, labels, name, size, need_labels=True, preset=preset)
    n = len(source)
    out = Path(out)
    root, files = _open_output(out, source, "C", force)
    manifest = _base_manifest("C", source, preset, seed, "folder" if source.is_folder else "npy")
    if frost is not None:
        manifest["note"] = FROST_PHOTOS_NOTE
    manifest["frost_images"] = frost
    manifest["severities"] = sevs
    manifest["chunk"] = chunk
    manifest["parameters"] = {c: PARAMS[preset][c] for c in ALL_CORRUPTIONS}
    manifest["files"] = files

    if not source.is_folder:
        assert source.labels is not None
        lab_path = root / "labels.npy"
        new_labels = _label_array(source.labels, len(sevs))
        if lab_path.exists():
            old = np.load(lab_path, allow_pickle=False)
            if not np.array_equal(old, new_labels) or old.dtype != new_labels.dtype:
                if not force:
                    raise FileExistsError(
                        f"'{lab_path}' exists with other labels; refusing to overwrite it (pass --force)"
                    )
                _save_npy_atomic(lab_path, new_labels)
        else:
            _save_npy_atomic(lab_path, new_labels)

    with _progress(progress) as bar:
        for cname in names:
            settings = {
                "preset": preset,
                "seed": seed,
                "severities": sevs,
                "chunk": chunk,
                "status": "complete",
            }
            if source.is_folder:
                settings.update(size=source.size, format=fmt)
            if cname == "frost":
                settings["frost_images"] = frost
            target = root / cname if source.is_folder else root / f"{cname}.npy"
            if not _decide(target, cname, settings, {"files": files}, force):
                task = bar.add_task(f"{cname} (kept)", total=n * len(sevs), completed=n * len(sevs))
                continue
            task = bar.add_task(cname, total=n * len(sevs))
            _announce(root, manifest, files, cname, settings)
            cidx = ALL_CORRUPTIONS.index(cname)
            if source.is_folder:
                _make_c_folder(source, root, cname, cidx, preset, sevs, seed, chunk, fmt, bar, task, frost)
            else:
                _make_c_array(source, target, cname, cidx, preset, sevs, seed, chunk, bar, task, frost)
            files[cname] = _plain(settings)
            manifest["files"] = files
            _write_json_atomic(root / MANIFEST, manifest)
    _write_json_atomic(root / MANIFEST, manifest)
    return {**manifest, "folder": str(root)}


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


def _make_c_array(source, target, cname, cidx, preset, sevs, seed, chunk, bar, task, frost) -> None:
    n = len(source)
    shape = (len(sevs) * n, *source.chunk(0, 1).shape[1:])
    tmp = target.with_name(f".{target.name}.partial")
    arr = _open_array(tmp, shape)
    try:
        for k, start, stop in _chunks(n, chunk):
            images = source.chunk(start, stop)
            for si, sev in enumerate(sevs):
                rng = np.random.default_rng([seed, cidx, sev, k])
                arr[si * n + start : si * n + stop] = apply_corruption(
                    images, cname, sev, preset, rng, frost_images=frost
                )
                bar.advance(task, stop - start)
        arr.flush()
        del arr
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_image(path: Path, image: np.ndarray, fmt: str) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 85] if fmt == "JPEG" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode(
        ".jpg" if fmt == "JPEG" else ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params
    )
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    buf.tofile(str(path))


def _make_c_folder(source, root, cname, cidx, preset, sevs, seed, chunk, fmt, bar, task, frost) -> None:
    n = len(source)
    tmp = root / f".{cname}.partial"
    _remove(tmp)  # an interrupted earlier attempt at this corruption starts over
    suffix = ".JPEG" if fmt == "JPEG" else ".png"
    try:
        for k, start, stop in _chunks(n, chunk):
            images = source.chunk(start, stop)
            for sev in sevs:
                rng = np.random.default_rng([seed, cidx, sev, k])
                corrupted = apply_corruption(images, cname, sev, preset, rng, frost_images=frost)
                for j, img in enumerate(corrupted):
                    path = tmp / str(sev) / source.relative_name(start + j, suffix)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    _write_image(path, img, fmt)
                bar.advance(task, stop - start)
        os.replace(tmp, root / cname)
    except BaseException:
        _remove(tmp)
        raise


# --------------------------------------------------------------------------------------------------
# make-p
# --------------------------------------------------------------------------------------------------
def _p_jobs(names: Sequence[str], difficulties: Sequence[int]) -> list[tuple[str, int, str]]:
    jobs = []
    for p in names:
        for d in difficulties if p in NOISE_PERTURBATIONS else (1,):
            jobs.append((p, d, p if d == 1 else f"{p}_{d}"))
    return jobs


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
) -> dict[str, Any]:
    """Write a -P set for SRC under OUT; returns the manifest (plus ``"folder"``: where it was written).

    Noise perturbations are generated at each of ``difficulties`` (default 1, 2, 3; files ``<p>``,
    ``<p>_2``, ``<p>_3``); the others once. Random stream: ``default_rng([seed, 1000 + index of p, d, k])``.
    """
    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    names = _validate_names(perturbations, ALL_PERTURBATIONS, "perturbation(s)")
    diffs = _validate_ints(difficulties, DIFFICULTIES, "difficulties")
    if chunk < 1:
        raise ValueError(f"--chunk must be >= 1, got {chunk}")
    source = load_source(src, labels, name, size, need_labels=False, preset=preset)
    if source.is_folder and not _video_writer_works():
        raise RuntimeError("this OpenCV build cannot write MP4 (mp4v); use an .npy source instead")
    n = len(source)
    out = Path(out)
    root, files = _open_output(out, source, "P", force)
    manifest = _base_manifest("P", source, preset, seed, "mp4" if source.is_folder else "npy")
    manifest["chunk"] = chunk
    manifest["frames"] = {p: FRAMES[preset][p] for p in ALL_PERTURBATIONS}
    manifest["noise_levels"] = NOISE_LEVELS[preset]
    manifest["files"] = files
    with _progress(progress) as bar:
        for p, d, key in _p_jobs(names, diffs):
            settings = {"preset": preset, "seed": seed, "difficulty": d, "chunk": chunk, "status": "complete"}
            if source.is_folder:
                settings.update(size=source.size, fps=fps)
            target = root / key if source.is_folder else root / f"{key}.npy"
            if not _decide(target, key, settings, {"files": files}, force):
                bar.add_task(f"{key} (kept)", total=n, completed=n)
                continue
            task = bar.add_task(key, total=n)
            _announce(root, manifest, files, key, settings)
            pidx = 1000 + ALL_PERTURBATIONS.index(p)
            if source.is_folder:
                _make_p_folder(source, root, key, p, d, pidx, preset, seed, chunk, fps, bar, task)
            else:
                _make_p_array(source, target, p, d, pidx, preset, seed, chunk, bar, task)
            files[key] = _plain(settings)
            manifest["files"] = files
            _write_json_atomic(root / MANIFEST, manifest)
    _write_json_atomic(root / MANIFEST, manifest)
    return {**manifest, "folder": str(root)}


def _make_p_array(source, target, p, d, pidx, preset, seed, chunk, bar, task) -> None:
    n = len(source)
    h, w, _ = source.chunk(0, 1).shape[1:]
    shape = (n, FRAMES[preset][p], h, w, 3)
    tmp = target.with_name(f".{target.name}.partial")
    arr = _open_array(tmp, shape)
    try:
        for k, start, stop in _chunks(n, chunk):
            rng = np.random.default_rng([seed, pidx, d, k])
            arr[start:stop] = make_sequence(source.chunk(start, stop), p, preset, rng, difficulty=d)
            bar.advance(task, stop - start)
        arr.flush()
        del arr
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _video_writer_works() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (16, 16))
        ok = writer.isOpened()
        writer.release()
        return ok


def _write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    _t, h, w, _ = frames.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter could not open '{path}' for MP4 (mp4v)")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _make_p_folder(source, root, key, p, d, pidx, preset, seed, chunk, fps, bar, task) -> None:
    n = len(source)
    tmp = root / f".{key}.partial"
    _remove(tmp)
    try:
        for k, start, stop in _chunks(n, chunk):
            rng = np.random.default_rng([seed, pidx, d, k])
            seqs = make_sequence(source.chunk(start, stop), p, preset, rng, difficulty=d)
            for j, seq in enumerate(seqs):
                path = tmp / source.relative_name(start + j, ".mp4")
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_video(path, seq, fps)
            bar.advance(task, stop - start)
        os.replace(tmp, root / key)
    except BaseException:
        _remove(tmp)
        raise
