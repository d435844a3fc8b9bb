"""Procedural fractals: renderers, quality filter and the ``procedural`` mixing source."""

from __future__ import annotations

import ast
import itertools
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from albumentations_ipmix import fractals as F
from albumentations_ipmix.fractals import (
    KINDS,
    EscapeParams,
    FractalSource,
    IFSParams,
    QualityMeasures,
    quality_measures,
    render_escape,
    render_fractal,
    render_ifs,
    sample_escape,
    sample_ifs,
)
from albumentations_ipmix.fractals import escape as E
from albumentations_ipmix.fractals import render as R
from albumentations_ipmix.sources import MixingSource, MixingSourceError, as_source


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


# ---------------------------------------------------------------------------------------------
# Determinism, variety, sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_render_is_deterministic_per_seed_and_index(kind: str) -> None:
    first = render_fractal(kind, 7, 5, 48, 48)
    second = render_fractal(kind, 7, 5, 48, 48)
    np.testing.assert_array_equal(first, second)
    assert first.dtype == np.uint8
    assert first.shape == (48, 48, 3)


@pytest.mark.parametrize("kind", KINDS)
def test_different_indices_and_seeds_give_different_pictures(kind: str) -> None:
    pictures = [render_fractal(kind, 0, index, 32, 32) for index in range(8)]
    for a, b in itertools.combinations(pictures, 2):
        assert _mean_abs_diff(a, b) > 5.0
    other_seed = render_fractal(kind, 1, 0, 32, 32)
    assert _mean_abs_diff(pictures[0], other_seed) > 5.0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("height", "width"), [(32, 32), (36, 36), (100, 150), (252, 252), (512, 512)])
def test_renders_at_sizes_from_32_to_512(kind: str, height: int, width: int) -> None:
    picture = render_fractal(kind, 0, 3, height, width)
    assert picture.shape == (height, width, 3)
    assert picture.dtype == np.uint8
    assert quality_measures(picture).passed


@pytest.mark.parametrize("kind", KINDS)
def test_an_index_is_the_same_fractal_at_every_size(kind: str) -> None:
    # Parameters do not depend on the size: a large render, shrunk, resembles the small render far
    # more than a different index does.
    for index in range(4):
        small = render_fractal(kind, 0, index, 64, 64)
        large = cv2.resize(render_fractal(kind, 0, index, 256, 256), (64, 64), interpolation=cv2.INTER_AREA)
        other = render_fractal(kind, 0, index + 4, 64, 64)
        assert _mean_abs_diff(small, large) < 0.5 * _mean_abs_diff(small, other)


def test_kinds_are_cycled_through_by_index() -> None:
    assert [F.kind_of(i) for i in range(6)] == ["ifs", "mandelbrot", "julia"] * 2
    assert [F.kind_of(i, ("julia", "ifs")) for i in range(3)] == ["julia", "ifs", "julia"]


# ---------------------------------------------------------------------------------------------
# Quality filter
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_non_degenerate_by_the_filter_measures(kind: str) -> None:
    # 100 pictures per kind (300 over the kinds) at the small sizes the tests can afford.
    failures = []
    for index in range(100):
        size = 32 if index % 2 else 40
        measures = quality_measures(render_fractal(kind, 11, index, size, size))
        if not measures.passed:
            failures.append((index, measures))
    assert failures == []


def test_filter_rejects_a_nearly_one_coloured_picture() -> None:
    flat = np.full((64, 64, 3), (40, 90, 200), np.uint8)
    flat[::7, ::5] += 3  # faint texture is still "one colour"
    measures = quality_measures(flat)
    assert measures.colour_std < F.MIN_COLOUR_STD
    assert not measures.passed


def test_filter_rejects_tiny_coverage() -> None:
    picture = np.zeros((128, 128, 3), np.uint8)
    cv2.circle(picture, (40, 70), 6, (255, 220, 0), -1)  # a small blob: strong colour, little coverage
    measures = quality_measures(picture)
    assert measures.coverage < F.MIN_COVERAGE
    assert not measures.passed


def test_filter_rejects_structureless_noise() -> None:
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    measures = quality_measures(noise)
    assert measures.noise > F.MAX_NOISE_SCORE
    assert measures.colour_std > F.MIN_COLOUR_STD  # noise is rejected for being noise, not for flatness
    assert not measures.passed


def test_filter_accepts_a_natural_photograph() -> None:
    skimage_data = pytest.importorskip("skimage.data")
    measures = quality_measures(skimage_data.astronaut())
    assert measures.passed
    assert measures.margin > 0


