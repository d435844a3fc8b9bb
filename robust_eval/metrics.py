"""Pure metric functions of the robustness suite: numpy arrays in, floats (or small dicts) out.

Every function validates its inputs first and raises a :class:`ValueError` that names the argument,
what was expected and how to fix it. Nothing here reads files, draws random numbers or touches a
model; suites compute logits/predictions and call these functions (see docs/metrics.md, "Metrics and their
exact definitions", for the formulas and the conventions of the reference code they reproduce).

Units: error rates, probabilities, calibration errors and OOD metrics are FRACTIONS in [0, 1] (a
report multiplies them by 100). Baseline-normalized numbers -- ``CE_c``, normalized mCE, relative mCE
and normalized flip rates -- are PERCENTAGES as published (the baseline itself scores 100).

Corruption errors are passed as ``{corruption name: per-severity errors}`` where the per-severity
errors are either a mapping ``{1: e1, ..., 5: e5}`` (integer keys; the strings ``"1".."5"`` are
accepted too) or a sequence of the five errors for severities 1..5 (the shape of
:data:`robust_eval.baselines.ALEXNET_IMAGENET_C_ERRORS`). Constants are always looked up by name.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np

from robust_eval.constants import (
    BENCHMARK_CORRUPTIONS,
    ECE_BINS,
    RMS_BIN_SIZE,
    SEVERITIES,
    TEST_PERTURBATIONS,
)

__all__ = [
    "SOFTMAX_PRECISIONS",
    "CorruptionErrors",
    "SeverityErrors",
    "anomaly_scores",
    "corruption_error_normalized",
    "expected_calibration_error",
    "flip_probability",
    "fpr_at_recall",
    "mce_normalized",
    "mean_corruption_error",
    "mean_flip_rate",
    "ood_metrics",
    "relative_mce",
    "reliability_bins",
    "rms_calibration_error",
    "top5_distance",
    "topk_correct",
    "topk_error",
    "topk_indices",
]

#: Errors of one corruption: ``{severity: error}`` or the 5 errors of severities 1..5 in order.
SeverityErrors = Mapping[int, float] | Sequence[float]
#: Errors of several corruptions, keyed by corruption name.
CorruptionErrors = Mapping[str, SeverityErrors]

#: Number of ranks compared by the top-5 distance (Hendrycks & Dietterich 2019).
_TOP5 = 5
#: Up to this many classes a full stable sort beats partition-then-sort in topk_indices (measured).
_FULL_SORT_MAX_CLASSES = 32


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------


def _array(
    value: object, name: str, *, ndim: int, dtype_kind: str = "float", cast: bool = True
) -> np.ndarray:
    """``value`` as a non-empty ndarray of ``ndim`` dims; ``dtype_kind`` is "float", "int" or "bool".

    Float arrays are cast to float64 unless ``cast`` is False (then only checked).
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(
            f"{name} must be an array of {ndim} dimensions; could not convert it: {exc}"
        ) from exc
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one sample")
    if dtype_kind == "float":
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
        if cast or arr.dtype == np.bool_:
            arr = arr.astype(np.float64, copy=False)
        if not np.all(np.isfinite(arr)):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise ValueError(f"{name} contains {bad} NaN/inf value(s); metrics need finite numbers")
    elif dtype_kind == "int":
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(
                f"{name} must hold integer class indices, got dtype {arr.dtype}; "
                "convert with .astype(np.int64) (and check where non-integers came from)"
            )
        if np.any(arr < 0):
            raise ValueError(f"{name} contains negative class indices (min {int(arr.min())})")
    elif dtype_kind == "bool":
        if arr.dtype != np.bool_:
            if not np.issubdtype(arr.dtype, np.number):
                raise ValueError(f"{name} must be boolean (or 0/1), got dtype {arr.dtype}")
            if not np.all((arr == 0) | (arr == 1)):
                raise ValueError(f"{name} must be boolean (or 0/1); it holds other values")
            arr = arr.astype(np.bool_)
    else:  # pragma: no cover - programming error
        raise AssertionError(dtype_kind)
    return arr


def _same_length(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{a_name} and {b_name} must have the same number of samples, "
            f"got {a.shape[0]} and {b.shape[0]} (shapes {a.shape} and {b.shape})"
        )


