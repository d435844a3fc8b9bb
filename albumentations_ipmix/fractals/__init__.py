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

Modules, one concern each (kernels never draw random numbers; nothing here reads or writes files):

- :mod:`.kinds`: the kind names, the defaults of the procedural set, the renderer version;
- :mod:`.params`: the parameter dataclasses a sampler returns and a renderer consumes;
- :mod:`.sampling`: every random draw of a picture's parameters (IFS maps, viewports, colours);
- :mod:`.ifs`, :mod:`.escape`: the rendering kernels (chaos game, orbit traps);
- :mod:`.colour`: palettes, backgrounds and the float -> uint8 conversion shared by both;
- :mod:`.quality`: the quality filter;
- :mod:`.render`: one picture per ``(kind, seed, index, size)`` (seeding, probe, resampling);
- :mod:`.source`: :class:`FractalSource`.

Writing a set to disk (layout, manifest, resuming) is the ``ipmix-fractals`` command's job
(:mod:`albumentations_ipmix.cli`). The package imports numpy and OpenCV only (no torch, no CLI
libraries).
"""

from __future__ import annotations

from .escape import COMPACT_EVERY, ESCAPE_RADIUS, render_escape
from .ifs import IFS_MARGIN, IFS_STEPS, render_ifs
from .kinds import (
    DEFAULT_COUNT,
    DEFAULT_KINDS,
    DEFAULT_RENDER_SIZE,
    KINDS,
    MAX_AUTO_CACHE,
    RENDERER_VERSION,
    kind_of,
    parse_kinds,
)
from .params import TRAPS, EscapeParams, IFSParams
from .quality import (
    MAX_NOISE_SCORE,
    MIN_COLOUR_STD,
    MIN_COVERAGE,
    QUALITY_SIZE,
    TILE_DETAIL_STD,
    TILE_GRID,
    QualityMeasures,
    passes_quality,
    quality_measures,
)
from .render import MAX_ATTEMPTS, PROBE_SIZE, render_fractal, render_params
from .sampling import SIGMA_FACTOR_BAND, SIGMA_MAX, sample_escape, sample_ifs, sample_params
from .source import FractalSource

__all__ = [
    "COMPACT_EVERY",
    "DEFAULT_COUNT",
    "DEFAULT_KINDS",
    "DEFAULT_RENDER_SIZE",
    "ESCAPE_RADIUS",
    "IFS_MARGIN",
    "IFS_STEPS",
    "KINDS",
    "MAX_ATTEMPTS",
    "MAX_AUTO_CACHE",
    "MAX_NOISE_SCORE",
    "MIN_COLOUR_STD",
    "MIN_COVERAGE",
    "PROBE_SIZE",
    "QUALITY_SIZE",
    "RENDERER_VERSION",
    "SIGMA_FACTOR_BAND",
    "SIGMA_MAX",
    "TILE_DETAIL_STD",
    "TILE_GRID",
    "TRAPS",
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
