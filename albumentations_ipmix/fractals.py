"""Procedural fractal mixing pictures for IPMix and PixMix.

IPMix mixes training images with pictures of high structural complexity: the authors' 13,000-picture
set is made of IFS fractals with random colours and backgrounds, escape-time "orbit trap" fractals
(Mandelbrot and Julia sets of ``z -> z^2 + c``), fractal art and feature visualizations. This module
renders an equivalent set procedurally, deterministically and fast, so that ``IPMix()`` works with no
download:

- **IFS fractals** (:func:`sample_ifs`, :func:`render_ifs`): 2-4 random contractive affine maps whose
  singular values are drawn with the *sigma factor* ``sum_k (s1_k + 2 s2_k)`` inside the band
  ``[(5 + N) / 2, (6 + N) / 2]`` of Anderson & Farrell 2022 ("Improving fractal pre-training"), which
  keeps the attractor from collapsing to a point or spreading into noise. Rendered by the chaos game
  with thousands of walkers moved in parallel (one numpy step moves every walker), a hit histogram
  (``np.bincount``), one of three colour schemes and one of three backgrounds (solid, gradient,
  smooth noise).
- **Escape-time fractals** (:func:`sample_escape`, :func:`render_escape`): Mandelbrot (``z0 = 0``,
  ``c`` = pixel) and Julia (``c`` fixed, ``z0`` = pixel) sets with orbit-trap colouring (the smallest
  distance of the orbit to a point, a ring or a cross) blended with the smooth iteration count,
  iterated over all pixels at once in float32 with the escaped pixels compacted away every few
  iterations. The viewport is found by a coarse-to-fine search that zooms onto boundary detail.
- **A quality filter** (:func:`quality_measures`, :func:`passes_quality`) that rejects nearly
  one-coloured pictures, pictures whose detail covers only a tiny part of the frame, and structureless
  noise; :func:`render_fractal` resamples deterministically (next attempt number) until a render passes.
- :class:`FractalSource`, registered as ``{"type": "procedural"}``: the index-based, picklable mixing
  source used by ``IPMix()`` / ``PixMix()`` when no ``fractals=`` is given.

Every picture is a pure function of ``(seed, index, kinds, height, width)``: its parameters come from
``np.random.SeedSequence([seed, index, attempt])`` and do not depend on the size, so the same index
is the same fractal at 64 px and at 512 px, unless a render fails the quality filter at one size only
(then the next attempt is used at that size). Samplers take an explicit
:class:`numpy.random.Generator`; renderers take parameters (and, for the chaos game, a generator)
and never touch global state.

This module imports numpy and OpenCV only (no torch, no CLI libraries).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .sources import DEFAULT_CACHE_SIZE, MixingSource, MixingSourceError, register_source

__all__ = [
    "DEFAULT_COUNT",
    "DEFAULT_KINDS",
    "KINDS",
    "MAX_ATTEMPTS",
    "MAX_NOISE_SCORE",
    "MIN_COLOUR_STD",
    "MIN_COVERAGE",
    "QUALITY_SIZE",
    "RENDERER_VERSION",
    "SIGMA_FACTOR_BAND",
    "TILE_DETAIL_STD",
    "EscapeParams",
    "FractalSource",
    "IFSParams",
    "QualityMeasures",
    "kind_of",
    "parse_kinds",
    "passes_quality",
    "quality_measures",
    "render_escape",
    "render_fractal",
    "render_ifs",
    "render_params",
    "sample_escape",
    "sample_ifs",
    "sample_params",
]

#: The fractal families this module renders.
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

# ----------------------------------------------------------------------------------------------
# Quality filter
# ----------------------------------------------------------------------------------------------

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
#: Attempts (sub-seeds 0, 1, ...) before :func:`render_fractal` gives up and returns the best render.
MAX_ATTEMPTS = 24
#: Side (pixels) of the cheap probe render that screens parameters before a large render.
PROBE_SIZE = 64

# ----------------------------------------------------------------------------------------------
# IFS sampling and rendering constants
# ----------------------------------------------------------------------------------------------

#: Sigma-factor band of Anderson & Farrell 2022 for ``N`` maps: ``[(5 + N) / 2, (6 + N) / 2]``.
SIGMA_FACTOR_BAND: tuple[float, float] = (5.0, 6.0)
#: Largest singular value of any map (< 1 keeps every map contractive).
SIGMA_MAX = 0.98
#: Chaos-game points per output pixel (before clipping to ``[IFS_MIN_POINTS, IFS_MAX_POINTS]``).
IFS_POINTS_PER_PIXEL = 1.6
IFS_MIN_POINTS = 6_000
IFS_MAX_POINTS = 2_000_000
#: Chaos-game steps recorded per walker; the walker count is ``points / IFS_STEPS``.
IFS_STEPS = 48
#: Least and most steps discarded at the start: walkers start together on the attractor, and the
#: burn-in lasts until their random map sequences have spread them out (see ``_chaos_game``).
IFS_BURN_IN = 6
IFS_MAX_BURN_IN = 40
#: Every ``IFS_SPLAT_STEP`` pixels of picture side widen the box each hit is splatted over by 2 px.
IFS_SPLAT_STEP = 160
#: Fraction of the frame left free around the attractor's bounding box on each side.
IFS_MARGIN = 0.04

# ----------------------------------------------------------------------------------------------
# Escape-time constants
# ----------------------------------------------------------------------------------------------

#: Escape radius: an orbit has escaped once ``|z| > ESCAPE_RADIUS``.
ESCAPE_RADIUS = 8.0
#: Escaped pixels are removed from the working set every this many iterations.
COMPACT_EVERY = 4
#: Iteration budget: ``ESCAPE_BASE_ITER + ESCAPE_ITER_PER_OCTAVE * log2(overview / half_width)``.
ESCAPE_BASE_ITER = 32
ESCAPE_ITER_PER_OCTAVE = 5
ESCAPE_MAX_ITER = 128
#: Overview viewports (centre, half-height in complex units) the boundary search starts from.
MANDELBROT_OVERVIEW = (complex(-0.6, 0.0), 1.3)
JULIA_OVERVIEW = (0j, 1.5)
#: Log-uniform range of the final half-height of the viewport.
MANDELBROT_HALF_RANGE = (2e-3, 1.0)
JULIA_HALF_RANGE = (0.04, 1.5)
#: Probe grid side and zoom factor per step of the coarse-to-fine boundary search.
SEARCH_GRID = 24
SEARCH_ZOOM = 4.0
#: Entries of the colour lookup tables.
LUT_SIZE = 1024
TRAPS = ("point", "ring", "cross")


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


# ----------------------------------------------------------------------------------------------
# Colours
# ----------------------------------------------------------------------------------------------


def _sample_cosine_palette(rng: np.random.Generator) -> np.ndarray:
    """Coefficients ``(a, b, c, d)``, shape (4, 3), of ``colour(t) = a + b cos(2 pi (c t + d))``."""
    a = rng.uniform(0.3, 0.7, 3)
    b = rng.uniform(0.25, 0.5, 3)
    c = rng.uniform(0.5, 1.5, 3) if rng.random() < 0.5 else np.full(3, rng.choice([1.0, 2.0]))
    d = rng.uniform(0.0, 1.0, 3)
    return np.stack([a, b, c, d])


def _palette_lut(coeffs: np.ndarray, size: int = LUT_SIZE) -> np.ndarray:
    """Lookup table, shape (size, 3) float32 in [0, 1], of a cosine palette over ``t`` in [0, 1)."""
    t = np.arange(size, dtype=np.float64)[:, None] / size
    a, b, c, d = coeffs
    return np.clip(a + b * np.cos(2.0 * np.pi * (c * t + d)), 0.0, 1.0).astype(np.float32)


def _luma(rgb: np.ndarray) -> float:
    return float(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])


# ----------------------------------------------------------------------------------------------
# IFS
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IFSParams:
    """An iterated function system and how to paint it.

    Attributes:
        maps: ``(N, 2, 3)`` affine maps ``x -> A x + b`` (``A = maps[:, :, :2]``, ``b = maps[:, :, 2]``).
        probs: ``(N,)`` probabilities of choosing each map (proportional to ``|det A|``).
        sigma_factor: ``sum_k (s1_k + 2 s2_k)`` of the maps' singular values.
        scheme: ``"map"`` (each map has a colour), ``"density"`` (palette over log hit density) or
            ``"solid"`` (one colour, opacity from density).
        colours: ``(N, 3)`` map colours in [0, 1] (``"map"``), first row used by ``"solid"``.
        palette: ``(4, 3)`` cosine-palette coefficients (``"density"``).
        gamma: exponent applied to the normalized log density, in [0.4, 1].
        background: ``"solid"``, ``"gradient"`` or ``"noise"``.
        bg_colours: ``(K, K, 3)`` colours: ``K = 1`` solid, ``K = 2`` gradient ends (row 0), noise grid.
        bg_angle: gradient direction (radians).
    """

    maps: np.ndarray
    probs: np.ndarray
    sigma_factor: float
    scheme: str
    colours: np.ndarray
    palette: np.ndarray
    gamma: float
    background: str
    bg_colours: np.ndarray
    bg_angle: float


def _rotation(theta: float) -> np.ndarray:
    cos, sin = math.cos(theta), math.sin(theta)
    return np.array([[cos, -sin], [sin, cos]])


def _split_sigma_factor(rng: np.random.Generator, alpha: float, n: int) -> np.ndarray:
    """Shares ``s_k`` (summing to ``alpha``) of the sigma factor, each in ``(0, 3 * SIGMA_MAX]``."""
    cap = 3.0 * SIGMA_MAX
    shares = alpha * rng.dirichlet(np.full(n, 2.0))
    for _ in range(64):
        if shares.max() <= cap:
            return shares
        shares = alpha * rng.dirichlet(np.full(n, 2.0))
    # Deterministic repair: move the excess of over-full shares to the others.
    shares = np.minimum(shares, cap)
    missing = alpha - shares.sum()
    room = cap - shares
    return shares + missing * room / room.sum()


def sample_ifs(rng: np.random.Generator) -> IFSParams:
    """Draw a random IFS (2-4 maps, sigma factor in the Anderson & Farrell band) and its colouring.

    Each map's linear part is ``R(theta) diag(s1, s2) R(phi) diag(d1, d2)`` with rotations uniform in
    ``[0, 2 pi)``, reflections ``d = +-1`` and singular values ``SIGMA_MAX >= s1 >= s2 >= 0`` such that
    ``s1 + 2 s2`` equals the map's share of a sigma factor drawn uniformly from
    ``[(5 + N) / 2, (6 + N) / 2]``; translations are uniform in ``[-1, 1]^2``.
    """
    n = int(rng.integers(2, 5))
    lo, hi = SIGMA_FACTOR_BAND
    alpha = float(rng.uniform((lo + n) / 2.0, (hi + n) / 2.0))
    shares = _split_sigma_factor(rng, alpha, n)
    maps = np.empty((n, 2, 3))
    dets = np.empty(n)
    for k, share in enumerate(shares):
        s1 = rng.uniform(share / 3.0, min(share, SIGMA_MAX))
        s2 = (share - s1) / 2.0
        flips = np.diag(rng.choice([-1.0, 1.0], 2))
        linear = (
            _rotation(rng.uniform(0, 2 * np.pi)) @ np.diag([s1, s2]) @ _rotation(rng.uniform(0, 2 * np.pi))
        )
        maps[k, :, :2] = linear @ flips
        maps[k, :, 2] = rng.uniform(-1.0, 1.0, 2)
        dets[k] = s1 * s2
    probs = np.maximum(dets, 1e-3)
    probs = probs / probs.sum()

    scheme = str(rng.choice(["map", "density", "solid"]))
    colours = rng.uniform(0.0, 1.0, (n, 3))
    palette = _sample_cosine_palette(rng)
    gamma = float(rng.uniform(0.4, 1.0))
    background = str(rng.choice(["solid", "gradient", "noise"]))
    if background == "solid":
        bg = rng.uniform(0.0, 1.0, (1, 1, 3))
    elif background == "gradient":
        bg = rng.uniform(0.0, 1.0, (2, 2, 3))
    else:
        g = int(rng.integers(2, 6))
        bg = rng.uniform(0.0, 1.0, (g, g, 3))
    # Keep the foreground readable: push the background's brightness away from the foreground's.
    fg_luma = _luma(colours[0]) if scheme == "solid" else float(np.mean([_luma(c) for c in colours]))
    if scheme == "density":
        fg_luma = _luma(palette[0])
    bg_luma = float(np.mean(0.299 * bg[..., 0] + 0.587 * bg[..., 1] + 0.114 * bg[..., 2]))
    if abs(bg_luma - fg_luma) < 0.3:
        target = 0.12 if fg_luma >= 0.5 else 0.88
        bg = np.clip(bg * 0.35 + (target - 0.35 * bg_luma), 0.0, 1.0)
    return IFSParams(
        maps=maps,
        probs=probs,
        sigma_factor=alpha,
        scheme=scheme,
        colours=colours,
        palette=palette,
        gamma=gamma,
        background=background,
        bg_colours=bg,
        bg_angle=float(rng.uniform(0, 2 * np.pi)),
    )


def _background(kind: str, colours: np.ndarray, angle: float, height: int, width: int) -> np.ndarray:
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


def _chaos_game(params: IFSParams, n_points: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Run the chaos game; returns float32 ``x``, ``y`` and int map indices, each ``(steps, walkers)``."""
    maps = params.maps.astype(np.float64)
    n = len(maps)
    walkers = max(64, math.ceil(n_points / IFS_STEPS))
    # Every walker starts at the same point on the attractor (map 0's fixed point); walkers that drew
    # the same maps so far share a position, so discard steps until the map sequences carry about
    # log2(walkers) + 2 bits (entropy of the map choice per step) and the walkers are spread out.
    probs = params.probs[params.probs > 0]
    bits_per_step = max(float(-(probs * np.log2(probs)).sum()), 0.25)
    burn_in = min(IFS_MAX_BURN_IN, max(IFS_BURN_IN, math.ceil((math.log2(walkers) + 2) / bits_per_step)))
    # Map choice by inverse CDF of one float32 uniform per walker and step (n <= 4 comparisons).
    cdf = np.cumsum(params.probs)[:-1].astype(np.float32)
    uniform = rng.random((burn_in + IFS_STEPS, walkers), dtype=np.float32)
    choice = np.zeros(uniform.shape, np.intp)
    for edge in cdf:
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
    for step in range(burn_in + IFS_STEPS):
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


