"""Parameters of one fractal picture: what a sampler draws and a renderer consumes.

Frozen dataclasses of plain numbers and arrays: :class:`IFSParams` (an iterated function system
and its colouring) and :class:`EscapeParams` (an escape-time fractal of ``z -> z^2 + c`` and its
orbit-trap colouring). Samplers live in :mod:`.sampling`, renderers in :mod:`.ifs` and
:mod:`.escape`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TRAPS", "EscapeParams", "IFSParams"]

#: Orbit-trap shapes of :class:`EscapeParams` (``trap``).
TRAPS: tuple[str, ...] = ("point", "ring", "cross")


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
