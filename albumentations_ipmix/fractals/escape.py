"""Escape-time rendering of ``z -> z^2 + c``: viewports, escape counts, orbit traps, colouring.

Mandelbrot (``z0 = 0``, ``c`` = pixel) and Julia (``c`` fixed, ``z0`` = pixel) sets, iterated over
all pixels at once in float32 with the escaped pixels compacted away every few iterations, and
coloured by the orbit trap (the smallest distance of the orbit to a point, a ring or a cross)
blended with the smooth iteration count. Deterministic kernels: no randomness here (the viewport
search that draws random numbers is in :mod:`.sampling`).
"""

from __future__ import annotations

import math

import numpy as np

from .colour import LUT_SIZE, palette_lut, to_uint8
from .kinds import check_size
from .params import EscapeParams

__all__ = [
    "COMPACT_EVERY",
    "ESCAPE_RADIUS",
    "escape_counts",
    "orbit_traps",
    "render_escape",
    "viewport",
]

#: Escape radius: an orbit has escaped once ``|z| > ESCAPE_RADIUS``.
ESCAPE_RADIUS = 8.0
#: Escaped pixels are removed from the working set every this many iterations.
COMPACT_EVERY = 4


def viewport(
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


def escape_counts(kind: str, re: np.ndarray, im: np.ndarray, c: complex, max_iter: int) -> np.ndarray:
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


def _orbit_start(
    params: EscapeParams, re: np.ndarray, im: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Flat float32 ``(zr, zi, cr, ci)`` of every pixel before the first iteration of the trap loop."""
    n = re.size
    if params.kind == "mandelbrot":
        cr, ci = re.ravel().copy(), im.ravel().copy()
        zr, zi = cr.copy(), ci.copy()  # z1 = c
    else:
        zr, zi = re.ravel().copy(), im.ravel().copy()
        cr = np.full(n, params.c.real, np.float32)
        ci = np.full(n, params.c.imag, np.float32)
    return zr, zi, cr, ci


def _trap_distance_sq(
    params: EscapeParams, zr: np.ndarray, zi: np.ndarray, d1: np.ndarray, d2: np.ndarray
) -> None:
    """Write the squared trap distance of the iterates ``zr + i zi`` into ``d1`` (``d2``: scratch)."""
    np.subtract(zr, np.float32(params.trap_point.real), out=d1)
    np.subtract(zi, np.float32(params.trap_point.imag), out=d2)
    if params.trap == "cross":
        np.abs(d1, out=d1)
        np.abs(d2, out=d2)
        np.minimum(d1, d2, out=d1)
        d1 *= d1
        return
    d1 *= d1
    d2 *= d2
    d1 += d2
    if params.trap == "ring":
        np.sqrt(d1, out=d1)
        d1 -= np.float32(params.trap_radius)
        d1 *= d1


def orbit_traps(
    params: EscapeParams, re: np.ndarray, im: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iterate every pixel; returns flat (trap distance, smooth iteration count, escaped mask).

    Works on float32 arrays of the still-bounded pixels only: every ``COMPACT_EVERY`` iterations the
    escaped ones are written out and removed. The trap minimum only takes iterates with
    ``|z| <= ESCAPE_RADIUS``; the smooth count ``n + 1 - log2(log|z_n|)`` is read when a pixel is
    removed (it is invariant along the escaped orbit, so the delay does not change it).
    """
    n = re.size
    zr, zi, cr, ci = _orbit_start(params, re, im)
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
            _trap_distance_sq(params, zr, zi, d1, d2)  # of the current iterate
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
            if (it + 1) % COMPACT_EVERY == 0 or it == params.max_iter - 1:
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
    check_size(height, width)
    re, im = viewport(params.center, params.half_height, params.angle, height, width)
    trap, nu, escaped = orbit_traps(params, re, im)
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
        [palette_lut(params.palette), palette_lut(params.interior_palette) * np.float32(0.6)]
    )
    return to_uint8(lut)[lut_index].reshape(height, width, 3)
