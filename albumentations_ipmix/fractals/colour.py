"""Colouring kernels shared by the renderers: cosine palettes, backgrounds, float -> uint8.

Pure functions of their arguments (no randomness): the palette coefficients and background colours
are drawn by :mod:`.sampling`.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

__all__ = ["LUT_SIZE", "background", "luma", "palette_lut", "to_uint8"]

#: Entries of the colour lookup tables.
LUT_SIZE = 1024


def palette_lut(coeffs: np.ndarray, size: int = LUT_SIZE) -> np.ndarray:
    """Lookup table, shape (size, 3) float32 in [0, 1], of a cosine palette over ``t`` in [0, 1)."""
    t = np.arange(size, dtype=np.float64)[:, None] / size
    a, b, c, d = coeffs
    return np.clip(a + b * np.cos(2.0 * np.pi * (c * t + d)), 0.0, 1.0).astype(np.float32)


def luma(rgb: np.ndarray) -> float:
    """Luma (ITU-R 601 weights) of one RGB colour with components in [0, 1]."""
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


def background(kind: str, colours: np.ndarray, angle: float, height: int, width: int) -> np.ndarray:
    """Background image, float32 ``(height, width, 3)`` in [0, 1]."""
    if kind == "solid":
        return np.broadcast_to(colours[0, 0].astype(np.float32), (height, width, 3)).copy()
    if kind == "gradient":
        ys = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
        xs = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
        t = xs[None, :] * math.cos(angle) + ys[:, None] * math.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        c0, c1 = colours[0, 0].astype(np.float32), colours[0, 1].astype(np.float32)
        return c0 + t[:, :, None] * (c1 - c0)
    grid = colours.astype(np.float32)
    smooth = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth, 0.0, 1.0)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] (never negative here: convex blends of clipped colours) -> rounded, saturated uint8."""
    return cv2.convertScaleAbs(np.ascontiguousarray(image, dtype=np.float32), alpha=255.0)
