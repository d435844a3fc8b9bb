"""The ``albumentations_ipmix.fractals`` package: rendered bytes pinned, public names, module shape."""

from __future__ import annotations

import ast
import hashlib
import importlib
import pkgutil
import re
from pathlib import Path

import numpy as np
import pytest

from albumentations_ipmix import fractals as F

# sha256 (first 16 hex digits) of render_fractal(kind, seed=3, index, height, width).tobytes(),
# computed once with the single-module albumentations_ipmix/fractals.py of commit 40f5b4a (before it
# became a package), so any change to what a (seed, index, size) renders fails here. 48 x 48 is
# filtered directly; 96 x 72 goes through the 64 px probe render first.
GOLDEN = {
    ("ifs", 0, 48, 48): "b733c2497c03b22e",
    ("ifs", 0, 96, 72): "2b6e810ea7feb5c0",
    ("ifs", 7, 48, 48): "2cc89b484704b302",
    ("ifs", 7, 96, 72): "338f626235384af0",
    ("mandelbrot", 0, 48, 48): "f18a1075331740f0",
    ("mandelbrot", 0, 96, 72): "821c8df9cc639a75",
    ("mandelbrot", 7, 48, 48): "004178927e6d0be7",
    ("mandelbrot", 7, 96, 72): "48e5532ae8c00444",
    ("julia", 0, 48, 48): "6fc58d6641369c97",
    ("julia", 0, 96, 72): "3d6ffdc4fb2c6578",
    ("julia", 7, 48, 48): "924ea738123be2d5",
    ("julia", 7, 96, 72): "68ea7015000010a2",
}


@pytest.mark.parametrize(("kind", "index", "height", "width"), sorted(GOLDEN))
def test_rendered_bytes_are_those_of_the_single_module_renderer(
    kind: str, index: int, height: int, width: int
) -> None:
    picture = F.render_fractal(kind, 3, index, height, width)
    assert picture.shape == (height, width, 3) and picture.dtype == np.uint8
    digest = hashlib.sha256(np.ascontiguousarray(picture).tobytes()).hexdigest()[:16]
    assert digest == GOLDEN[(kind, index, height, width)]


ROOT = Path(__file__).resolve().parents[1]
FROM_FRACTALS = re.compile(r"^(>>> )?from albumentations_ipmix\.fractals import [\w, ]+$")


def _imported_from_fractals() -> set[str]:
    """Names that the project's modules, benchmarks, examples, tests and documentation import from it."""
    names: set[str] = set()
    sources = [
        p.read_text()
        for d in ("albumentations_ipmix", "benchmarks", "examples", "tests", "timm_ext")
        for p in (ROOT / d).glob("*.py")
    ]
    for document in (ROOT / "README.md", *(ROOT / "docs").glob("*.md")):
        lines = document.read_text().splitlines()
        sources += [line.strip().removeprefix(">>> ") for line in lines if FROM_FRACTALS.match(line.strip())]
    for text in sources:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module in (
                "albumentations_ipmix.fractals",
                "fractals",
            ):
                if node.module == "fractals" and node.level != 1:
                    continue
                names.update(alias.name for alias in node.names)
    return names


def test_every_used_public_name_is_exported_by_the_package() -> None:
    used = _imported_from_fractals()
    assert {"render_fractal", "kind_of", "parse_kinds", "RENDERER_VERSION", "FractalSource"} <= used
    submodules = {info.name for info in pkgutil.iter_modules(F.__path__)}
    assert not used - set(F.__all__) - submodules, "imported but not exported"
    assert all(hasattr(F, name) for name in F.__all__)
    # the procedural source is registered by importing the package
    from albumentations_ipmix.sources import as_source

    assert isinstance(as_source({"type": "procedural", "count": 2}), F.FractalSource)


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (info.name, ast.parse(Path(F.__path__[0], f"{info.name}.py").read_text()))
        for info in pkgutil.iter_modules(F.__path__)
    ]


def test_no_function_is_longer_than_80_lines() -> None:
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80
    ]
    assert not long


_DRAWS = {
    "random",
    "default_rng",
    "SeedSequence",
    "spawn",
    "integers",
    "uniform",
    "choice",
    "dirichlet",
    "beta",
}


def _calls(tree: ast.AST) -> set[str]:
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }


def test_kernels_draw_no_random_numbers_and_nothing_touches_files() -> None:
    # Random draws live in sampling.py, the seeding in render.py, and the chaos game's uniforms in
    # ifs.walker_uniforms; every other function is a pure kernel. No module opens or writes a file.
    for name, tree in _modules():
        assert not _calls(tree) & {"open", "imwrite", "imread", "write_bytes", "write_text"}, name
        if name in {"colour", "escape", "quality", "params", "kinds"}:
            assert not _calls(tree) & _DRAWS, name
    ifs_tree = dict(_modules())["ifs"]
    draws = [f.name for f in ifs_tree.body if isinstance(f, ast.FunctionDef) and _calls(f) & _DRAWS]
    assert draws == ["walker_uniforms"]


def test_chaos_game_kernel_is_a_function_of_its_uniforms() -> None:
    params = F.sample_ifs(np.random.default_rng(5))
    ifs = importlib.import_module("albumentations_ipmix.fractals.ifs")
    uniform = ifs.walker_uniforms(params, 20_000, np.random.default_rng(1))
    assert uniform.dtype == np.float32 and uniform.shape[0] > ifs.IFS_STEPS
    first = ifs.chaos_game(params, uniform)
    again = ifs.chaos_game(params, uniform.copy())
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    xs, ys, choice = first
    assert xs.shape == ys.shape == choice.shape == (ifs.IFS_STEPS, uniform.shape[1])
    # the map chosen at a recorded step is the inverse CDF of that step's uniform
    edges = np.cumsum(params.probs)[:-1].astype(np.float32)
    expected = (uniform[-ifs.IFS_STEPS :, :, None] >= edges).sum(axis=2)
    np.testing.assert_array_equal(choice, expected)
