"""Mixing-picture sources for IPMix and PixMix.

A *source* is an index-based collection of RGB pictures (fractals, textures, any unlabeled synthetic
images). Transforms draw an index and a crop offset in their parameter sampling; the source loads the
picture lazily, resizes it once to cover the target size (short side ~1.125x the image, as the
reference implementations do) and keeps the result in a bounded per-process LRU cache.

Sources are picklable (the cache is dropped when pickling, so DataLoader workers start empty) and
describe themselves with JSON-native values (:meth:`MixingSource.to_config`), which is how an
``IPMix(fractals=...)`` survives ``A.to_dict`` / ``A.save`` / ``A.load`` round trips.

Available sources:

- :class:`FolderSource` - a folder of pictures, searched recursively (ImageFolder layouts work).
- :class:`ArraySource` - pictures already in memory (an ``(N, H, W, C)`` array or a list of arrays).
- procedural fractals (``albumentations_ipmix.fractals``), registered as ``{"type": "procedural"}``.
"""

from __future__ import annotations

import os
import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from robust_mix.errors import RobustMixError
from robust_mix.files import MAX_PIXELS, FileProblem, decode_image, list_images

__all__ = [
    "FIT_SCALE",
    "ArraySource",
    "FolderSource",
    "MixingSource",
    "MixingSourceError",
    "as_source",
    "fit_shape",
    "register_source",
]

#: Ratio between the resized picture's covering side and the image side (36 px for 32 px images).
FIT_SCALE = 1.125

#: Default number of fitted pictures kept per process by a source.
DEFAULT_CACHE_SIZE = 512


class MixingSourceError(ValueError, RobustMixError):
    """A mixing source is missing, empty, unreadable or malformed."""


_SOURCE_TYPES: dict[str, type[MixingSource]] = {}


def register_source(name: str) -> Callable[[type[MixingSource]], type[MixingSource]]:
    """Class decorator: make a source constructible from ``{"type": name, ...}`` configs."""

    def decorator(cls: type[MixingSource]) -> type[MixingSource]:
        cls.type_name = name
        _SOURCE_TYPES[name] = cls
        return cls

    return decorator


def fit_shape(pic_height: int, pic_width: int, height: int, width: int) -> tuple[int, int]:
    """Size ``(h, w)`` a picture is resized to before a random ``height x width`` crop.

    The picture keeps its aspect ratio and is scaled so that it covers ``FIT_SCALE`` times the
    target on both axes (for a square 32 px target and a square picture: 36 x 36). Never smaller
    than the target.
    """
    if min(pic_height, pic_width, height, width) <= 0:
        raise MixingSourceError(
            f"cannot fit a {pic_height}x{pic_width} picture to a {height}x{width} image: sizes must be positive"
        )
    scale = FIT_SCALE * max(height / pic_height, width / pic_width)
    return max(height, round(pic_height * scale)), max(width, round(pic_width * scale))


