"""Fractal kinds, the defaults of the procedural set and the renderer version (no numpy needed).

One source of truth for what the other modules of :mod:`albumentations_ipmix.fractals` and the
``ipmix-fractals`` command call a kind, how a kind list is validated and which kind a picture index
gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_KINDS",
    "DEFAULT_RENDER_SIZE",
    "KINDS",
    "MAX_AUTO_CACHE",
    "RENDERER_VERSION",
    "check_kind",
    "check_size",
    "kind_of",
    "parse_kinds",
]

#: The fractal families this package renders.
KINDS: tuple[str, ...] = ("ifs", "mandelbrot", "julia")
#: Kinds used when none are given (cycled through by index: 0 -> ifs, 1 -> mandelbrot, 2 -> julia, ...).
DEFAULT_KINDS: tuple[str, ...] = KINDS
#: Distinct pictures of the default procedural source (small, so every fitted picture stays cached).
DEFAULT_COUNT = 512
#: Render size (pixels, square) used when a source is asked for a picture without a size hint.
DEFAULT_RENDER_SIZE = 256
#: Version of the rendering algorithms; bumped whenever a (seed, index, size) renders differently.
#: ``ipmix-fractals generate`` records it and refuses to resume a set made by another version.
RENDERER_VERSION = 1
#: Upper bound of the automatic cache size of :class:`FractalSource` (``cache_size=None``).
MAX_AUTO_CACHE = 4096


def parse_kinds(kinds: str | Iterable[str]) -> tuple[str, ...]:
    """Validate a kind list (``"ifs,julia"`` or ``["ifs", "julia"]``); returns a tuple of names.

    Kinds may repeat to weight the mix (``"ifs,ifs,julia"`` is two thirds IFS).

    Raises:
        ValueError: empty list or an unknown name.
    """
    if isinstance(kinds, str):
        items = [k.strip().lower() for k in kinds.split(",") if k.strip()]
    else:
        items = [str(k).strip().lower() for k in kinds]
    if not items:
        raise ValueError(f"no fractal kinds given; expected a non-empty subset of {', '.join(KINDS)}")
    unknown = [k for k in items if k not in KINDS]
    if unknown:
        raise ValueError(
            f"unknown fractal kind(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(KINDS)}"
        )
    return tuple(items)


def kind_of(index: int, kinds: Sequence[str] = DEFAULT_KINDS) -> str:
    """Kind rendered for picture ``index``: the kinds are cycled through (``kinds[index % len]``)."""
    return kinds[index % len(kinds)]


def check_size(height: int, width: int) -> None:
    """Raise ``ValueError`` unless ``height`` and ``width`` (pixels) are both >= 1."""
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"fractal size must be positive, got {height}x{width} (height x width)")


def check_kind(kind: str) -> None:
    """Raise ``ValueError`` unless ``kind`` is one of :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"unknown fractal kind {kind!r}; expected one of {', '.join(KINDS)}")
