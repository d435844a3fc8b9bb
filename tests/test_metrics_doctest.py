"""The worked examples in the docstrings of robust_eval.metrics and robust_eval.baselines are correct."""

from __future__ import annotations

import doctest

import pytest

from robust_eval import baselines, metrics


@pytest.mark.parametrize("module", [metrics, baselines], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted >= (40 if module is metrics else 5)  # the examples were actually found
    assert result.failed == 0