class MixingSource(ABC):
    """Base class: an index-based, picklable collection of RGB mixing pictures.

    Subclasses implement :meth:`__len__`, :meth:`load` and :meth:`to_config` (and ``from_config``
    when they are registered with :func:`register_source`).

    Args:
        cache_size: how many fitted pictures to keep per process (LRU). 0 disables caching.
    """

    type_name: ClassVar[str] = ""

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()

    @abstractmethod
    def __len__(self) -> int:
        """Number of pictures."""

    @abstractmethod
    def load(self, index: int, size_hint: tuple[int, int] | None = None) -> np.ndarray:
        """Picture ``index`` as a uint8 ``(H, W, 3)`` RGB array.

        ``size_hint`` is the ``(height, width)`` the picture will be fitted to; procedural sources
        render at that size, stored pictures ignore it.
        """

    @abstractmethod
    def to_config(self) -> dict[str, Any] | str:
        """JSON-native description from which :func:`as_source` rebuilds an equal source."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MixingSource:
        """Rebuild a source from :meth:`to_config` output (registered subclasses override this)."""
        raise MixingSourceError(f"{cls.__name__} cannot be rebuilt from a config")

    def fitted(self, index: int, height: int, width: int) -> np.ndarray:
        """Picture ``index`` resized to :func:`fit_shape` for a ``height x width`` image (cached).

        The returned array is shared with the cache: treat it as read-only.
        """
        if not 0 <= index < len(self):
            raise IndexError(f"picture index {index} out of range for a source of {len(self)} pictures")
        key = (int(index), int(height), int(width))
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        size_hint = fit_shape(height, width, height, width)
        picture = self.load(index, size_hint)
        picture = _as_rgb_uint8(picture, f"picture {index} of {self!r}")
        new_h, new_w = fit_shape(picture.shape[0], picture.shape[1], height, width)
        if (new_h, new_w) != picture.shape[:2]:
            shrinking = new_h * new_w < picture.shape[0] * picture.shape[1]
            interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
            picture = cv2.resize(picture, (new_w, new_h), interpolation=interpolation)
        picture = np.ascontiguousarray(picture)
        picture.setflags(write=False)
        if self.cache_size:
            self._cache[key] = picture
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return picture

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def _as_rgb_uint8(picture: np.ndarray, what: str) -> np.ndarray:
    """Validate/convert a picture to uint8 ``(H, W, 3)``; grayscale is replicated, alpha dropped."""
    picture = np.asarray(picture)
    if picture.dtype == np.float32 or picture.dtype == np.float64:
        if not np.isfinite(picture).all():
            raise MixingSourceError(f"{what} contains NaN or infinite values")
        picture = np.clip(np.rint(picture * 255.0), 0, 255).astype(np.uint8)
    elif picture.dtype != np.uint8:
        raise MixingSourceError(
            f"{what} has dtype {picture.dtype}; expected uint8 [0, 255] or float32 [0, 1]"
        )
    if picture.ndim == 2:
        picture = picture[:, :, None]
    if picture.ndim != 3 or picture.shape[0] < 1 or picture.shape[1] < 1:
        raise MixingSourceError(
            f"{what} has shape {picture.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        )
    channels = picture.shape[2]
    if channels == 1:
        picture = np.repeat(picture, 3, axis=2)
    elif channels == 4:
        picture = picture[:, :, :3]
    elif channels != 3:
        raise MixingSourceError(f"{what} has {channels} channels; mixing pictures must be gray, RGB or RGBA")
    return picture


def _header_problem(path: str) -> str | None:
    """Why a picture's header makes it unusable (unreadable, no pixels or channels, more pixels than
    :data:`robust_mix.files.MAX_PIXELS`: a decompression bomb), or None. Only the header is read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # judged below, once
            with Image.open(path) as im:
                (w, h), bands = im.size, len(im.getbands())
    except Image.DecompressionBombError:
        return f"more than {MAX_PIXELS:,} pixels (a decompression bomb?)"
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
        return str(exc) or type(exc).__name__
    if w * h > MAX_PIXELS:
        return f"{w} x {h} = {w * h:,} pixels, more than {MAX_PIXELS:,} (a decompression bomb?)"
    if w < 1 or h < 1 or bands < 1:
        return f"{w} x {h} pixels with {bands} channels (nothing to mix)"
    return None


@register_source("folder")
class FolderSource(MixingSource):
    """Every picture under a folder, searched recursively, in sorted path order.

    Image files (:data:`robust_mix.files.IMAGE_EXTENSIONS`) are listed by
    :func:`robust_mix.files.list_images` (links followed, loops and repeated folders visited
    once); files whose header Pillow cannot read are skipped with one warning (count and first path).
    Pictures are decoded by :func:`robust_mix.files.decode_image` (EXIF orientation, 16-bit
    scaled to 8 bits). A picture that turns out truncated when it is first used is replaced by the next
    readable one (one warning per file), so a damaged file cannot abort a training run. An ImageFolder
    layout (``root/<class>/<file>``) works unchanged - class folders are simply more pictures.

    Args:
        root: the folder (``str`` or ``Path``).
        cache_size: fitted pictures kept per process.

    Raises:
        MixingSourceError: the folder does not exist, holds no image files, or none is readable.
    """

    def __init__(self, root: str | os.PathLike[str], cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        super().__init__(cache_size)
        self.root = str(root)
        self.paths = self._scan(Path(self.root))
        self._broken: set[str] = set()  # per process: pictures found truncated when first decoded

    @staticmethod
    def _scan(root: Path) -> list[str]:
        hint = (
            "expected a folder of pictures (PNG, JPEG, ... searched recursively; an ImageFolder "
            "layout works) - make one with `ipmix-fractals generate DIR` or pass fractals=None for "
            "procedural fractals"
        )
        if not root.exists():
            raise MixingSourceError(f"mixing folder '{root}' does not exist; {hint}")
        if not root.is_dir():
            raise MixingSourceError(f"mixing folder '{root}' is not a folder; {hint}")
        candidates = [str(p) for p in list_images(root)]
        if not candidates:
            raise MixingSourceError(f"mixing folder '{root}' contains no image files; {hint}")
        readable: list[str] = []
        unreadable: list[str] = []
        first_reason = ""
        for path in candidates:
            reason = _header_problem(path)
            if reason is None:
                readable.append(path)
            else:
                unreadable.append(path)
                first_reason = first_reason or reason
        if not readable:
            raise MixingSourceError(
                f"mixing folder '{root}': none of its {len(candidates)} image files could be read "
                f"(first: '{unreadable[0]}': {first_reason}); {hint}"
            )
        if unreadable:
            warnings.warn(
                f"mixing folder '{root}': skipping {len(unreadable)} unreadable image file(s) "
                f"(first: '{unreadable[0]}': {first_reason}); using the other {len(readable)}",
                UserWarning,
                stacklevel=3,
            )
        return readable

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int, size_hint: tuple[int, int] | None = None) -> np.ndarray:
        first_error: FileProblem | None = None
        for step in range(len(self.paths)):
            path = self.paths[(index + step) % len(self.paths)]
            if path in self._broken:
                continue
            try:
                return _as_rgb_uint8(decode_image(path), f"'{path}'")
            except (FileProblem, MixingSourceError) as exc:
                self._broken.add(path)
                first_error = first_error or exc
                warnings.warn(
                    f"mixing folder '{self.root}': {exc}; using the next picture instead", stacklevel=2
                )
        raise MixingSourceError(f"mixing folder '{self.root}': no picture could be decoded ({first_error})")

    def to_config(self) -> str:
        return self.root

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FolderSource:
        return cls(config["root"], cache_size=config.get("cache_size", DEFAULT_CACHE_SIZE))

    def __repr__(self) -> str:
        return f"FolderSource(root={self.root!r}, pictures={len(self)})"


