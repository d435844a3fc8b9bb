"""Parameter samplers: every random number that decides what a fractal looks like is drawn here.

Each sampler takes an explicit :class:`numpy.random.Generator` and returns a frozen parameter
object of :mod:`.params`; renderers (:mod:`.ifs`, :mod:`.escape`) turn it into pixels.

- :func:`sample_ifs`: 2-4 random contractive affine maps whose singular values are drawn with the
  *sigma factor* ``sum_k (s1_k + 2 s2_k)`` inside the band ``[(5 + N) / 2, (6 + N) / 2]`` of
  Anderson & Farrell 2022 ("Improving fractal pre-training"), which keeps the attractor from
  collapsing to a point or spreading into noise; one of three colour schemes and backgrounds.
- :func:`sample_escape`: a Mandelbrot or Julia viewport found by a coarse-to-fine search that zooms
  onto boundary detail, an orbit trap and two cosine palettes.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .colour import luma
from .escape import escape_counts, viewport
from .kinds import check_kind
from .params import TRAPS, EscapeParams, IFSParams

__all__ = [
    "ESCAPE_BASE_ITER",
    "ESCAPE_ITER_PER_OCTAVE",
    "ESCAPE_MAX_ITER",
    "JULIA_HALF_RANGE",
    "JULIA_OVERVIEW",
    "MANDELBROT_HALF_RANGE",
    "MANDELBROT_OVERVIEW",
    "SEARCH_GRID",
    "SEARCH_ZOOM",
    "SIGMA_FACTOR_BAND",
    "SIGMA_MAX",
    "sample_escape",
    "sample_ifs",
    "sample_params",
]

#: Sigma-factor band of Anderson & Farrell 2022 for ``N`` maps: ``[(5 + N) / 2, (6 + N) / 2]``.
SIGMA_FACTOR_BAND: tuple[float, float] = (5.0, 6.0)
#: Largest singular value of any map (< 1 keeps every map contractive).
SIGMA_MAX = 0.98

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


def sample_cosine_palette(rng: np.random.Generator) -> np.ndarray:
    """Coefficients ``(a, b, c, d)``, shape (4, 3), of ``colour(t) = a + b cos(2 pi (c t + d))``."""
    a = rng.uniform(0.3, 0.7, 3)
    b = rng.uniform(0.25, 0.5, 3)
    c = rng.uniform(0.5, 1.5, 3) if rng.random() < 0.5 else np.full(3, rng.choice([1.0, 2.0]))
    d = rng.uniform(0.0, 1.0, 3)
    return np.stack([a, b, c, d])


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
    palette = sample_cosine_palette(rng)
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
    fg_luma = luma(colours[0]) if scheme == "solid" else float(np.mean([luma(c) for c in colours]))
    if scheme == "density":
        fg_luma = luma(palette[0])
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
        re, im = viewport(center, half, 0.0, SEARCH_GRID, SEARCH_GRID)
        pick = _boundary_pick(rng, escape_counts(kind, re, im, c, iters), iters)
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
        palette=sample_cosine_palette(rng),
        interior_palette=sample_cosine_palette(rng),
        trap_freq=float(rng.uniform(0.15, 0.6) * rng.choice([-1.0, 1.0])),
        iter_weight=float(rng.uniform(0.0, 0.35)),
        phase=float(rng.uniform(0.0, 1.0)),
    )


def sample_params(kind: str, rng: np.random.Generator) -> IFSParams | EscapeParams:
    """Draw the parameters of one picture of ``kind`` (see :func:`sample_ifs`, :func:`sample_escape`)."""
    check_kind(kind)
    return sample_ifs(rng) if kind == "ifs" else sample_escape(rng, kind)