def render_ifs(params: IFSParams, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Render an IFS attractor with the chaos game; returns uint8 RGB ``(height, width, 3)``.

    About ``IFS_POINTS_PER_PIXEL`` points per pixel are generated by ``points / IFS_STEPS`` walkers
    moved in parallel; the attractor's bounding box is fitted into the frame (aspect kept, margin
    ``IFS_MARGIN``), hits are counted per pixel with ``np.bincount`` and painted over the background
    with an opacity that grows with the log hit density. ``rng`` drives the walkers only.
    """
    _check_size(height, width)
    hw = height * width
    n_points = int(np.clip(IFS_POINTS_PER_PIXEL * hw, IFS_MIN_POINTS, IFS_MAX_POINTS))
    xs, ys, choice = _chaos_game(params, n_points, rng)
    finite = np.isfinite(xs) & np.isfinite(ys)
    if not finite.all():  # cannot happen for contractive maps; guards against float32 surprises
        xs, ys, choice = xs[finite], ys[finite], choice[finite]
    x0, x1 = float(xs.min()), float(xs.max())
    y0, y1 = float(ys.min()), float(ys.max())
    usable = 1.0 - 2.0 * IFS_MARGIN
    scale = usable * min(width / max(x1 - x0, 1e-9), height / max(y1 - y0, 1e-9))
    ix = ((xs - (x0 + x1) / 2) * scale + width / 2).astype(np.intp)
    iy = ((ys - (y0 + y1) / 2) * scale + height / 2).astype(np.intp)
    np.clip(ix, 0, width - 1, out=ix)
    np.clip(iy, 0, height - 1, out=iy)
    pixel = (iy * width + ix).ravel()

    n_maps = len(params.maps)
    splat = _splat_size(height, width)
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
    if splat > 1:
        # Splat every hit over a splat x splat box so that thin structures keep about the weight they have
        # at low resolution (a 256 px picture looks like a sharper 64 px one, not a fainter one).
        kernel = (splat, splat)
        counts_f = cv2.boxFilter(
            counts.reshape(height, width).astype(np.float32), -1, kernel, normalize=False
        )
        counts = np.rint(counts_f).astype(np.intp).ravel()
        if sums is not None:
            sums = cv2.boxFilter(sums, -1, kernel, normalize=False)
    fg = None
    if sums is not None:
        sums /= np.maximum(counts, 1).astype(np.float32).reshape(height, width, 1)
        fg = sums
    # Opacity (and density-palette position) is a function of the integer hit count: one lookup table.
    count_hist = np.bincount(counts)
    hits = int(hw - count_hist[0])
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
        colour_lut = _palette_lut(params.palette)[(density_lut * (LUT_SIZE - 1)).astype(np.intp)]
        fg = colour_lut[counts].reshape(height, width, 3)
    elif params.scheme == "solid":
        fg = np.empty((height, width, 3), np.float32)
        fg[...] = params.colours[0].astype(np.float32)
    assert fg is not None
    bg = _background(params.background, params.bg_colours, params.bg_angle, height, width)
    fg -= bg
    fg *= alpha[:, :, None]
    fg += bg
    return _to_uint8(fg)


def _splat_size(height: int, width: int) -> int:
    """Odd box side over which each chaos-game hit is spread: 1 below 160 px, 3 at 160-319 px, ..."""
    return 1 + 2 * (max(height, width) // IFS_SPLAT_STEP)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] (never negative here: convex blends of clipped colours) -> rounded, saturated uint8."""
    return cv2.convertScaleAbs(np.ascontiguousarray(image, dtype=np.float32), alpha=255.0)