def test_quality_measures_validate_their_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        quality_measures(np.zeros((8, 8, 3), np.float32))


def test_resampling_replaces_a_rejected_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    # Reject every first attempt: the picture must come from attempt 1, deterministically.
    real = F.quality_measures
    calls: list[int] = []

    def first_attempt_fails(image: np.ndarray) -> QualityMeasures:
        calls.append(1)
        measures = real(image)
        if len(calls) == 1:
            return QualityMeasures(colour_std=0.0, coverage=0.0, noise=1.0)
        return measures

    monkeypatch.setattr(R, "quality_measures", first_attempt_fails)
    resampled = F.render_fractal("julia", 0, 0, 48, 48)
    monkeypatch.setattr(R, "quality_measures", real)
    seq = np.random.SeedSequence([0, 0, 1])
    param_seed, render_seed = seq.spawn(2)
    expected = F.render_params(
        F.sample_params("julia", np.random.default_rng(param_seed)),
        48,
        48,
        np.random.default_rng(render_seed),
    )
    np.testing.assert_array_equal(resampled, expected)


# ---------------------------------------------------------------------------------------------
# IFS
# ---------------------------------------------------------------------------------------------


def test_ifs_maps_respect_the_sigma_factor_band_and_contract() -> None:
    for seed in range(200):
        params = sample_ifs(np.random.default_rng(seed))
        n = len(params.maps)
        assert 2 <= n <= 4
        singular = np.linalg.svd(params.maps[:, :, :2], compute_uv=False)  # (n, 2), descending
        assert singular.max() < 1.0
        sigma_factor = float((singular[:, 0] + 2 * singular[:, 1]).sum())
        assert sigma_factor == pytest.approx(params.sigma_factor, rel=1e-9)
        assert (5 + n) / 2 <= sigma_factor <= (6 + n) / 2
        assert params.probs.sum() == pytest.approx(1.0)
        assert (params.probs > 0).all()


def _sierpinski(scheme: str = "solid") -> IFSParams:
    maps = np.array(
        [
            [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]],
            [[0.5, 0.0, 0.5], [0.0, 0.5, 0.0]],
            [[0.5, 0.0, 0.25], [0.0, 0.5, 0.5]],
        ]
    )
    return IFSParams(
        maps=maps,
        probs=np.full(3, 1 / 3),
        sigma_factor=4.5,
        scheme=scheme,
        colours=np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
        palette=np.array([[0.5] * 3, [0.5] * 3, [1.0] * 3, [0.0] * 3]),
        gamma=1.0,
        background="solid",
        bg_colours=np.zeros((1, 1, 3)),
        bg_angle=0.0,
    )


def test_chaos_game_draws_the_sierpinski_triangle() -> None:
    # Maps x/2, x/2 + (1/2, 0), x/2 + (1/4, 1/2): the attractor is the triangle (0,0), (1,0), (1/2,1)
    # with its middle quarter (vertices (1/4,1/2), (3/4,1/2), (1/2,0)) missing.
    size = 128
    picture = render_ifs(_sierpinski(), size, size, np.random.default_rng(0))
    lit = picture.max(axis=2) > 60
    margin = F.IFS_MARGIN * size

    def lit_near(x: float, y: float) -> bool:
        col = int(margin + x * (size - 2 * margin))
        row = int(margin + y * (size - 2 * margin))
        return bool(lit[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2].any())

    assert all(lit_near(x, y) for x, y in [(0.02, 0.0), (0.98, 0.0), (0.5, 0.99), (0.25, 0.5), (0.75, 0.5)])
    assert not any(lit_near(x, y) for x, y in [(0.5, 1 / 3), (0.45, 0.3), (0.55, 0.3)])  # the middle hole
    assert not any(lit_near(x, y) for x, y in [(0.05, 0.9), (0.95, 0.9)])  # outside the triangle


def test_ifs_map_colours_mix_by_hits() -> None:
    picture = render_ifs(_sierpinski("map"), 96, 96, np.random.default_rng(1)).astype(int)
    lit = picture.max(axis=2) > 60
    # A pixel takes the mean colour of the maps whose images hit it: map 1 (red) owns the lower-right
    # sub-triangle (y < 1/2, x > 1/2), map 2 (blue) the top one (y > 1/2).
    lower_right = picture[:40, 56:][lit[:40, 56:]]
    top = picture[52:][lit[52:]]
    assert len(lower_right) > 50 and len(top) > 50
    assert (lower_right[:, 0] > lower_right[:, 2]).mean() > 0.9
    assert (top[:, 2] > top[:, 0]).mean() > 0.9


