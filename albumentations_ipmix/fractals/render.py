"""One picture per ``(kind, seed, index, size)``: seeding, the probe render and resampling.

Attempt ``a = 0, 1, ...`` of picture ``(seed, index)`` splits ``np.random.SeedSequence([seed,
index, a])`` into a parameter generator (:mod:`.sampling`) and a render generator (the IFS chaos
game); the first attempt whose render passes the quality filter (:mod:`.quality`) is the picture.
The parameters do not depend on the size, so an index is the same fractal at every size unless a
render fails the filter at one size only.
"""

from __future__ import annotations

import math

import numpy as np

from .escape import render_escape
from .ifs import render_ifs
from .kinds import check_kind, check_size
from .params import EscapeParams, IFSParams
from .quality import quality_measures
from .sampling import sample_params

__all__ = ["MAX_ATTEMPTS", "PROBE_SIZE", "render_fractal", "render_params"]

#: Attempts (sub-seeds 0, 1, ...) before :func:`render_fractal` gives up and returns the best render.
MAX_ATTEMPTS = 24
#: Side (pixels) of the cheap probe render that screens parameters before a large render.
PROBE_SIZE = 64


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
    check_size(height, width)
    check_kind(kind)
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