@register_source("array")
class ArraySource(MixingSource):
    """Pictures held in memory: an ``(N, H, W[, C])`` array or a sequence of ``(H, W[, C])`` arrays.

    Pictures may be uint8 [0, 255] or float32 [0, 1], gray, RGB or RGBA; they are converted to RGB
    uint8 when first used. Picklable; not JSON-serializable (save the pictures to a folder for that).
    """

    def __init__(
        self, pictures: np.ndarray | Sequence[np.ndarray], cache_size: int = DEFAULT_CACHE_SIZE
    ) -> None:
        super().__init__(cache_size)
        if isinstance(pictures, np.ndarray):
            if pictures.ndim not in (3, 4):
                raise MixingSourceError(
                    f"in-memory mixing pictures have shape {pictures.shape}; expected (N, H, W) or (N, H, W, C)"
                )
            items = list(pictures)
        else:
            items = [np.asarray(p) for p in pictures]
        if not items:
            raise MixingSourceError("in-memory mixing source is empty; pass at least one picture")
        self.pictures = [_as_rgb_uint8(p, f"in-memory mixing picture {i}") for i, p in enumerate(items)]

    def __len__(self) -> int:
        return len(self.pictures)

    def load(self, index: int, size_hint: tuple[int, int] | None = None) -> np.ndarray:
        return self.pictures[index]

    def to_config(self) -> dict[str, Any]:
        raise TypeError(
            "an in-memory mixing source cannot be serialized to JSON/YAML; write the pictures to a "
            "folder and pass fractals='path/to/folder' instead (pickling works as is)"
        )

    def __repr__(self) -> str:
        return f"ArraySource(pictures={len(self)})"


def _default_source() -> MixingSource:
    factory = _SOURCE_TYPES.get("procedural")
    if factory is None:
        raise MixingSourceError(
            "no mixing source given: pass fractals='path/to/folder', an array of pictures, "
            "or per-call pictures under the transform's metadata key"
        )
    return factory.from_config({"type": "procedural"})


def as_source(spec: Any, cache_size: int = DEFAULT_CACHE_SIZE) -> MixingSource:
    """Build a :class:`MixingSource` from what a user passes as ``fractals=``.

    - ``None``: the procedural fractal source (default settings);
    - ``str`` / ``Path``: :class:`FolderSource`;
    - ``dict`` with a ``"type"`` key: a registered source (e.g. ``{"type": "procedural", "seed": 0}``);
    - ``np.ndarray`` or a list/tuple of arrays: :class:`ArraySource`;
    - a :class:`MixingSource`: returned as is.
    """
    if spec is None:
        return _default_source()
    if isinstance(spec, MixingSource):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        return FolderSource(spec, cache_size=cache_size)
    if isinstance(spec, dict):
        kind = spec.get("type")
        if kind not in _SOURCE_TYPES:
            raise MixingSourceError(
                f"unknown mixing source type {kind!r} in {spec!r}; known types: {sorted(_SOURCE_TYPES)}"
            )
        return _SOURCE_TYPES[kind].from_config(spec)
    if isinstance(spec, np.ndarray) or (
        isinstance(spec, (list, tuple)) and all(isinstance(p, np.ndarray) for p in spec)
    ):
        return ArraySource(spec, cache_size=cache_size)
    raise MixingSourceError(
        f"fractals={type(spec).__name__!s} is not a mixing source; expected a folder path, an array "
        "of pictures, a list of arrays, a source config dict, a MixingSource, or None"
    )
