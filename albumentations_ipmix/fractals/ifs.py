"""IFS rendering: the chaos game with many parallel walkers, a hit histogram and its painting.

:func:`render_ifs` is the renderer; the only random numbers it uses - one float32 uniform per
walker and step, which picks the map - are drawn in one place (:func:`walker_uniforms`) and handed
to the pure kernel :func:`chaos_game`. Everything after the walk (fitting the attractor into the
frame, counting hits, splatting, colouring, background) is deterministic.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .colour import LUT_SIZE, background, palette_lut, to_uint8
from .kinds import check_size
from .params import IFSParams

__all__ = [
    "IFS_BURN_IN",
    "IFS_MARGIN",
    "IFS_MAX_BURN_IN",
    "IFS_MAX_POINTS",
    "IFS_MIN_POINTS",
    "IFS_POINTS_PER_PIXEL",
    "IFS_SPLAT_STEP",
    "IFS_STEPS",
    "chaos_game",
    "render_ifs",
    "walker_uniforms",
]

#: Chaos-game points per output pixel (before clipping to ``[IFS_MIN_POINTS, IFS_MAX_POINTS]``).
IFS_POINTS_PER_PIXEL = 1.6
IFS_MIN_POINTS = 6_000
IFS_MAX_POINTS = 2_000_000
#: Chaos-game steps recorded per walker; the walker count is ``points / IFS_STEPS``.
IFS_STEPS = 48
#: Least and most steps discarded at the start: walkers start together on the attractor, and the
#: burn-in lasts until their random map sequences have spread them out (see :func:`walker_uniforms`).
IFS_BURN_IN = 6
IFS_MAX_BURN_IN = 40
#: Every ``IFS_SPLAT_STEP`` pixels of picture side widen the box each hit is splatted over by 2 px.
IFS_SPLAT_STEP = 160
#: Fraction of the frame left free around the attractor's bounding box on each side.
IFS_MARGIN = 0.04


def walker_uniforms(params: IFSParams, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """The chaos game's random numbers: float32 uniforms ``(burn_in + IFS_STEPS, walkers)``.

    ``walkers = max(64, ceil(n_points / IFS_STEPS))``. Every walker starts at the same point on the
    attractor (map 0's fixed point); walkers that drew the same maps so far share a position, so the
    burn-in lasts until the map sequences carry about ``log2(walkers) + 2`` bits (entropy of the map
    choice per step) and the walkers are spread out; it is the number of rows beyond ``IFS_STEPS``.
    """
    walkers = max(64, math.ceil(n_points / IFS_STEPS))
    probs = params.probs[params.probs > 0]
    bits_per_step = max(float(-(probs * np.log2(probs)).sum()), 0.25)
    burn_in = min(IFS_MAX_BURN_IN, max(IFS_BURN_IN, math.ceil((math.log2(walkers) + 2) / bits_per_step)))
    return rng.random((burn_in + IFS_STEPS, walkers), dtype=np.float32)


def chaos_game(params: IFSParams, uniform: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Move every walker ``len(uniform)`` steps; returns the last ``IFS_STEPS`` positions.

    Args:
        params: the IFS (maps and their probabilities).
        uniform: float32 ``(steps, walkers)`` in [0, 1), from :func:`walker_uniforms`; row ``t`` picks
            each walker's map at step ``t`` by inverse CDF of ``params.probs``.

    Returns:
        float32 ``x``, ``y`` and the int map indices, each ``(IFS_STEPS, walkers)``.
    """
    maps = params.maps.astype(np.float64)
    n = len(maps)
    steps, walkers = uniform.shape
    burn_in = steps - IFS_STEPS
    cdf = np.cumsum(params.probs)[:-1].astype(np.float32)
    choice = np.zeros(uniform.shape, np.intp)
    for edge in cdf:  # n <= 4 comparisons
        choice += uniform >= edge
    coef = maps.reshape(n, 6).T.astype(np.float32)[:, choice]  # (6, steps, walkers)
    a00, a01, b0, a10, a11, b1 = coef
    # Start on the attractor: the fixed point of map 0.
    try:
        start = np.linalg.solve(np.eye(2) - maps[0, :, :2], maps[0, :, 2])
    except np.linalg.LinAlgError:
        start = np.zeros(2)
    x = np.full(walkers, start[0], np.float32)
    y = np.full(walkers, start[1], np.float32)
    xs = np.empty((IFS_STEPS, walkers), np.float32)
    ys = np.empty((IFS_STEPS, walkers), np.float32)
    tmp = np.empty(walkers, np.float32)
    for step in range(steps):
        nx = a00[step] * x
        np.multiply(a01[step], y, out=tmp)
        nx += tmp
        nx += b0[step]
        np.multiply(a10[step], x, out=tmp)
        y *= a11[step]
        y += tmp
        y += b1[step]
        x = nx
        if step >= burn_in:
            xs[step - burn_in] = x
            ys[step - burn_in] = y
    return xs, ys, choice[burn_in:]


def _pixel_indices(xs: np.ndarray, ys: np.ndarray, height: int, width: int) -> np.ndarray:
    """Flat pixel index of every point once the points' bounding box is fitted into the frame.

    The aspect ratio is kept and ``IFS_MARGIN`` of the frame is left free on each side.
    """
    x0, x1 = float(xs.min()), float(xs.max())
    y0, y1 = float(ys.min()), float(ys.max())
    usable = 1.0 - 2.0 * IFS_MARGIN
    scale = usable * min(width / max(x1 - x0, 1e-9), height / max(y1 - y0, 1e-9))
    ix = ((xs - (x0 + x1) / 2) * scale + width / 2).astype(np.intp)
    iy = ((ys - (y0 + y1) / 2) * scale + height / 2).astype(np.intp)
    np.clip(ix, 0, width - 1, out=ix)
    np.clip(iy, 0, height - 1, out=iy)
    return (iy * width + ix).ravel()


def _hit_counts(
    params: IFSParams, pixel: np.ndarray, choice: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Hits per pixel (flat int) and, for the ``"map"`` scheme, the mean map colour per pixel.

    Hits are splatted over a ``splat x splat`` box (:func:`_splat_size`) so that thin structures keep
    about the weight they have at low resolution (a 256 px picture looks like a sharper 64 px one,
    not a fainter one).
    """
    hw = height * width
    n_maps = len(params.maps)
    if params.scheme == "map":
        per_map = np.bincount(choice.ravel() * hw + pixel, minlength=n_maps * hw).reshape(n_maps, hw)
        counts = per_map.sum(axis=0)
        # (3, N) @ (N, hw): colour sums per pixel; their ratio to the counts is the mean colour of the
        # maps that hit the pixel (a normalized convolution once both are splatted).
        sums = cv2.merge(
            list((params.colours.T.astype(np.float32) @ per_map.astype(np.float32)).reshape(3, height, width))
        )
    else:
        counts = np.bincount(pixel, minlength=hw)
        sums = None
    splat = _splat_size(height, width)
    if splat > 1:
        kernel = (splat, splat)
        counts_f = cv2.boxFilter(
            counts.reshape(height, width).astype(np.float32), -1, kernel, normalize=False
        )
        counts = np.rint(counts_f).astype(np.intp).ravel()
        if sums is not None:
            sums = cv2.boxFilter(sums, -1, kernel, normalize=False)
    if sums is not None:
        sums /= np.maximum(counts, 1).astype(np.float32).reshape(height, width, 1)
    return counts, sums


def _paint(
    params: IFSParams, counts: np.ndarray, map_colour: np.ndarray | None, height: int, width: int
) -> np.ndarray:
    """Paint the hit counts over the background; opacity grows with the log hit density."""
    # Opacity (and density-palette position) is a function of the integer hit count: one lookup table.
    count_hist = np.bincount(counts)
    hits = int(height * width - count_hist[0])
    if hits:
        cumulative = np.cumsum(count_hist[1:])
        top = 1 + int(np.searchsorted(cumulative, 0.99 * hits))  # 99th percentile of the hit counts
    else:
        top = 1
    levels = np.arange(count_hist.size, dtype=np.float64)
    density_lut = np.clip(np.log1p(levels) / math.log1p(top), 0.0, 1.0) ** params.gamma
    alpha_lut = np.where(levels > 0, 0.35 + 0.65 * density_lut, 0.0).astype(np.float32)
    alpha = alpha_lut[counts].reshape(height, width)
    if params.scheme == "density":
        colour_lut = palette_lut(params.palette)[(density_lut * (LUT_SIZE - 1)).astype(np.intp)]
        fg = colour_lut[counts].reshape(height, width, 3)
    elif params.scheme == "solid":
        fg = np.empty((height, width, 3), np.float32)
        fg[...] = params.colours[0].astype(np.float32)
    else:
        assert map_colour is not None
        fg = map_colour
    bg = background(params.background, params.bg_colours, params.bg_angle, height, width)
    fg -= bg
    fg *= alpha[:, :, None]
    fg += bg
    return to_uint8(fg)


def render_ifs(params: IFSParams, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Render an IFS attractor with the chaos game; returns uint8 RGB ``(height, width, 3)``.

    About ``IFS_POINTS_PER_PIXEL`` points per pixel are generated by ``points / IFS_STEPS`` walkers
    moved in parallel; the attractor's bounding box is fitted into the frame (aspect kept, margin
    ``IFS_MARGIN``), hits are counted per pixel with ``np.bincount`` and painted over the background
    with an opacity that grows with the log hit density. ``rng`` drives the walkers only.
    """
    check_size(height, width)
    n_points = int(np.clip(IFS_POINTS_PER_PIXEL * height * width, IFS_MIN_POINTS, IFS_MAX_POINTS))
    xs, ys, choice = chaos_game(params, walker_uniforms(params, n_points, rng))
    finite = np.isfinite(xs) & np.isfinite(ys)
    if not finite.all():  # cannot happen for contractive maps; guards against float32 surprises
        xs, ys, choice = xs[finite], ys[finite], choice[finite]
    pixel = _pixel_indices(xs, ys, height, width)
    counts, map_colour = _hit_counts(params, pixel, choice, height, width)
    return _paint(params, counts, map_colour, height, width)


def _splat_size(height: int, width: int) -> int:
    """Odd box side over which each chaos-game hit is spread: 1 below 160 px, 3 at 160-319 px, ..."""
    return 1 + 2 * (max(height, width) // IFS_SPLAT_STEP)