def _check_size(height: int, width: int) -> None:
    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"fractal size must be positive, got {height}x{width} (height x width)")


# ----------------------------------------------------------------------------------------------
# Escape-time fractals
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EscapeParams:
    """An escape-time fractal of ``z -> z^2 + c`` and its orbit-trap colouring.

    Attributes:
        kind: ``"mandelbrot"`` (``z0 = 0``, ``c`` = pixel) or ``"julia"`` (``c`` fixed, ``z0`` = pixel).
        center: viewport centre (complex plane).
        half_height: half the viewport's height in complex units (the width follows the aspect ratio).
        angle: viewport rotation (radians).
        c: the Julia constant (unused for Mandelbrot).
        max_iter: iteration budget; orbits still bounded after it are "interior".
        trap: ``"point"`` (distance to ``trap_point``), ``"ring"`` (to the circle of radius
            ``trap_radius`` around it) or ``"cross"`` (to the two axis-parallel lines through it).
        trap_point, trap_radius: trap geometry.
        palette: ``(4, 3)`` cosine-palette coefficients of the exterior colours.
        interior_palette: ``(4, 3)`` coefficients for the interior (bounded orbits).
        trap_freq: palette cycles per unit of ``log`` trap distance.
        iter_weight: palette cycles per unit of ``sqrt`` smooth iteration count (exterior only).
        phase: palette offset in [0, 1).
    """

    kind: str
    center: complex
    half_height: float
    angle: float
    c: complex
    max_iter: int
    trap: str
    trap_point: complex
    trap_radius: float
    palette: np.ndarray
    interior_palette: np.ndarray
    trap_freq: float
    iter_weight: float
    phase: float


