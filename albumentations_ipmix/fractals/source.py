"""The ``{"type": "procedural"}`` mixing source: fractals rendered lazily, by index, at the size asked.

:class:`FractalSource` is what ``IPMix()`` / ``PixMix()`` use when no ``fractals=`` is given. It is
index-based and picklable (the cache is per process); picture ``i`` is
:func:`~.render.render_fractal` of ``(kinds[i % len(kinds)], seed, i)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..sources import DEFAULT_CACHE_SIZE, MixingSource, MixingSourceError, register_source
from .kinds import DEFAULT_COUNT, DEFAULT_KINDS, DEFAULT_RENDER_SIZE, MAX_AUTO_CACHE, kind_of, parse_kinds
from .render import render_fractal

__all__ = ["FractalSource"]


#: Keys a ``{"type": "procedural", ...}`` config may have.
_CONFIG_KEYS = frozenset({"type", "kinds", "seed", "count", "cache_size"})


@register_source("procedural")
class FractalSource(MixingSource):
    """Procedural fractals as an IPMix/PixMix mixing source (index-based, picklable, lazily rendered).

    Picture ``i`` has kind ``kinds[i % len(kinds)]`` and is rendered by :func:`render_fractal` at the
    size the transform asks for (the covering size, ~1.125x the image side), so no resizing blurs it.
    Fitted pictures are kept in a per-process LRU cache; by default the cache holds every picture
    (``count`` entries, at most ``MAX_AUTO_CACHE``), so after a warm-up epoch no picture is rendered again.

    Args:
        kinds: fractal families to cycle through, a subset of ``("ifs", "mandelbrot", "julia")`` (a list
            or a comma-separated string; repeats weight the mix).
        seed: non-negative integer; together with the index it fixes every picture.
        count: number of distinct pictures (>= 1).
        cache_size: fitted pictures kept per process; ``None`` means ``min(count, MAX_AUTO_CACHE)``,
            but at least the library default.

    Example:
        >>> source = FractalSource(kinds=("julia",), seed=3, count=16)
        >>> source.load(5, (36, 36)).shape
        (36, 36, 3)
        >>> source.to_config()
        {'type': 'procedural', 'kinds': ['julia'], 'seed': 3, 'count': 16}
    """

    def __init__(
        self,
        kinds: str | Sequence[str] = DEFAULT_KINDS,
        seed: int = 0,
        count: int = DEFAULT_COUNT,
        cache_size: int | None = None,
    ) -> None:
        self.kinds = parse_kinds(kinds)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise MixingSourceError(f"procedural source seed must be a non-negative integer, got {seed!r}")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise MixingSourceError(f"procedural source count must be a positive integer, got {count!r}")
        self.seed = int(seed)
        self.count = int(count)
        if cache_size is None:
            cache_size = max(DEFAULT_CACHE_SIZE, min(self.count, MAX_AUTO_CACHE))
        super().__init__(cache_size)

    def __len__(self) -> int:
        return self.count

    def kind(self, index: int) -> str:
        """Fractal kind of picture ``index``."""
        return kind_of(index, self.kinds)

    def load(self, index: int, size_hint: tuple[int, int] | None = None) -> np.ndarray:
        """Render picture ``index`` at ``size_hint = (height, width)`` (default 256 x 256)."""
        if not 0 <= int(index) < self.count:
            raise IndexError(
                f"picture index {index} out of range for a procedural source of {self.count} pictures"
            )
        height, width = size_hint if size_hint is not None else (DEFAULT_RENDER_SIZE, DEFAULT_RENDER_SIZE)
        return render_fractal(self.kind(int(index)), self.seed, int(index), int(height), int(width))

    def to_config(self) -> dict[str, Any]:
        return {"type": "procedural", "kinds": list(self.kinds), "seed": self.seed, "count": self.count}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FractalSource:
        unknown = sorted(set(config) - _CONFIG_KEYS)
        if unknown:
            raise MixingSourceError(
                f"unknown key(s) {unknown} in procedural source config {config!r}; "
                f"expected some of {sorted(_CONFIG_KEYS)}"
            )
        try:
            return cls(
                kinds=config.get("kinds", DEFAULT_KINDS),
                seed=config.get("seed", 0),
                count=config.get("count", DEFAULT_COUNT),
                cache_size=config.get("cache_size"),
            )
        except ValueError as exc:
            raise MixingSourceError(f"invalid procedural source config {config!r}: {exc}") from exc

    def __repr__(self) -> str:
        return f"FractalSource(kinds={list(self.kinds)!r}, seed={self.seed}, count={self.count})"