def test_chaos_game_is_deterministic_for_a_generator_seed() -> None:
    params = sample_ifs(np.random.default_rng(3))
    a = render_ifs(params, 64, 64, np.random.default_rng(9))
    b = render_ifs(params, 64, 64, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Escape-time fractals
# ---------------------------------------------------------------------------------------------


def _reference_orbits(params: EscapeParams, re: np.ndarray, im: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel complex128 loop: (squared trap distance over |z| <= R, escaped?)."""
    trap = np.full(re.shape, np.inf)
    escaped = np.zeros(re.shape, bool)
    for pos in np.ndindex(re.shape):
        point = complex(float(re[pos]), float(im[pos]))
        z, c = (point, point) if params.kind == "mandelbrot" else (point, params.c)
        for _ in range(params.max_iter):
            if abs(z) > F.ESCAPE_RADIUS:
                escaped[pos] = True
                break
            d = z - params.trap_point
            if params.trap == "point":
                dist = abs(d) ** 2
            elif params.trap == "ring":
                dist = (abs(d) - params.trap_radius) ** 2
            else:
                dist = min(abs(d.real), abs(d.imag)) ** 2
            trap[pos] = min(trap[pos], dist)
            z = z * z + c
        else:
            escaped[pos] = abs(z) > F.ESCAPE_RADIUS
    return trap, escaped


@pytest.mark.parametrize("kind", ["mandelbrot", "julia"])
@pytest.mark.parametrize("trap", F.TRAPS)
def test_vectorized_orbit_traps_match_a_per_pixel_loop(kind: str, trap: str) -> None:
    base = sample_escape(np.random.default_rng(5), kind)
    params = EscapeParams(**{**base.__dict__, "trap": trap, "max_iter": 40})
    re, im = E.viewport(params.center, params.half_height, params.angle, 14, 14)
    trap_d, _, escaped = E.orbit_traps(params, re, im)
    ref_trap, ref_escaped = _reference_orbits(params, re, im)
    # float32 vs complex128 orbits may disagree for a pixel right at the escape radius
    assert (escaped.reshape(re.shape) == ref_escaped).mean() > 0.97
    agree = escaped.reshape(re.shape) == ref_escaped
    np.testing.assert_allclose(trap_d.reshape(re.shape)[agree], ref_trap[agree], rtol=2e-2, atol=1e-4)


def test_escape_counts_match_a_per_pixel_loop() -> None:
    re, im = E.viewport(complex(-0.6, 0.0), 1.3, 0.0, 12, 12)
    counts = E.escape_counts("mandelbrot", re, im, 0j, 30)
    for pos in np.ndindex(re.shape):
        c = complex(float(re[pos]), float(im[pos]))
        z, n = c, 0  # z1 = c; the count is the number of orbit points inside the escape radius
        while n < 30 and abs(z) <= F.ESCAPE_RADIUS:
            z = z * z + c
            n += 1
        assert counts[pos] == n


@pytest.mark.parametrize("kind", ["mandelbrot", "julia"])
def test_viewports_contain_boundary_detail(kind: str) -> None:
    # The escape counts over the chosen viewport vary: the view straddles the set's boundary.
    spreads = []
    for seed in range(25):
        params = sample_escape(np.random.default_rng(seed), kind)
        re, im = E.viewport(params.center, params.half_height, params.angle, 32, 32)
        counts = E.escape_counts(kind, re, im, params.c, params.max_iter)
        spreads.append(int(counts.max() - counts.min()))
    assert min(spreads) >= 4
    assert np.median(spreads) >= 10


def test_julia_constants_lie_near_the_mandelbrot_boundary() -> None:
    for seed in range(10):
        c = sample_escape(np.random.default_rng(seed), "julia").c
        assert abs(c) < 2.1
        re, im = E.viewport(c, 0.05, 0.0, 9, 9)
        counts = E.escape_counts("mandelbrot", re, im, 0j, 200)
        assert counts.max() - counts.min() >= 3  # the boundary passes within 0.05 of c


def test_render_escape_needs_no_randomness() -> None:
    params = sample_escape(np.random.default_rng(2), "mandelbrot")
    np.testing.assert_array_equal(render_escape(params, 40, 30), render_escape(params, 40, 30))


def test_bad_kind_and_size_are_rejected_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="unknown fractal kind 'spiral'"):
        render_fractal("spiral", 0, 0, 32, 32)
    with pytest.raises(ValueError, match="must be positive"):
        render_fractal("ifs", 0, 0, 0, 32)
    with pytest.raises(ValueError, match="unknown fractal kind"):
        F.parse_kinds("ifs,fern")
    with pytest.raises(ValueError, match="no fractal kinds"):
        F.parse_kinds(" , ")
    assert F.parse_kinds(" IFS, julia ") == ("ifs", "julia")


# ---------------------------------------------------------------------------------------------
# The procedural mixing source
# ---------------------------------------------------------------------------------------------


def test_source_renders_each_index_at_the_requested_size() -> None:
    source = FractalSource(seed=4, count=9)
    assert isinstance(source, MixingSource)
    assert len(source) == 9
    picture = source.load(4, (36, 52))
    assert picture.shape == (36, 52, 3)
    np.testing.assert_array_equal(picture, render_fractal(source.kind(4), 4, 4, 36, 52))
    with pytest.raises(IndexError, match="out of range"):
        source.load(9, (36, 36))


def test_source_fitted_pictures_are_cached_and_cover_the_image() -> None:
    source = FractalSource(count=4)
    assert source.cache_size >= len(source)
    fitted = source.fitted(1, 32, 32)
    assert fitted.shape == (36, 36, 3)
    assert source.fitted(1, 32, 32) is fitted


def test_default_cache_holds_every_picture_of_the_default_count() -> None:
    source = FractalSource()
    assert len(source) == F.DEFAULT_COUNT
    assert source.cache_size >= F.DEFAULT_COUNT
    assert FractalSource(count=2000).cache_size >= 2000


def test_source_pickles_without_its_cache() -> None:
    source = FractalSource(kinds=("julia", "ifs"), seed=3, count=12)
    first = source.fitted(2, 32, 32)
    clone = pickle.loads(pickle.dumps(source))
    assert len(clone._cache) == 0
    assert clone.to_config() == source.to_config()
    np.testing.assert_array_equal(clone.fitted(2, 32, 32), first)


def test_source_config_round_trip() -> None:
    source = FractalSource(kinds="mandelbrot,julia", seed=9, count=33)
    config = source.to_config()
    assert config == {"type": "procedural", "kinds": ["mandelbrot", "julia"], "seed": 9, "count": 33}
    rebuilt = as_source(config)
    assert isinstance(rebuilt, FractalSource)
    assert rebuilt.to_config() == config
    np.testing.assert_array_equal(rebuilt.load(5, (32, 32)), source.load(5, (32, 32)))


def test_default_and_partial_configs_take_defaults() -> None:
    default = as_source(None)
    assert isinstance(default, FractalSource)
    assert default.to_config() == {
        "type": "procedural",
        "kinds": list(KINDS),
        "seed": 0,
        "count": F.DEFAULT_COUNT,
    }
    partial = FractalSource.from_config({"type": "procedural", "seed": 5})
    assert partial.seed == 5
    assert partial.count == F.DEFAULT_COUNT


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"type": "procedural", "kinds": ["fern"]}, "unknown fractal kind"),
        ({"type": "procedural", "count": 0}, "count must be a positive integer"),
        ({"type": "procedural", "seed": -1}, "seed must be a non-negative integer"),
        ({"type": "procedural", "seeds": 3}, "unknown key"),
    ],
)
def test_bad_configs_raise_a_mixing_source_error(config: dict, match: str) -> None:
    with pytest.raises(MixingSourceError, match=match):
        as_source(config)


def test_package_imports_no_torch_and_no_cli_libraries() -> None:
    imported = set()
    for module in sorted(Path(F.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    assert imported <= {
        "__future__",
        "math",
        "collections",
        "dataclasses",
        "functools",
        "typing",
        "cv2",
        "numpy",
    }


def test_after_max_attempts_the_best_render_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    # A filter nothing passes: render_fractal still returns a picture of the right size, deterministically.
    def impossible(image: np.ndarray) -> QualityMeasures:
        return QualityMeasures(colour_std=float(image.std()) / 1000, coverage=0.0, noise=1.0)

    monkeypatch.setattr(R, "quality_measures", impossible)
    monkeypatch.setattr(R, "MAX_ATTEMPTS", 3)
    first = F.render_fractal("mandelbrot", 0, 1, 80, 80)
    assert first.shape == (80, 80, 3)
    np.testing.assert_array_equal(first, F.render_fractal("mandelbrot", 0, 1, 80, 80))


def test_docstring_examples_run() -> None:
    import doctest
    import importlib
    import pkgutil

    attempted = 0
    for info in pkgutil.iter_modules(F.__path__):
        module = importlib.import_module(f"{F.__name__}.{info.name}")
        result = doctest.testmod(module)
        attempted += result.attempted
        assert result.failed == 0, module.__name__
    assert attempted >= 3