def _positive_int(value: object, name: str, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _fraction(value: object, name: str) -> float:
    """A finite number in [0, 1] (an error rate)."""
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ValueError(
            f"{name} = {value!r} is outside [0, 1]: error rates are fractions (0.372 means 37.2%)"
        )
    return v


def _names(names: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        raise ValueError(f"{what} must be a sequence of names, got the single string {names!r}")
    out = tuple(names)
    if not out:
        raise ValueError(f"{what} is empty; pass at least one name")
    dup = sorted({n for n in out if out.count(n) > 1})
    if dup:
        raise ValueError(f"{what} lists {dup} more than once")
    return out


def _severity_key(key: object, where: str) -> int:
    if isinstance(key, bool):
        raise ValueError(f"{where}: severity key {key!r} is not an integer 1..5")
    if isinstance(key, numbers.Integral) or (isinstance(key, str) and key.strip().isdecimal()):
        s = int(key)
    else:
        raise ValueError(f"{where}: severity key {key!r} is not an integer 1..5")
    if s not in SEVERITIES:
        raise ValueError(f"{where}: severity {s} is outside 1..5")
    return s


def _severity_values(per: object, where: str) -> dict[int, float]:
    """Normalize one corruption's errors to ``{severity: error}`` (validated fractions)."""
    if isinstance(per, Mapping):
        out: dict[int, float] = {}
        for key, value in per.items():
            s = _severity_key(key, where)
            if s in out:
                raise ValueError(f"{where}: severity {s} is given twice (as {key!r} and another key)")
            out[s] = _fraction(value, f"{where}[{s}]")
        return out
    if isinstance(per, (str, bytes)) or not isinstance(per, (Sequence, np.ndarray)):
        raise ValueError(
            f"{where} must be a mapping {{severity: error}} or a sequence of 5 errors, got {type(per).__name__}"
        )
    values = list(per)
    if len(values) != len(SEVERITIES):
        raise ValueError(
            f"{where} has {len(values)} values; a sequence must hold exactly the 5 errors of severities 1..5"
        )
    return {s: _fraction(v, f"{where}[{s}]") for s, v in zip(SEVERITIES, values)}


def _error_table(errors: CorruptionErrors, corruptions: Sequence[str], what: str) -> np.ndarray:
    """``(len(corruptions), 5)`` array of the requested cells; ValueError naming every missing one."""
    names = _names(corruptions, "corruptions")
    if not isinstance(errors, Mapping):
        raise ValueError(
            f"{what} must be a mapping {{corruption: per-severity errors}}, got {type(errors).__name__}"
        )
    table = np.empty((len(names), len(SEVERITIES)), dtype=np.float64)
    missing: list[str] = []
    for i, name in enumerate(names):
        if name not in errors:
            missing.append(f"{name} (all severities)")
            continue
        per = _severity_values(errors[name], f"{what}[{name!r}]")
        absent = [s for s in SEVERITIES if s not in per]
        if absent:
            missing.append(f"{name} (severities {absent})")
            continue
        table[i] = [per[s] for s in SEVERITIES]
    if missing:
        raise ValueError(
            f"{what} lacks {len(missing)} of the requested corruption(s): {'; '.join(missing)}. "
            "Every corruption averaged needs severities 1-5: evaluate the missing cells, use a baseline "
            "that has them, or pass `corruptions=` without them"
        )
    return table


# --------------------------------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------------------------------


def _logits_labels(logits: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    lg = _array(logits, "logits", ndim=2)
    lb = _array(labels, "labels", ndim=1, dtype_kind="int")
    _same_length(lg, "logits", lb, "labels")
    n_classes = lg.shape[1]
    if int(lb.max()) >= n_classes:
        raise ValueError(
            f"labels go up to {int(lb.max())} but logits have only {n_classes} classes; "
            "check --num-classes / the data set"
        )
    return lg, lb


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> np.ndarray:
    """Per-sample top-``k`` hit, in [0, 1], with ties among scores split evenly.

    Sample ``i`` counts as a hit when its label is among the ``k`` largest logits. When the label's
    logit ties with others across the top-``k`` boundary the hit is fractional: the probability that
    the label lands in the top ``k`` under a random order of the tied classes
    (``clip((k - n_greater) / n_tied, 0, 1)``, ``n_tied`` including the label). Without ties this is
    exactly 0 or 1. It makes the error independent of class order and gives a constant model chance
    error rather than 0 or 1. Summing this over batches and dividing by N streams :func:`topk_error`.

    Parameters
    ----------
    logits : array of shape (N, K)
        Scores (logits or probabilities; only their order matters). Finite.
    labels : array of shape (N,)
        Integer class indices in ``[0, K)``.
    k : int, default 1
        ``1 <= k <= K``.

    Returns
    -------
    ndarray of shape (N,), float64 in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> topk_correct(np.array([[0.1, 0.9], [0.5, 0.5], [0.8, 0.2]]), np.array([1, 0, 1]))
    array([1. , 0.5, 0. ])
    """
    lg, lb = _logits_labels(logits, labels)
    k = _positive_int(k, "k")
    if k > lg.shape[1]:
        raise ValueError(f"k = {k} exceeds the number of classes K = {lg.shape[1]}")
    label_score = lg[np.arange(lg.shape[0]), lb][:, None]
    n_greater = np.count_nonzero(lg > label_score, axis=1)
    n_tied = np.count_nonzero(lg == label_score, axis=1)  # >= 1: the label itself
    return np.clip((k - n_greater) / n_tied, 0.0, 1.0)


def topk_error(logits: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Top-``k`` error rate: the fraction of samples whose label is not among the ``k`` largest logits.

    Ties are split evenly (see :func:`topk_correct`); for real-valued logits ties do not occur and
    this is the usual ``1 - mean(label in top-k)``.

    Parameters
    ----------
    logits : array of shape (N, K)
        Finite scores; only their order per row matters.
    labels : array of shape (N,)
        Integer class indices in ``[0, K)``.
    k : int, default 1
        ``1 <= k <= K``; ``k = 5`` gives the top-5 error.

    Returns
    -------
    float in [0, 1] (multiply by 100 for a percentage).

    Examples
    --------
    >>> import numpy as np
    >>> logits = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [2.0, 0.0, 1.0]])
    >>> labels = np.array([0, 1, 1, 1])
    >>> topk_error(logits, labels)          # samples 2 and 3 are wrong
    0.5
    >>> topk_error(logits, labels, k=2)     # sample 3 ranks its label last
    0.25
    """
    # mean of the misses (not 1 - mean of the hits): with whole hits the sum is an exact integer, so
    # e.g. 21739 misses of 50000 give exactly the float 0.43478
    return float(np.mean(1.0 - topk_correct(logits, labels, k)))


def topk_indices(logits: np.ndarray, k: int = 5) -> np.ndarray:
    """Class indices of the ``k`` largest logits per row, best first; ties go to the lower index.

    The tie rule is the reference -P code's (``scipy.stats.rankdata(-scores, method="ordinal")``), and
    ``topk_indices(logits, 1)[:, 0]`` equals ``logits.argmax(1)``. Feed the result (reshaped to
    ``(S, T, 5)``) to :func:`top5_distance` and its first column to :func:`flip_probability`.

    Parameters
    ----------
    logits : array of shape (N, K), finite.
    k : int, default 5. ``1 <= k <= K``.

    Returns
    -------
    ndarray of shape (N, k), int64.

    Examples
    --------
    >>> import numpy as np
    >>> topk_indices(np.array([[0.1, 0.7, 0.1, 0.1]]), k=3)
    array([[1, 0, 2]])
    """
    lg = _array(logits, "logits", ndim=2, cast=False)
    k = _positive_int(k, "k")
    n, n_classes = lg.shape
    if k > n_classes:
        raise ValueError(f"k = {k} exceeds the number of classes K = {n_classes}")
    if not np.issubdtype(lg.dtype, np.floating):
        lg = lg.astype(np.float64)  # negating unsigned integers would wrap around
    if n_classes <= _FULL_SORT_MAX_CLASSES:
        return np.argsort(-lg, axis=1, kind="stable")[:, :k].astype(np.int64, copy=False)
    # O(N K) selection rather than a full sort (K = 1000 for ImageNet): the k-th largest score of
    # each row, every class above it, then classes tied with it, lowest index first, up to k.
    kth = np.partition(lg, n_classes - k, axis=1)[:, n_classes - k, None]
    above = lg > kth
    chosen = above | (lg == kth)
    room = k - above.sum(axis=1)
    excess = np.flatnonzero(chosen.sum(axis=1) > k)  # rows with more ties at the k-th score than room
    if excess.size:
        at_kth = chosen[excess] & ~above[excess]
        fill = at_kth & (np.cumsum(at_kth, axis=1) <= room[excess, None])
        chosen[excess] = above[excess] | fill
    idx = np.nonzero(chosen)[1].reshape(n, k)  # exactly k per row, ascending class index
    # best first; the stable sort keeps ascending class index among equal scores
    order = np.argsort(-np.take_along_axis(lg, idx, axis=1), axis=1, kind="stable")
    return np.take_along_axis(idx, order, axis=1).astype(np.int64, copy=False)


# --------------------------------------------------------------------------------------------------
# corruption errors
# --------------------------------------------------------------------------------------------------


def mean_corruption_error(
    errors: CorruptionErrors, corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS
) -> float:
    """Unnormalized mCE (CIFAR convention): the plain mean error over the corruption x severity cells.

    ``mCE = mean_{c, s} E(c, s)`` over ``corruptions`` x severities 1..5 -- what the AugMix, PixMix
    and IPMix CIFAR tables call "mCE". The 4 held-out extras are not in the default list; corruptions
    of ``errors`` not in ``corruptions`` are ignored.

    Parameters
    ----------
    errors : mapping corruption -> {severity: error} (or a sequence of the 5 errors)
        Top-1 error fractions in [0, 1]. Every requested cell must be present.
    corruptions : sequence of str, default the 15 benchmark corruptions.

    Returns
    -------
    float in [0, 1].

    Raises
    ------
    ValueError
        Naming every missing (corruption, severity) cell, or any value outside [0, 1].

    Examples
    --------
    >>> errs = {"fog": {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4, 5: 0.5}, "snow": [0.2, 0.2, 0.2, 0.2, 0.2]}
    >>> round(mean_corruption_error(errs, corruptions=["fog", "snow"]), 10)
    0.25
    """
    return float(np.mean(_error_table(errors, corruptions, "errors")))


def corruption_error_normalized(
    errors: CorruptionErrors,
    baseline_errors: CorruptionErrors,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
) -> dict[str, float]:
    """Baseline-normalized corruption error per corruption (ImageNet convention), in percent.

    ``CE_c = 100 * sum_s E(c, s) / sum_s E_base(c, s)`` over severities 1..5. With the AlexNet
    constants (:data:`robust_eval.baselines.ALEXNET_IMAGENET_C_ERRORS`) this is the CE of Hendrycks &
    Dietterich (2019); AlexNet itself scores 100 on every corruption.

    Parameters
    ----------
    errors, baseline_errors : mapping corruption -> {severity: error} (or 5-sequence)
        Error fractions in [0, 1], looked up by corruption name.
    corruptions : sequence of str, default the 15 benchmark corruptions.

    Returns
    -------
    dict corruption -> CE_c in percent (>= 0), in the order of ``corruptions``.

    Raises
    ------
    ValueError
        A missing cell in either table (e.g. AlexNet has no published errors for the 4 extras), or a
        baseline whose errors for a corruption sum to 0.

    Examples
    --------
    >>> base = {"fog": [0.5, 0.5, 0.5, 0.5, 0.5]}
    >>> corruption_error_normalized({"fog": [0.25] * 5}, base, corruptions=["fog"])
    {'fog': 50.0}
    """
    names = _names(corruptions, "corruptions")
    mine = _error_table(errors, names, "errors")
    base = _error_table(baseline_errors, names, "baseline_errors")
    base_sum = base.sum(axis=1)
    zero = [c for c, b in zip(names, base_sum) if b == 0.0]
    if zero:
        raise ValueError(f"baseline_errors sum to 0 over severities for {zero}; cannot normalize by them")
    ce = 100.0 * (mine.sum(axis=1) / base_sum)  # ratio first: equal tables give exactly 100
    return {c: float(v) for c, v in zip(names, ce)}


def mce_normalized(
    errors: CorruptionErrors,
    baseline_errors: CorruptionErrors,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
) -> float:
    """Baseline-normalized mCE in percent: the mean over ``corruptions`` of :func:`corruption_error_normalized`.

    A model with exactly the baseline's errors scores 100; lower is better.

    Examples
    --------
    >>> base = {"fog": [0.5] * 5, "snow": [0.4] * 5}
    >>> mce_normalized({"fog": [0.25] * 5, "snow": [0.4] * 5}, base, corruptions=["fog", "snow"])
    75.0
    """
    ce = corruption_error_normalized(errors, baseline_errors, corruptions)
    return float(np.mean(list(ce.values())))


def relative_mce(
    errors: CorruptionErrors,
    clean_error: float,
    baseline_errors: CorruptionErrors,
    baseline_clean_error: float,
    corruptions: Sequence[str] = BENCHMARK_CORRUPTIONS,
) -> float:
    """Relative mCE in percent: how much the error GROWS under corruption, relative to the baseline.

    ``RelCE_c = 100 * sum_s (E(c, s) - E_clean) / sum_s (E_base(c, s) - E_base_clean)``, relative mCE
    = mean of ``RelCE_c`` over ``corruptions``. With AlexNet, ``E_base_clean = 0.43478``
    (:data:`robust_eval.baselines.ALEXNET_CLEAN_ERROR`). Can be negative when a model's error drops
    under corruption.

    Parameters
    ----------
    errors : mapping corruption -> per-severity error fractions.
    clean_error : float in [0, 1], the model's clean top-1 error.
    baseline_errors : mapping corruption -> per-severity error fractions of the baseline.
    baseline_clean_error : float in [0, 1], the baseline's clean top-1 error.
    corruptions : sequence of str, default the 15 benchmark corruptions.

    Raises
    ------
    ValueError
        Missing cells, values outside [0, 1], or a corruption where the baseline's error growth
        ``sum_s (E_base(c, s) - E_base_clean)`` is exactly 0.

    Examples
    --------
    >>> base = {"fog": [0.6] * 5}
    >>> relative_mce({"fog": [0.3] * 5}, 0.2, base, baseline_clean_error=0.4, corruptions=["fog"])
    50.0
    """
    clean = _fraction(clean_error, "clean_error")
    base_clean = _fraction(baseline_clean_error, "baseline_clean_error")
    names = _names(corruptions, "corruptions")
    mine = _error_table(errors, names, "errors")
    base = _error_table(baseline_errors, names, "baseline_errors")
    growth = (base - base_clean).sum(axis=1)
    zero = [c for c, g in zip(names, growth) if g == 0.0]
    if zero:
        raise ValueError(
            f"the baseline's errors for {zero} sum to exactly its clean error times 5 "
            "(no error growth); relative CE is undefined for them"
        )
    rel = 100.0 * ((mine - clean).sum(axis=1) / growth)
    return float(np.mean(rel))


# --------------------------------------------------------------------------------------------------
# perturbation stability (-P)
# --------------------------------------------------------------------------------------------------


def _frame_pairs(x: np.ndarray, noise: bool, stride: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(earlier, later) frames compared by the -P metrics, along axis 1 of ``x``."""
    stride = _positive_int(stride, "stride")
    n_frames = x.shape[1]
    if n_frames < 2:
        raise ValueError(f"{name} has {n_frames} frame(s) per sequence; the -P metrics need at least 2")
    if noise:
        # Every frame 1..T-1 against frame 0 (the clean one); the stride does not apply.
        return np.broadcast_to(x[:, :1], x[:, 1:].shape), x[:, 1:]
    if stride >= n_frames:
        raise ValueError(
            f"stride = {stride} leaves no frame pair in sequences of {n_frames} frames; use stride < {n_frames}"
        )
    return x[:, :-stride], x[:, stride:]


def flip_probability(predictions: np.ndarray, noise: bool, stride: int = 1) -> float:
    """Flip probability of the -P benchmarks: how often the top-1 prediction changes along a sequence.

    For a noise perturbation (``noise=True``: gaussian/shot/speckle noise) every frame ``t = 1..T-1``
    is compared with frame 0, the clean image, and ``stride`` is ignored (as in the reference code,
    where the noise difficulty level changes the data, not the comparison). For all other perturbations
    frame ``t`` is compared with frame ``t - stride`` for ``t = stride..T-1`` (``stride`` = the
    difficulty level; 1 for CIFAR-P). ``FP = mean over sequences of (flipped comparisons / comparisons)``.

    Parameters
    ----------
    predictions : int array of shape (S, T)
        Top-1 class of each of the T frames of S sequences (``T >= 2``).
    noise : bool
        Compare against frame 0 (noise perturbations) rather than against the previous frame.
    stride : int, default 1
        Frame distance of consecutive comparisons, ``1 <= stride < T``.

    Returns
    -------
    float in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> preds = np.array([[3, 3, 5, 5, 3]])
    >>> flip_probability(preds, noise=False)           # 3->3, 3->5, 5->5, 5->3
    0.5
    >>> flip_probability(preds, noise=True)            # frames 1..4 vs frame 0 (3)
    0.5
    >>> round(flip_probability(preds, noise=False, stride=2), 6)   # 3->5, 3->5, 5->3
    1.0
    """
    p = _array(predictions, "predictions", ndim=2, dtype_kind="int")
    earlier, later = _frame_pairs(p, bool(noise), stride, "predictions")
    return float(np.mean(earlier != later))


def _top5_pair_distance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Reference top-5 rank distance between top-5 lists ``first`` -> ``second`` (shape (..., 5))."""
    match = first[..., :, None] == second[..., None, :]  # (..., 5, 5): first[i] == second[j]
    # Rank of first's i-th class in the second list, capped at 5 (absent = outside the top 5).
    rank_in_second = np.where(match.any(axis=-1), match.argmax(axis=-1), _TOP5)
    return np.abs(np.arange(_TOP5) - rank_in_second).sum(axis=-1)


def top5_distance(top5: np.ndarray, noise: bool, stride: int = 1) -> float:
    """Top-5 distance (T5D) of the -P benchmarks: how much the top-5 ranking moves along a sequence.

    For a compared pair of frames (chosen exactly as in :func:`flip_probability`: frame 0 vs frame
    ``t`` for noise, else frame ``t - stride`` vs ``t``), let ``c_0..c_4`` be the earlier frame's top-5
    classes, best first, and ``r(c)`` the 0-based rank of ``c`` in the later frame, capped at 5
    (classes outside the later top 5 count as rank 5). The pair's distance is
    ``sum_{i=0..4} |i - min(r(c_i), 5)|`` in [0, 18] (the rank distance of the reference
    ``ranking_dist(mode="top5")``; knowing both top-5 lists determines it). T5D = mean over sequences
    of the mean pair distance.

    Parameters
    ----------
    top5 : int array of shape (S, T, 5)
        Each frame's 5 best classes, best first, distinct (e.g. :func:`topk_indices` reshaped).
    noise : bool
        Compare against frame 0 (noise perturbations) rather than against the previous frame.
    stride : int, default 1
        Frame distance of consecutive comparisons, ``1 <= stride < T``.

    Returns
    -------
    float in [0, 18].

    Examples
    --------
    >>> import numpy as np
    >>> seq = np.array([[[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [9, 0, 1, 2, 3]]])
    >>> top5_distance(seq, noise=False)   # swap of ranks 0/1 -> 2; class 4 dropped, rest shifted -> 5
    3.5
    >>> top5_distance(seq, noise=True)    # frame 0 vs 1 -> 2; frame 0 vs 2 -> 1+1+1+1+1 = 5
    3.5
    """
    t5 = np.asarray(top5)
    if t5.ndim != 3 or t5.shape[-1] != _TOP5:
        raise ValueError(f"top5 must have shape (S, T, 5) (top-5 classes per frame), got {t5.shape}")
    t5 = _array(t5, "top5", ndim=3, dtype_kind="int")
    ordered = np.sort(t5, axis=-1)
    if np.any(ordered[..., 1:] == ordered[..., :-1]):
        raise ValueError("top5 lists a class twice within a frame; each frame needs 5 distinct classes")
    earlier, later = _frame_pairs(t5, bool(noise), stride, "top5")
    return float(np.mean(_top5_pair_distance(earlier, later)))


def mean_flip_rate(
    values: Mapping[str, float],
    baseline: Mapping[str, float] | None = None,
    perturbations: Sequence[str] = TEST_PERTURBATIONS,
) -> float:
    """Mean over perturbations of flip probabilities (mFR) or top-5 distances (mT5D).

    ``baseline=None``: the plain mean of ``values[p]`` (CIFAR convention; a fraction for FP, a rank
    distance for T5D). With a baseline: ``mean_p 100 * values[p] / baseline[p]`` in percent (ImageNet
    convention, ``FR_p = FP_p / FP_p(baseline)``; the baseline scores 100).

    Parameters
    ----------
    values : mapping perturbation -> FP (or T5D), >= 0.
    baseline : mapping perturbation -> the baseline's FP (or T5D), > 0; or None.
    perturbations : sequence of str, default the 10 test perturbations. The authors' CIFAR-P script
        averages spatter instead of snow: pass the list you use and record it.

    Raises
    ------
    ValueError
        A perturbation missing from ``values`` or ``baseline`` (all named), a negative/NaN value, or a
        baseline value of 0.

    Examples
    --------
    >>> fp = {"rotate": 0.02, "scale": 0.04}
    >>> round(mean_flip_rate(fp, perturbations=["rotate", "scale"]), 10)
    0.03
    >>> round(mean_flip_rate(fp, {"rotate": 0.04, "scale": 0.04}, ["rotate", "scale"]), 10)
    75.0
    """
    names = _names(perturbations, "perturbations")

    def _table(mapping: Mapping[str, float], what: str) -> np.ndarray:
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"{what} must be a mapping {{perturbation: value}}, got {type(mapping).__name__}"
            )
        missing = [p for p in names if p not in mapping]
        if missing:
            raise ValueError(f"{what} lacks {missing}; evaluate them or pass `perturbations=` without them")
        out = np.empty(len(names), dtype=np.float64)
        for i, p in enumerate(names):
            try:
                out[i] = float(mapping[p])
            except (TypeError, ValueError):
                raise ValueError(f"{what}[{p!r}] must be a number, got {mapping[p]!r}") from None
        bad = [p for p, v in zip(names, out) if not (math.isfinite(v) and v >= 0.0)]
        if bad:
            raise ValueError(f"{what} has negative or non-finite values for {bad}")
        return out

    mine = _table(values, "values")
    if baseline is None:
        return float(np.mean(mine))
    base = _table(baseline, "baseline")
    zero = [p for p, b in zip(names, base) if b == 0.0]
    if zero:
        raise ValueError(f"baseline is 0 for {zero}; cannot normalize by it")
    return float(np.mean(100.0 * (mine / base)))


# --------------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------------


def _confidence_correct(confidence: object, correct: object) -> tuple[np.ndarray, np.ndarray]:
    conf = _array(confidence, "confidence", ndim=1)
    corr = _array(correct, "correct", ndim=1, dtype_kind="bool")
    _same_length(conf, "confidence", corr, "correct")
    if conf.min() < 0.0 or conf.max() > 1.0:
        raise ValueError(
            f"confidence must lie in [0, 1] (max softmax probabilities), got range "
            f"[{conf.min():.4g}, {conf.max():.4g}]; apply softmax to logits first"
        )
    return conf, corr


def _tie_mean_correct(conf: np.ndarray, corr: np.ndarray) -> np.ndarray:
    """``corr`` (sorted by ``conf``) with every run of equal confidences replaced by its mean accuracy."""
    starts = np.r_[0, np.flatnonzero(np.diff(conf)) + 1]
    sizes = np.diff(np.r_[starts, conf.size])
    return np.repeat(np.add.reduceat(corr.astype(np.float64), starts) / sizes, sizes)


def rms_calibration_error(
    confidence: np.ndarray,
    correct: np.ndarray,
    bin_size: int = RMS_BIN_SIZE,
    reference_compatible: bool = False,
) -> float:
    """RMS calibration error with equal-count bins (Hendrycks et al.; PixMix / Outlier Exposure).

    Samples are sorted by confidence and cut into ``B = max(1, N // bin_size)`` bins of ``bin_size``
    consecutive samples, the last bin taking the remainder. With ``n_b`` samples, mean confidence
    ``conf_b`` and accuracy ``acc_b`` per bin::

        RMS = sqrt( sum_b (n_b / N) * (conf_b - acc_b)^2 )

    Tied confidences: a bin edge may cut a run of equal confidences, and which of the tied samples
    fall on which side is arbitrary. The default gives every sample of a run of equal confidences
    the run's mean accuracy before binning, so the result does not depend on input order and is not
    inflated by an unlucky order (N = 1000 all at confidence 0.5, half correct, gives 0, as ECE
    does). Without ties this changes nothing.

    ``reference_compatible=True`` reproduces the reference ``calib_err`` loop exactly: the order of
    ``np.argsort(confidence)`` (ties keep whatever order that gives, so the value depends on the input
    order), and the sum skips the LAST bin (the most confident samples) while still dividing by the
    full N; fewer than ``bin_size`` samples is an error (the reference code crashes there). The
    default sums every bin (and uses a single bin when N < ``bin_size``). Published PixMix/OE numbers
    are the reference-compatible ones; report which you use.

    Parameters
    ----------
    confidence : array of shape (N,)
        Confidence of the predicted class (max softmax probability), in [0, 1].
    correct : bool (or 0/1) array of shape (N,)
        Whether each prediction is right.
    bin_size : int, default 100
        Samples per bin.
    reference_compatible : bool, default False
        The reference loop: its tie order and its skipped last bin (see above).

    Returns
    -------
    float in [0, 1] (papers report it x100).

    Examples
    --------
    >>> import numpy as np
    >>> conf = np.array([0.6, 0.6, 0.9, 0.9])
    >>> correct = np.array([True, False, True, True])
    >>> round(rms_calibration_error(conf, correct, bin_size=2), 6)   # sqrt(.5*.1**2 + .5*.1**2)
    0.1
    >>> round(rms_calibration_error(conf, correct, bin_size=2, reference_compatible=True), 6)
    0.070711
    >>> rms_calibration_error(np.full(4, 0.5), np.array([1, 1, 0, 0]), bin_size=2)   # ties: order-free
    0.0
    """
    conf, corr = _confidence_correct(confidence, correct)
    bin_size = _positive_int(bin_size, "bin_size")
    n = conf.shape[0]
    if reference_compatible and n < bin_size:
        raise ValueError(
            f"the reference-compatible RMS calibration error needs at least bin_size = {bin_size} samples "
            f"(got {n}); the reference code fails here. Evaluate more samples or use "
            "reference_compatible=False"
        )
    if reference_compatible:
        order = np.argsort(conf)  # the reference's (default-kind) sort, ties included
        conf, acc = conf[order], corr[order].astype(np.float64)
    else:
        order = np.argsort(conf, kind="stable")
        conf = conf[order]
        acc = _tie_mean_correct(conf, corr[order])
    n_bins = max(1, n // bin_size)
    bin_of = np.minimum(np.arange(n) // bin_size, n_bins - 1)
    counts = np.bincount(bin_of, minlength=n_bins).astype(np.float64)
    gap = (np.bincount(bin_of, conf, n_bins) - np.bincount(bin_of, acc, n_bins)) / counts
    terms = counts / n * gap**2
    if reference_compatible:
        terms = terms[:-1]
    return float(math.sqrt(terms.sum()))


def reliability_bins(
    confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS
) -> dict[str, np.ndarray]:
    """Equal-width confidence bins for a reliability diagram (and :func:`expected_calibration_error`).

    Bin ``b`` covers ``(b / n_bins, (b + 1) / n_bins]``; a confidence of exactly 0 goes to the first
    bin (Guo et al. 2017's binning).

    Parameters
    ----------
    confidence : array of shape (N,), in [0, 1].
    correct : bool (or 0/1) array of shape (N,).
    n_bins : int, default 15.

    Returns
    -------
    dict of arrays of shape (n_bins,):
        ``bin_lower``, ``bin_upper`` (edges), ``confidence`` (mean confidence, NaN if empty),
        ``accuracy`` (fraction correct, NaN if empty), ``count`` (int64).

    Examples
    --------
    >>> import numpy as np
    >>> bins = reliability_bins(np.array([0.1, 0.3, 0.35, 0.9]), np.array([0, 1, 0, 1]), n_bins=2)
    >>> bins["count"].tolist(), bins["accuracy"].tolist()
    ([3, 1], [0.3333333333333333, 1.0])
    """
    conf, corr = _confidence_correct(confidence, correct)
    n_bins = _positive_int(n_bins, "n_bins")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # index b with edges[b] < conf <= edges[b + 1] (0 -> bin 0), using the very edges reported.
    bin_of = np.searchsorted(edges[1:-1], conf, side="left")
    counts = np.bincount(bin_of, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(bin_of, conf, n_bins) / counts
        accuracy = np.bincount(bin_of, corr.astype(np.float64), n_bins) / counts
    return {
        "bin_lower": edges[:-1].copy(),
        "bin_upper": edges[1:].copy(),
        "confidence": mean_conf,
        "accuracy": accuracy,
        "count": counts.astype(np.int64),
    }


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Expected calibration error (Guo et al. 2017): ``sum_b (n_b / N) * |acc_b - conf_b|``.

    ``n_bins`` equal-width bins over [0, 1] as in :func:`reliability_bins`; empty bins contribute 0.

    Parameters
    ----------
    confidence : array of shape (N,), max softmax probabilities in [0, 1].
    correct : bool (or 0/1) array of shape (N,).
    n_bins : int, default 15.

    Returns
    -------
    float in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> conf = np.array([0.1, 0.3, 0.35, 0.9])
    >>> round(expected_calibration_error(conf, np.array([0, 1, 0, 1]), n_bins=2), 6)  # .75*|1/3-.25| + .25*.1
    0.0875
    """
    bins = reliability_bins(confidence, correct, n_bins)
    filled = bins["count"] > 0
    weight = bins["count"][filled] / bins["count"].sum()
    return float(np.sum(weight * np.abs(bins["accuracy"][filled] - bins["confidence"][filled])))


# --------------------------------------------------------------------------------------------------
# anomaly / OOD detection
# --------------------------------------------------------------------------------------------------


#: Floating-point precisions :func:`anomaly_scores` computes the softmax in.
SOFTMAX_PRECISIONS: tuple[str, ...] = ("float32", "float64")


def anomaly_scores(logits: np.ndarray, precision: str = "float32") -> np.ndarray:
    """Anomaly score = negative maximum softmax probability (higher = more anomalous), in [-1, -1/K].

    ``max softmax = 1 / sum_j exp(z_j - max_j z_j)``, computed stably (huge logits do not overflow).
    The default ``precision="float32"`` is the reference computation (``F.softmax`` of float32
    logits in the Outlier Exposure / PixMix / IPMix scripts): there a confident prediction whose logit
    margin exceeds about 16.6 has a max softmax of exactly 1.0, so very confident samples TIE, which
    moves AUROC / FPR95 and the RMS calibration error; published tables include those ties, so the
    headline numbers use float32. ``precision="float64"`` separates them (logits are converted to
    float64 first); label any number computed that way.
    To restrict to a class subset (ImageNet-O/-A/-R: 200 classes), mask the logits BEFORE calling.

    Parameters
    ----------
    logits : array of shape (N, K), finite.
    precision : "float32" (default, the reference) or "float64".

    Returns
    -------
    ndarray of shape (N,), float64 holding the values computed at ``precision``.

    Examples
    --------
    >>> import numpy as np
    >>> anomaly_scores(np.array([[0.0, 0.0], [1000.0, 0.0]]))
    array([-0.5, -1. ])
    >>> z = np.array([[20.0, 0.0]])   # margin 20: float32 rounds the max softmax to exactly 1
    >>> float(anomaly_scores(z)[0]), float(anomaly_scores(z, "float64")[0] + 1.0) > 0
    (-1.0, True)
    """
    if precision not in SOFTMAX_PRECISIONS:
        raise ValueError(f"precision must be one of {SOFTMAX_PRECISIONS}, got {precision!r}")
    lg = _array(logits, "logits", ndim=2).astype(np.dtype(precision), copy=False)
    shifted = lg - lg.max(axis=1, keepdims=True)
    one = lg.dtype.type(1.0)
    return (-(one / np.exp(shifted).sum(axis=1))).astype(np.float64)


def _in_out_scores(in_scores: object, out_scores: object) -> tuple[np.ndarray, np.ndarray]:
    ins = _array(in_scores, "in_scores", ndim=1)
    outs = _array(out_scores, "out_scores", ndim=1)
    return ins, outs


def fpr_at_recall(in_scores: np.ndarray, out_scores: np.ndarray, recall: float = 0.95) -> float:
    """False-positive rate on in-distribution data where OOD recall is closest to ``recall``.

    OOD samples are the positive class and higher scores mean "more anomalous". Thresholds are the
    distinct score values, from the highest down to the first one that flags every OOD sample; among
    them the one whose recall (fraction of OOD samples with score >= threshold) is closest to
    ``recall`` is chosen, ties broken toward the LARGER FPR (the lower threshold) -- the rule of the
    Outlier Exposure reference code (``fpr_and_fdr_at_recall``), which a naive pick of the first
    threshold reaching ``recall`` does not reproduce. FPR = fraction of in-distribution samples with
    score >= that threshold.

    Parameters
    ----------
    in_scores : array of shape (N_in,)
        Anomaly scores of in-distribution samples (negatives), e.g. :func:`anomaly_scores`.
    out_scores : array of shape (N_out,)
        Anomaly scores of OOD samples (positives).
    recall : float in (0, 1], default 0.95.

    Returns
    -------
    float in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> ins = np.array([0.1, 0.2, 0.3, 0.6])
    >>> outs = np.array([0.5, 0.7, 0.8, 0.9])
    >>> fpr_at_recall(ins, outs, recall=0.5)    # threshold 0.8: recall 2/4, no in-dist sample flagged
    0.0
    >>> fpr_at_recall(ins, outs, recall=0.75)   # 0.7 and 0.6 both give recall 3/4: tie -> larger FPR
    0.25
    >>> fpr_at_recall(ins, outs, recall=0.95)   # closest is full recall (threshold 0.5): 0.6 flagged
    0.25
    """
    ins, outs = _in_out_scores(in_scores, out_scores)
    try:
        level = float(recall)
    except (TypeError, ValueError):
        raise ValueError(f"recall must be a number in (0, 1], got {recall!r}") from None
    if not 0.0 < level <= 1.0:
        raise ValueError(f"recall must be in (0, 1], got {recall!r}")
    scores = np.concatenate([outs, ins])
    is_out = np.concatenate([np.ones(outs.size, np.int64), np.zeros(ins.size, np.int64)])
    order = np.argsort(scores, kind="stable")[::-1]  # descending score
    scores, is_out = scores[order], is_out[order]
    # Last position of each run of equal scores = one threshold per distinct value.
    thresholds = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(is_out)[thresholds]
    fps = thresholds + 1 - tps
    recalls = tps / tps[-1]
    # From the first threshold reaching full recall back up to the highest threshold; np.argmin's
    # first-occurrence rule then breaks ties toward the lower threshold, i.e. the larger FPR.
    full = int(np.searchsorted(tps, tps[-1]))
    recalls, fps = recalls[full::-1], fps[full::-1]
    cutoff = int(np.argmin(np.abs(recalls - level)))
    return float(fps[cutoff] / ins.size)


def ood_metrics(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, float]:
    """AUROC, AUPR and FPR95 of separating OOD (positive) from in-distribution (negative) samples.

    ``auroc`` = scikit-learn ``roc_auc_score``, ``aupr`` = ``average_precision_score`` (both match the
    reference code exactly), ``fpr95`` = :func:`fpr_at_recall` at 0.95 with the reference tie rule.
    Scores: higher = more anomalous (e.g. :func:`anomaly_scores`, the negative max softmax).

    Parameters
    ----------
    in_scores : array of shape (N_in,), anomaly scores of in-distribution samples.
    out_scores : array of shape (N_out,), anomaly scores of OOD samples.

    Returns
    -------
    dict with ``auroc``, ``aupr``, ``fpr95``: floats in [0, 1]. AUPR's chance level is
    ``N_out / (N_in + N_out)``.

    Examples
    --------
    >>> import numpy as np
    >>> m = ood_metrics(np.array([0.1, 0.2, 0.3, 0.6]), np.array([0.5, 0.7, 0.8, 0.9]))
    >>> m["auroc"], round(m["aupr"], 6), m["fpr95"]
    (0.9375, 0.95, 0.25)
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    ins, outs = _in_out_scores(in_scores, out_scores)
    y_true = np.concatenate([np.ones(outs.size, np.int64), np.zeros(ins.size, np.int64)])
    scores = np.concatenate([outs, ins])
    return {
        "auroc": float(roc_auc_score(y_true, scores)),
        "aupr": float(average_precision_score(y_true, scores)),
        "fpr95": fpr_at_recall(ins, outs, 0.95),
    }
