"""The quality filter: measures that reject degenerate renders (flat, tiny or noise).

A render is rejected when it is nearly one colour, when its detail covers only a tiny part of the
frame, or when it is structureless noise. Measures are computed on a small area-resized thumbnail,
so the filter costs a fraction of a render. Pure functions of the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "MAX_NOISE_SCORE",
    "MIN_COLOUR_STD",
    "MIN_COVERAGE",
    "QUALITY_SIZE",
    "TILE_DETAIL_STD",
    "TILE_GRID",
    "QualityMeasures",
    "passes_quality",
    "quality_measures",
]

#: Longest side (pixels) of the thumbnail on which the quality measures are computed (area resize).
QUALITY_SIZE = 64
#: Tiles per side of the coverage grid laid over the thumbnail.
TILE_GRID = 8
#: "Nearly one colour": reject when the RMS over R, G, B of the per-channel standard deviation
#: (values in [0, 1]) of the thumbnail is below this.
MIN_COLOUR_STD = 0.06
#: A coverage tile "has detail" when the standard deviation of its luminance ([0, 1]) reaches this.
TILE_DETAIL_STD = 0.03
#: "Tiny coverage": reject when fewer than this fraction of the coverage tiles have detail.
MIN_COVERAGE = 0.2
#: "Structureless noise": reject when the noise score - one minus the mean correlation of the
#: thumbnail's luminance with its right and lower neighbours - exceeds this. White noise scores
#: about 1, smooth pictures close to 0.
MAX_NOISE_SCORE = 0.65


@dataclass(frozen=True)
class QualityMeasures:
    """Measures of a render, computed on its thumbnail (longest side ``QUALITY_SIZE``).

    Attributes:
        colour_std: RMS over R, G, B of the per-channel standard deviation, values in [0, 1].
        coverage: fraction of the ``TILE_GRID x TILE_GRID`` tiles whose luminance std >= ``TILE_DETAIL_STD``.
        noise: one minus the mean lag-1 (right and down) correlation of the luminance; ~0 smooth, ~1 noise.
    """

    colour_std: float
    coverage: float
    noise: float

    @property
    def passed(self) -> bool:
        """True when no measure crosses its threshold (see :func:`passes_quality`)."""
        return (
            self.colour_std >= MIN_COLOUR_STD
            and self.coverage >= MIN_COVERAGE
            and self.noise <= MAX_NOISE_SCORE
        )

    @property
    def margin(self) -> float:
        """Smallest relative distance to a threshold (negative when a measure fails)."""
        return min(
            self.colour_std / MIN_COLOUR_STD - 1.0,
            self.coverage / MIN_COVERAGE - 1.0,
            (MAX_NOISE_SCORE - self.noise) / MAX_NOISE_SCORE,
        )


def _lag_correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if denom < 1e-12:
        return 1.0
    return float((a * b).sum()) / denom


def quality_measures(image: np.ndarray) -> QualityMeasures:
    """Compute the quality-filter measures of an RGB uint8 picture (any size).

    The picture is area-resized so its longest side is at most ``QUALITY_SIZE``; see
    :class:`QualityMeasures` for the definitions.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"quality_measures expects a uint8 (H, W, 3) RGB picture, got {image.dtype} {image.shape}"
        )
    h, w = image.shape[:2]
    scale = QUALITY_SIZE / max(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    rgb = image.astype(np.float32) / 255.0
    colour_std = float(np.sqrt(np.mean(rgb.reshape(-1, 3).var(axis=0))))
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    th, tw = luma.shape
    grid_h, grid_w = min(TILE_GRID, th), min(TILE_GRID, tw)
    tile_h, tile_w = th // grid_h, tw // grid_w
    tiles = luma[: grid_h * tile_h, : grid_w * tile_w].reshape(grid_h, tile_h, grid_w, tile_w)
    tile_std = tiles.std(axis=(1, 3))
    coverage = float(np.mean(tile_std >= TILE_DETAIL_STD))
    corrs = []
    if tw > 1:
        corrs.append(_lag_correlation(luma[:, :-1], luma[:, 1:]))
    if th > 1:
        corrs.append(_lag_correlation(luma[:-1, :], luma[1:, :]))
    noise = 1.0 - (float(np.mean(corrs)) if corrs else 1.0)
    return QualityMeasures(colour_std=colour_std, coverage=coverage, noise=noise)


def passes_quality(image: np.ndarray) -> bool:
    """True unless the picture is degenerate.

    Degenerate means any of: nearly one colour (``colour_std < MIN_COLOUR_STD``), tiny coverage
    (``coverage < MIN_COVERAGE``) or structureless noise (``noise > MAX_NOISE_SCORE``); measures from
    :func:`quality_measures`.
    """
    return quality_measures(image).passed