def _viewport(
    center: complex, half_height: float, angle: float, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts (float32, ``(height, width)``) of the pixel centres of a viewport."""
    step = 2.0 * half_height / height
    ys = ((np.arange(height) + 0.5) - height / 2.0) * step
    xs = ((np.arange(width) + 0.5) - width / 2.0) * step
    cos, sin = math.cos(angle), math.sin(angle)
    re = center.real + xs[None, :] * cos - ys[:, None] * sin
    im = center.imag + xs[None, :] * sin + ys[:, None] * cos
    return re.astype(np.float32), im.astype(np.float32)


def _escape_counts(kind: str, re: np.ndarray, im: np.ndarray, c: complex, max_iter: int) -> np.ndarray:
    """Escape count per point: how many of the first ``max_iter`` orbit points (``z1 = c, z2, ...`` for
    Mandelbrot, ``z0 = point, z1, ...`` for Julia) lie within ``ESCAPE_RADIUS`` (``max_iter`` for a
    bounded orbit). float64, for the small probe grids of the viewport search."""
    if kind == "mandelbrot":
        cr, ci = re.astype(np.float64), im.astype(np.float64)
        zr, zi = cr.copy(), ci.copy()
    else:
        cr = np.full(re.shape, c.real)
        ci = np.full(re.shape, c.imag)
        zr, zi = re.astype(np.float64), im.astype(np.float64)
    # After escaping (|z| > ESCAPE_RADIUS >= 2 + |c|) |z| grows monotonically to inf and then NaN, so
    # counting the iterations with |z| <= ESCAPE_RADIUS gives the escape iteration without masking.
    counts = np.zeros(re.shape, np.int32)
    bail = ESCAPE_RADIUS**2
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(max_iter):
            zr2 = zr * zr
            zi2 = zi * zi
            counts += zr2 + zi2 <= bail
            zi = 2.0 * zr * zi + ci
            zr = zr2 - zi2 + cr
    return counts


def _boundary_pick(rng: np.random.Generator, counts: np.ndarray, max_iter: int) -> tuple[int, int] | None:
    """A random probe cell on the set's boundary (bounded cells next to escaping ones, or vice versa).

    Without a bounded cell in the probe, the slowest-escaping quarter of the cells stands in (they
    hug the boundary); ``None`` when nothing in the probe is near the set.
    """
    inside = counts >= max_iter
    kernel = np.ones((3, 3), np.uint8)
    inside_u8 = inside.astype(np.uint8)
    boundary = (cv2.dilate(inside_u8, kernel) > 0) & (cv2.erode(inside_u8, kernel) == 0)
    cells = np.flatnonzero(boundary)
    if cells.size == 0:
        slow_floor = max(4, max_iter // 4, int(np.quantile(counts, 0.75)))
        cells = np.flatnonzero(counts >= slow_floor)
    if cells.size == 0:
        return None
    cell = int(cells[rng.integers(cells.size)])
    return divmod(cell, counts.shape[1])


def _iter_budget(half_height: float, overview_half: float) -> int:
    octaves = max(0.0, math.log2(overview_half / half_height))
    return int(min(ESCAPE_MAX_ITER, ESCAPE_BASE_ITER + ESCAPE_ITER_PER_OCTAVE * octaves))


def _zoom_to_boundary(
    rng: np.random.Generator, kind: str, c: complex, overview: tuple[complex, float], target_half: float
) -> tuple[complex, float]:
    """Coarse-to-fine search for a viewport ``(centre, half_height)`` with boundary detail.

    Starting from the overview, each step probes a ``SEARCH_GRID``-square grid, moves the centre to a
    random boundary cell and zooms in by ``SEARCH_ZOOM``, until ``target_half``; if a probe finds no
    boundary the zoom stops at the last level that had one.
    """
    center, half = overview
    while True:
        iters = _iter_budget(half, overview[1])
        re, im = _viewport(center, half, 0.0, SEARCH_GRID, SEARCH_GRID)
        pick = _boundary_pick(rng, _escape_counts(kind, re, im, c, iters), iters)
        if pick is None:
            return center, min(half * SEARCH_ZOOM, overview[1])
        row, col = pick
        jitter = rng.uniform(-0.5, 0.5, 2)
        center = complex(float(re[row, col]), float(im[row, col])) + complex(*jitter) * (
            2 * half / SEARCH_GRID
        )
        if half <= target_half:
            return center, half
        half = max(half / SEARCH_ZOOM, target_half)


def sample_escape(rng: np.random.Generator, kind: str) -> EscapeParams:
    """Draw an escape-time fractal (``kind`` ``"mandelbrot"`` or ``"julia"``) with boundary detail.

    The zoom is log-uniform in ``MANDELBROT_HALF_RANGE`` / ``JULIA_HALF_RANGE``; the centre comes from
    a coarse-to-fine search over ``SEARCH_GRID``-sized probes that zooms onto cells next to the set's
    boundary. Julia constants are themselves boundary points of the Mandelbrot set (where Julia sets
    are most intricate). The iteration budget grows with the zoom depth.
    """
    if kind not in ("mandelbrot", "julia"):
        raise ValueError(f"escape-time kind must be 'mandelbrot' or 'julia', got {kind!r}")
    if kind == "mandelbrot":
        c = 0j
        lo, hi = MANDELBROT_HALF_RANGE
        overview = MANDELBROT_OVERVIEW
    else:
        c, _ = _zoom_to_boundary(rng, "mandelbrot", 0j, MANDELBROT_OVERVIEW, 0.02)
        lo, hi = JULIA_HALF_RANGE
        overview = JULIA_OVERVIEW
    half = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    center, half = _zoom_to_boundary(rng, kind, c, overview, half)
    trap = str(rng.choice(TRAPS))
    radius = float(rng.uniform(0.2, 1.0))
    trap_point = complex(*rng.uniform(-0.8, 0.8, 2))
    return EscapeParams(
        kind=kind,
        center=center,
        half_height=half,
        angle=float(rng.uniform(0, 2 * np.pi)),
        c=c,
        max_iter=_iter_budget(half, overview[1]),
        trap=trap,
        trap_point=trap_point,
        trap_radius=radius,
        palette=_sample_cosine_palette(rng),
        interior_palette=_sample_cosine_palette(rng),
        trap_freq=float(rng.uniform(0.15, 0.6) * rng.choice([-1.0, 1.0])),
        iter_weight=float(rng.uniform(0.0, 0.35)),
        phase=float(rng.uniform(0.0, 1.0)),
    )


def _orbit_traps(
    params: EscapeParams, re: np.ndarray, im: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iterate every pixel; returns flat (trap distance, smooth iteration count, escaped mask).

    Works on float32 arrays of the still-bounded pixels only: every ``COMPACT_EVERY`` iterations the
    escaped ones are written out and removed. The trap minimum only takes iterates with
    ``|z| <= ESCAPE_RADIUS``; the smooth count ``n + 1 - log2(log|z_n|)`` is read when a pixel is
    removed (it is invariant along the escaped orbit, so the delay does not change it).
    """
    n = re.size
    if params.kind == "mandelbrot":
        cr, ci = re.ravel().copy(), im.ravel().copy()
        zr, zi = cr.copy(), ci.copy()  # z1 = c
    else:
        zr, zi = re.ravel().copy(), im.ravel().copy()
        cr = np.full(n, params.c.real, np.float32)
        ci = np.full(n, params.c.imag, np.float32)
    px, py = np.float32(params.trap_point.real), np.float32(params.trap_point.imag)
    radius = np.float32(params.trap_radius)
    bail = np.float32(ESCAPE_RADIUS**2)
    first_index = 1 if params.kind == "julia" else 2  # orbit index n of z after the first update
    # Point and ring traps lie within |z| < 2.2 and every orbit starts within ~2.5 of the origin, so
    # iterates past the escape radius (|z| > 8) can never be the minimum distance to them; the cross
    # trap is unbounded and needs the explicit mask.
    masked = params.trap == "cross"

    idx = np.arange(n)
    trap = np.full(n, np.inf, np.float32)
    out_trap = np.full(n, np.inf, np.float32)
    out_nu = np.zeros(n, np.float32)
    escaped_out = np.zeros(n, bool)
    buffers = np.empty((4, n), np.float32)
    inside_buffer = np.empty(n, bool)
    with np.errstate(over="ignore", invalid="ignore"):
        for it in range(params.max_iter):
            m = idx.size
            zr2, zi2, d1, d2 = buffers[:, :m]
            np.multiply(zr, zr, out=zr2)
            np.multiply(zi, zi, out=zi2)
            # trap distance (squared) of the current iterate
            np.subtract(zr, px, out=d1)
            np.subtract(zi, py, out=d2)
            if params.trap == "cross":
                np.abs(d1, out=d1)
                np.abs(d2, out=d2)
                np.minimum(d1, d2, out=d1)
                d1 *= d1
            else:
                d1 *= d1
                d2 *= d2
                d1 += d2
                if params.trap == "ring":
                    np.sqrt(d1, out=d1)
                    d1 -= radius
                    d1 *= d1
            if masked:
                inside = inside_buffer[:m]
                np.add(zr2, zi2, out=d2)
                np.less_equal(d2, bail, out=inside)
                np.minimum(trap, d1, out=trap, where=inside)
            else:
                np.minimum(trap, d1, out=trap)
            # z <- z^2 + c
            zi *= zr
            zi += zi
            zi += ci
            np.subtract(zr2, zi2, out=zr)
            zr += cr
            last = it == params.max_iter - 1
            if (it + 1) % COMPACT_EVERY == 0 or last:
                # Between two compactions an escaped |z| grows to at most ~1e15: no float32 overflow.
                mag = zr * zr
                mag += zi * zi
                gone = ~(mag <= bail)
                if gone.any():
                    out_idx = idx[gone]
                    out_trap[out_idx] = trap[gone]
                    logmag = 0.5 * np.log(mag[gone])
                    out_nu[out_idx] = (it + first_index + 1) - np.log2(logmag)
                    escaped_out[out_idx] = True
                    keep = ~gone
                    idx, zr, zi, cr, ci, trap = idx[keep], zr[keep], zi[keep], cr[keep], ci[keep], trap[keep]
                    if idx.size == 0:
                        break
        out_trap[idx] = trap
    return out_trap, out_nu, escaped_out


def render_escape(params: EscapeParams, height: int, width: int) -> np.ndarray:
    """Render an escape-time fractal with orbit-trap colouring; returns uint8 RGB ``(height, width, 3)``.

    Exterior pixels take ``palette(trap_freq * log d + iter_weight * sqrt(nu) + phase)`` where ``d`` is
    the orbit's smallest trap distance and ``nu`` the smooth escape count; interior pixels take the
    interior palette at ``trap_freq * log d + phase``, shaded darker. Deterministic (no randomness).
    """
    _check_size(height, width)
    re, im = _viewport(params.center, params.half_height, params.angle, height, width)
    trap, nu, escaped = _orbit_traps(params, re, im)
    # u = trap_freq * log d + phase (+ iter_weight * sqrt(nu) outside), d = sqrt(trap)
    u = np.log(np.maximum(trap, np.float32(1e-12)))
    u *= np.float32(0.5 * params.trap_freq)
    u += np.float32(params.phase)
    if params.iter_weight:
        np.sqrt(np.maximum(nu, np.float32(0.0)), out=nu)
        nu *= np.float32(params.iter_weight)
        u += np.where(escaped, nu, np.float32(0.0))
    np.mod(u, np.float32(1.0), out=u)
    u *= np.float32(LUT_SIZE - 1)
    lut_index = u.astype(np.intp)
    np.clip(lut_index, 0, LUT_SIZE - 1, out=lut_index)
    lut_index[~escaped] += LUT_SIZE  # second half of the table: interior palette
    lut = np.concatenate(
        [_palette_lut(params.palette), _palette_lut(params.interior_palette) * np.float32(0.6)]
    )
    return _to_uint8(lut)[lut_index].reshape(height, width, 3)


# ----------------------------------------------------------------------------------------------
# Quality filter
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# One picture per (seed, index)
# ----------------------------------------------------------------------------------------------


def sample_params(kind: str, rng: np.random.Generator) -> IFSParams | EscapeParams:
    """Draw the parameters of one picture of ``kind`` (see :func:`sample_ifs`, :func:`sample_escape`)."""
    if kind == "ifs":
        return sample_ifs(rng)
    if kind in ("mandelbrot", "julia"):
        return sample_escape(rng, kind)
    raise ValueError(f"unknown fractal kind {kind!r}; expected one of {', '.join(KINDS)}")


def render_params(
    params: IFSParams | EscapeParams, height: int, width: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Render sampled parameters at ``height x width``; ``rng`` drives the IFS chaos game (required)."""
    if isinstance(params, IFSParams):
        if rng is None:
            raise ValueError("rendering an IFS needs a np.random.Generator for the chaos game")
        return render_ifs(params, height, width, rng)
    return render_escape(params, height, width)


def _probe_shape(height: int, width: int) -> tuple[int, int]:
    scale = PROBE_SIZE / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _attempt(
    kind: str, seed: int, index: int, attempt: int
) -> tuple[IFSParams | EscapeParams, np.random.SeedSequence]:
    """Parameters of one attempt and the seed of its renderer's generator (chaos game)."""
    param_seed, render_seed = np.random.SeedSequence([int(seed), int(index), int(attempt)]).spawn(2)
    return sample_params(kind, np.random.default_rng(param_seed)), render_seed


def render_fractal(kind: str, seed: int, index: int, height: int, width: int) -> np.ndarray:
    """The picture ``(seed, index)`` of ``kind`` at ``height x width``: uint8 RGB ``(height, width, 3)``.

    Attempt ``a = 0, 1, ...`` splits ``np.random.SeedSequence([seed, index, a])`` into a parameter
    generator and a render generator. When the picture is larger than ``PROBE_SIZE``, the parameters
    are first screened on a ``PROBE_SIZE`` render (cheap), then the full render must pass the quality
    filter too; smaller pictures are checked directly. The first attempt that passes is returned;
    after ``MAX_ATTEMPTS`` failures (not observed in practice) the attempt with the best
    :attr:`QualityMeasures.margin` is. Deterministic for ``(kind, seed, index, height, width)``.
    """
    _check_size(height, width)
    if kind not in KINDS:
        raise ValueError(f"unknown fractal kind {kind!r}; expected one of {', '.join(KINDS)}")
    probe_hw = _probe_shape(height, width) if max(height, width) > PROBE_SIZE else None
    best_margin, best_attempt = -math.inf, 0
    for attempt in range(MAX_ATTEMPTS):
        params, render_seed = _attempt(kind, seed, index, attempt)
        if probe_hw is not None:
            probe = quality_measures(render_params(params, *probe_hw, rng=np.random.default_rng(render_seed)))
            if not probe.passed:
                if probe.margin > best_margin:
                    best_margin, best_attempt = probe.margin, attempt
                continue
        image = render_params(params, height, width, rng=np.random.default_rng(render_seed))
        measures = quality_measures(image)
        if measures.passed:
            return image
        if measures.margin > best_margin:
            best_margin, best_attempt = measures.margin, attempt
    params, render_seed = _attempt(kind, seed, index, best_attempt)
    return render_params(params, height, width, rng=np.random.default_rng(render_seed))


# ----------------------------------------------------------------------------------------------
# The mixing source
# ----------------------------------------------------------------------------------------------


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
