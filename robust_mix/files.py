"""The file plumbing shared by the three packages: atomic writes, output locks, image listing and decoding.

Every command of the project (``ipmix-fractals``, ``timm train``, ``robust-eval``) writes and reads
files through this module, so each rule below holds everywhere at once:

- :func:`atomic_write` / :func:`atomic_writer`: a file appears whole or not at all (temporary file in
  the same folder, ``fsync``, ``os.replace``); with ``overwrite=False`` an existing file is never
  replaced (the final step is ``os.link``, which fails if the name exists); permissions follow the
  umask (0644 under the usual 022) instead of ``mkstemp``'s 0600; a full or read-only disk gives a
  :class:`FileProblem` naming the file, and the temporary file is removed.
- :func:`preallocate`: reserve the bytes of a file up front, so a memory-mapped writer fails with a
  clear message on a full disk instead of dying of SIGBUS.
- :class:`OutputLock`: one run per output folder; a second run refuses cleanly, a lock left by a
  killed run is taken over.
- :func:`list_images`: a recursive, sorted walk that follows links but never loops or visits a folder
  twice, with one list of image extensions (torchvision's ``ImageFolder`` list plus GIF).
  :func:`stem_collisions` finds ``0.png`` beside ``0.jpg``.
- :func:`decode_image`: Pillow decode to uint8 RGB with EXIF orientation applied, 16-bit pictures
  scaled (not clipped) to 8 bits, and decompression bombs and truncated files reported by name.
- :func:`resize_center_crop`: the standard evaluation resize + center crop.

Imports numpy, OpenCV and Pillow only (no torch), like the rest of ``albumentations_ipmix``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from robust_mix.errors import RobustMixError

__all__ = [
    "EVAL_SPLITS",
    "IMAGE_EXTENSIONS",
    "MACHINE_ERRNOS",
    "TMP_PREFIX",
    "TRAIN_SPLIT",
    "FileProblem",
    "OutputLock",
    "atomic_write",
    "atomic_writer",
    "decode_image",
    "file_mode",
    "list_images",
    "machine_problem",
    "preallocate",
    "resize_center_crop",
    "stem_collisions",
]

#: Extensions (lower case) that count as image files everywhere in the project: the list of
#: torchvision's ``ImageFolder`` (so class folders index the same files) plus ``.gif``.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp", ".gif"}
)

#: Prefix of temporary files; listers skip them, and a command may delete its own leftovers.
#: Held-out split folders of an image-folder root, in the order they are looked for: the one rule of
#: ``robust-eval`` (what it evaluates) and ``timm train`` (what it validates on).
EVAL_SPLITS: tuple[str, ...] = ("test", "val", "validation")
#: The training split folder of an image-folder root.
TRAIN_SPLIT = "train"
TMP_PREFIX = ".tmp-"

#: Largest picture decoded, in pixels (Pillow's own default bomb limit, 89.5 MPixel).
MAX_PIXELS = 89_478_485

_REASONS = {
    errno.ENOSPC: "no space left on the device; free some space or choose another folder",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another folder",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "permission denied; choose a folder you can write to",
    errno.EPERM: "permission denied; choose a folder you can write to",
}


class FileProblem(OSError, RobustMixError):
    """A file or folder cannot be read or written as needed; the message names it and says what to do.

    Constructed as ``FileProblem(errno, message)``; ``str()`` is the message alone (no ``[Errno N]``).
    A command that ends on it exits with status 1 (a problem of the machine, not of the input).
    """

    exit_code = 1

    def __str__(self) -> str:
        return self.strerror or super().__str__()


def file_mode() -> int:
    """Permissions of a newly created regular file under the current umask (e.g. 0o644 for 022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


#: Error numbers that are problems of the machine (a command ending on one exits with status 1).
MACHINE_ERRNOS: frozenset[int] = frozenset(_REASONS)


def machine_problem(exc: BaseException) -> FileProblem | None:
    """``exc`` as a :class:`FileProblem` (one line naming the file and the fix) when it is an
    ``OSError`` of the machine (full, read-only or forbidden disk: :data:`MACHINE_ERRNOS`); None for
    anything else (a missing file is bad input, not a machine problem)."""
    if not isinstance(exc, OSError) or exc.errno not in MACHINE_ERRNOS:
        return None
    if isinstance(exc, FileProblem):
        return exc
    where = exc.filename if exc.filename is not None else "the output"
    return FileProblem(exc.errno, f"cannot write '{os.fsdecode(where)}': {_REASONS[exc.errno]}")


def _explain(path: Path, exc: OSError, action: str = "write") -> FileProblem:
    reason = _REASONS.get(exc.errno or 0, exc.strerror or str(exc) or type(exc).__name__)
    return FileProblem(exc.errno or 0, f"cannot {action} '{path}': {reason}")


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], *, overwrite: bool = True, text: bool = False
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on a clean exit it becomes ``path`` atomically.

    Args:
        path: the destination; its folder must exist.
        overwrite: replace an existing ``path`` (``True``), or refuse with :class:`FileExistsError`
            (``False``: checked atomically at the final step, so two writers cannot both win).
        text: open in text mode (UTF-8) instead of binary.

    Raises:
        FileExistsError: ``overwrite=False`` and ``path`` exists (before or at the final step).
        FileProblem: the folder is missing, read-only or full (the temporary file is removed).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(errno.EEXIST, f"'{path}' already exists and was not replaced", str(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent)
    except FileNotFoundError:
        raise FileProblem(errno.ENOENT, f"cannot write '{path}': its folder does not exist") from None
    except OSError as exc:
        raise _explain(path, exc) from None
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, file_mode())
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails with EEXIST when another writer got there first
            os.unlink(tmp)
    except FileExistsError:
        Path(tmp).unlink(missing_ok=True)
        raise FileExistsError(
            errno.EEXIST, f"'{path}' already exists and was not replaced", str(path)
        ) from None
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, FileProblem):
            raise
        raise _explain(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, overwrite: bool = True) -> Path:
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically; see :func:`atomic_writer`."""
    with atomic_writer(path, overwrite=overwrite, text=isinstance(data, str)) as handle:
        handle.write(data)
    return Path(path)


def preallocate(handle: IO[Any] | int, nbytes: int, path: str | os.PathLike[str] = "?") -> None:
    """Reserve ``nbytes`` for an open file, so later writes through a memory map cannot hit a full disk.

    Falls back to extending the file (``ftruncate``) where the file system cannot allocate; then a
    full disk is only detected when the pages are written.

    Raises:
        FileProblem: not enough space (ENOSPC) or quota, naming ``path``.
    """
    fd = handle if isinstance(handle, int) else handle.fileno()
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, nbytes)
        else:  # pragma: no cover - macOS / Windows
            os.ftruncate(fd, nbytes)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", -1)):
            os.ftruncate(fd, nbytes)
            return
        raise FileProblem(
            exc.errno or 0,
            f"cannot write '{path}' ({nbytes / 1e6:.1f} MB): {_REASONS.get(exc.errno or 0, exc)}",
        ) from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputLock:
    """At most one run writes into a folder at a time (a ``.lock`` file made with ``O_EXCL``).

    Use as a context manager. The lock records the command, process id, host and start time. A lock
    whose process is gone (a killed run, same host) is taken over; a live one makes the second run
    fail with :class:`FileProblem` naming the folder and the other run.

    The folders the lock created are removed again on release if the run left them empty, so a run
    that fails before writing anything leaves nothing behind.

    Args:
        folder: the output folder (created if missing).
        command: the name shown to the user, e.g. ``"timm train"``.
        name: the lock file's name in ``folder`` (default ``.lock``); a command that writes one file
            locks that file alone with ``.<file name>.lock``.
    """

    NAME = ".lock"

    def __init__(self, folder: str | os.PathLike[str], command: str, name: str | None = None) -> None:
        self.folder = Path(folder)
        self.command = command
        self.path = self.folder / (name or self.NAME)
        self._held = False
        self._made: list[Path] = []

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def acquire(self) -> OutputLock:
        try:
            missing = [f for f in (self.folder, *self.folder.parents) if not f.exists()]
            self._made = missing  # removed again, deepest first, if the run leaves them empty
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _explain(self.folder, exc, "create the folder") from None
        info = {
            "command": self.command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
        }
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, file_mode())
            except FileExistsError:
                other = self._read()
                pid, host = other.get("pid"), other.get("host")
                same_host = host == socket.gethostname()
                if isinstance(pid, int) and same_host and not _pid_alive(pid):
                    self.path.unlink(missing_ok=True)  # left by a killed run
                    continue
                try:
                    age = time.time() - self.path.stat().st_mtime
                except FileNotFoundError:
                    continue  # released meanwhile: try again
                if not other and age > 60:
                    self.path.unlink(missing_ok=True)  # unreadable and old: a crash while writing it
                    continue
                who = (
                    f"{other.get('command', 'another run')} (pid {pid} on {host})" if other else "another run"
                )
                raise FileProblem(
                    errno.EBUSY,
                    f"'{self.folder}' is in use by {who}; wait for it to finish, choose another folder, "
                    f"or delete '{self.path}' if no such run exists",
                ) from None
            except OSError as exc:
                raise _explain(self.path, exc) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(info, handle)
            self._held = True
            return self
        raise FileProblem(errno.EBUSY, f"could not lock '{self.folder}'; try again")  # pragma: no cover

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False
            with contextlib.suppress(OSError):  # not empty: the run wrote something
                for folder in self._made:
                    folder.rmdir()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _is_image_name(name: str, extensions: frozenset[str]) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions


def list_images(
    root: str | os.PathLike[str], *, extensions: Iterable[str] | None = None, recursive: bool = True
) -> list[Path]:
    """Image files under ``root``, sorted by path, hidden and temporary files skipped.

    Links to folders are followed, but every real folder is visited once: a link loop or a second
    link to the same folder adds nothing. Links to files are listed (they are the user's choice).

    Args:
        root: the folder to search.
        extensions: lower-case extensions with the dot (default :data:`IMAGE_EXTENSIONS`).
        recursive: search sub-folders too.

    Raises:
        FileProblem: ``root`` does not exist or is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise FileProblem(errno.ENOENT, f"'{root}' {what}; expected a folder of images")
    exts = IMAGE_EXTENSIONS if extensions is None else frozenset(e.lower() for e in extensions)
    seen: set[tuple[int, int]] = set()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        found.extend(Path(dirpath, name) for name in filenames if _is_image_name(name, exts))
    return sorted(found)


def stem_collisions(paths: Sequence[Path], root: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """Pairs of files that share a relative path up to the extension (``a/0.png`` and ``a/0.jpg``).

    Such files would be written to the same output name by a command that re-encodes them.
    """
    by_stem: dict[Path, Path] = {}
    clashes: list[tuple[Path, Path]] = []
    for path in paths:
        key = path.relative_to(root).with_suffix("")
        if key in by_stem:
            clashes.append((by_stem[key], path))
        else:
            by_stem[key] = path
    return clashes


def _to_uint8(im: Any) -> np.ndarray:
    """A decoded Pillow image -> uint8 RGB; 16/32-bit integer pictures are scaled, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im).astype(np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        gray = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    return np.asarray(im.convert("RGB"))


def decode_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode one picture to uint8 ``(H, W, 3)`` RGB, the same way for every command.

    EXIF orientation is applied (a phone photo is upright); gray, palette and alpha pictures become
    RGB; 16-bit pictures are scaled to 8 bits (65535 -> 255) instead of being clipped to two levels.

    Raises:
        FileProblem: the file is missing, not a picture, truncated, or larger than ``max_pixels``
            (a decompression bomb), naming the file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise FileProblem(
                    errno.EFBIG,
                    f"'{path}' is {w} x {h} = {w * h:,} pixels, more than the limit of {max_pixels:,} "
                    "(a decompression bomb?); shrink the picture or remove it",
                )
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im.load()
                im = ImageOps.exif_transpose(im)
            return _to_uint8(im)
    except FileProblem:
        raise
    except FileNotFoundError:
        raise FileProblem(errno.ENOENT, f"'{path}' does not exist") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FileProblem(errno.EINVAL, f"'{path}' is not a readable picture: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        reason = str(exc) or type(exc).__name__
        raise FileProblem(
            errno.EIO, f"'{path}' is truncated or corrupt ({reason}); re-export or remove it"
        ) from None


_INTERPOLATIONS = {"nearest": 0, "bilinear": 1, "bicubic": 2, "area": 3, "lanczos": 4}


def resize_center_crop(
    image: np.ndarray, size: int, crop_pct: float = 1.0, interpolation: str = "bilinear"
) -> np.ndarray:
    """The standard evaluation transform on one uint8 ``(H, W, C)`` image.

    Resize the shorter side to ``round(size / crop_pct)`` pixels (keeping the aspect ratio; area
    averaging when shrinking), then center-crop ``size x size``. ``crop_pct = 0.875`` with
    ``size = 224`` is the 256-resize + 224-crop protocol. An image already at the target size with
    ``crop_pct = 1`` is returned unchanged.

    Args:
        image: uint8 ``(H, W, C)``.
        size: output side in pixels, >= 1.
        crop_pct: in (0, 1].
        interpolation: one of nearest, bilinear, bicubic, area, lanczos (used when enlarging).
    """
    import cv2

    if size < 1 or not 0 < crop_pct <= 1:
        raise ValueError(f"size must be >= 1 and crop_pct in (0, 1], got {size}, {crop_pct}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {interpolation!r}")
    h, w = image.shape[:2]
    short = round(size / crop_pct)
    if min(h, w) != short:
        scale = short / min(h, w)
        nh, nw = max(short, round(h * scale)), max(short, round(w * scale))
        flag = cv2.INTER_AREA if scale < 1 else _INTERPOLATIONS[interpolation]
        image = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=flag)
        h, w = nh, nw
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])
