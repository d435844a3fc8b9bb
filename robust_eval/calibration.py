"""Calibration beyond RMS / ECE: negative log-likelihood, Brier score, AURC, temperature scaling.

Pure functions of logits (float, ``(N, K)``) and integer labels; no I/O, no randomness. Each is
checked against a reference in ``tests/test_calibration.py`` (scikit-learn's ``log_loss`` and
``brier_score_loss``; a brute-force average over orderings for AURC's tie rule).

Held-out split for temperature scaling (:func:`heldout_split`): examples ``i % 5 == 0`` of the clean
test split (after ``--subset``) fit the temperature; every metric "after temperature scaling" and its
"before" partner are measured on the other 80 %, so the fit never sees what it is judged on.

Example:
    >>> import numpy as np
    >>> logits = np.log(np.array([[0.8, 0.2], [0.4, 0.6]]))
    >>> round(nll(logits, [0, 0]), 4), round(brier(logits, [0, 0]), 4)
    (0.5697, 0.4)
    >>> aurc(np.array([0.9, 0.6]), np.array([True, False]))
    0.25
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "HELDOUT_EVERY",
    "aurc",
    "brier",
    "fit_temperature",
    "heldout_split",
    "log_softmax",
    "nll",
]

#: Every HELDOUT_EVERY-th clean test example (index % HELDOUT_EVERY == 0) fits the temperature.
HELDOUT_EVERY = 5
#: Search interval of the temperature (log scale) and its tolerance.
_LOG_T_BOUNDS = (-5.0, 5.0)


def _check(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    if z.ndim != 2 or y.shape != (len(z),) or len(z) == 0:
        raise ValueError(f"need logits (N, K) and labels (N,) with N >= 1, got {z.shape} and {y.shape}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"labels must lie in [0, {z.shape[1] - 1}], got [{y.min()}, {y.max()}]")
    return z, y


def log_softmax(logits: Any, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``log softmax(logits / temperature)`` (float64, stable)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def nll(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true class, in nats, >= 0 (scikit-learn's ``log_loss`` of
    the softmax probabilities; it clips probabilities at float64 eps, this does not)."""
    z, y = _check(logits, labels)
    return float(-log_softmax(z, temperature)[np.arange(len(y)), y].mean())


def brier(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    """Multi-class Brier score ``mean_n sum_k (p_nk - [y_n = k])^2`` in [0, 2] (Brier 1950; scikit-learn's
    ``brier_score_loss`` with ``scale_by_half=False``; halve it for the binary convention)."""
    z, y = _check(logits, labels)
    p = np.exp(log_softmax(z, temperature))
    p[np.arange(len(y)), y] -= 1.0
    return float((p * p).sum(axis=1).mean())


def aurc(confidence: Any, correct: Any) -> float:
    """Area under the risk-coverage curve (Geifman et al. 2019), in [0, 1]: examples are accepted by
    decreasing confidence; ``AURC = (1/N) sum_{i=1..N} errors(first i) / i``.

    Tie rule (order-free): examples of equal confidence enter together in a random order, and the
    expected value over those orders is used (errors among the first j of a tied block of m with e
    errors count as ``j * e / m``). Without ties this is the usual definition.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    err = ~np.asarray(correct, dtype=bool).ravel()
    if conf.shape != err.shape or len(conf) == 0:
        raise ValueError(
            f"confidence and correct must be equal-length and non-empty, got {conf.shape}, {err.shape}"
        )
    order = np.argsort(-conf, kind="stable")
    conf, err = conf[order], err[order].astype(np.float64)
    n = len(conf)
    starts = np.r_[0, np.flatnonzero(np.diff(conf) != 0) + 1]
    sizes = np.diff(np.r_[starts, n])
    block_err = np.add.reduceat(err, starts)
    before = np.r_[0.0, np.cumsum(block_err)[:-1]]
    idx = np.arange(n)
    block = np.repeat(np.arange(len(starts)), sizes)
    j = idx - starts[block] + 1
    errors = before[block] + j * block_err[block] / sizes[block]
    return float(np.mean(errors / (idx + 1)))


def fit_temperature(logits: Any, labels: Any) -> float:
    """The temperature T > 0 minimizing :func:`nll` of ``logits / T`` (Guo et al. 2017), found by a
    bounded scalar search over log T in [-5, 5] (scipy's ``minimize_scalar``, xatol 1e-6)."""
    from scipy.optimize import minimize_scalar

    z, y = _check(logits, labels)
    res = minimize_scalar(
        lambda log_t: nll(z, y, float(np.exp(log_t))),
        bounds=_LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-6},
    )
    return float(np.exp(res.x))


def heldout_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, evaluation indices) of ``n`` examples: ``i % 5 == 0`` fit the temperature, the rest
    are evaluated. Needs n >= 2."""
    if n < 2:
        raise ValueError(f"temperature scaling needs at least 2 examples, got {n}")
    idx = np.arange(n)
    return idx[idx % HELDOUT_EVERY == 0], idx[idx % HELDOUT_EVERY != 0]
