"""One comparison of JSON-like golden values for the golden-file tests (``test_results``,
``test_pinned_mixing``): float results within stated tolerances, everything else exactly."""

from __future__ import annotations

import math
from typing import Any


def assert_json_close(got: Any, expected: Any, rel: float, abs_: float, where: str = "$") -> None:
    """Same structure, key order, strings, ints, bools; floats within ``rel`` / ``abs_`` (NaN == NaN).

    An int where a float is expected compares as a number (JSON writes ``1.0`` as ``1`` nowhere, but a
    count may be whole); a bool never stands for a number.
    """
    if isinstance(expected, float) and isinstance(got, (float, int)) and not isinstance(got, bool):
        if math.isnan(expected):
            assert math.isnan(got), f"{where}: {got} != nan"
        else:
            assert math.isclose(got, expected, rel_tol=rel, abs_tol=abs_), f"{where}: {got} != {expected}"
    elif isinstance(expected, dict):
        assert isinstance(got, dict) and list(got) == list(expected), (
            f"{where}: keys {list(got)} != {list(expected)}"
        )
        for key in expected:
            assert_json_close(got[key], expected[key], rel, abs_, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), f"{where}: lengths differ"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_json_close(g, e, rel, abs_, f"{where}[{i}]")
    else:
        assert got == expected and type(got) is type(expected), f"{where}: {got!r} != {expected!r}"
