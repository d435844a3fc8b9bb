"""Golden values, hand computations, reference-rule oracles and properties of robust_eval.metrics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

from robust_eval.baselines import ALEXNET_CLEAN_ERROR, ALEXNET_IMAGENET_C_ERRORS
from robust_eval.constants import BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES, TEST_PERTURBATIONS
from robust_eval.metrics import (
    anomaly_scores,
    corruption_error_normalized,
    expected_calibration_error,
    flip_probability,
    fpr_at_recall,
    mce_normalized,
    mean_corruption_error,
    mean_flip_rate,
    ood_metrics,
    relative_mce,
    reliability_bins,
    rms_calibration_error,
    top5_distance,
    topk_correct,
    topk_error,
    topk_indices,
)

PROPS = settings(max_examples=60, deadline=None)
N_IMAGENET_VAL = 50_000


# --------------------------------------------------------------------------------------------------
# a fake model that reproduces given error rates exactly
# --------------------------------------------------------------------------------------------------


def _fake_model_logits(labels: np.ndarray, error: float, n_classes: int) -> np.ndarray:
    """Logits of a 'model' that misclassifies exactly round(error * N) of the samples (the first ones)."""
    n = labels.size
    n_wrong = round(error * n)
    predicted = labels.copy()
    predicted[:n_wrong] = (labels[:n_wrong] + 1) % n_classes
    logits = np.zeros((n, n_classes), np.float32)
    logits[np.arange(n), predicted] = 5.0
    return logits


@pytest.fixture(scope="module")
def alexnet_like_errors() -> tuple[dict[str, dict[int, float]], float]:
    """Per-cell top-1 errors MEASURED with topk_error on a fake model built to mimic AlexNet."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, N_IMAGENET_VAL)
    errors = {
        c: {s: topk_error(_fake_model_logits(labels, e, 10), labels) for s, e in zip(SEVERITIES, row)}
        for c, row in ALEXNET_IMAGENET_C_ERRORS.items()
    }
    clean = topk_error(_fake_model_logits(labels, ALEXNET_CLEAN_ERROR, 10), labels)
    return errors, clean


# --------------------------------------------------------------------------------------------------
# top-k error
# --------------------------------------------------------------------------------------------------


def test_topk_error_hand_example():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [2.0, 0.0, 1.0]])
    labels = np.array([0, 1, 1, 1])
    assert topk_error(logits, labels, k=1) == 0.5
    assert topk_error(logits, labels, k=2) == 0.25
    assert topk_error(logits, labels, k=3) == 0.0


def test_topk_error_matches_argmax_and_brute_force_top5_without_ties():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(500, 20))
    labels = rng.integers(0, 20, 500)
    assert topk_error(logits, labels) == pytest.approx(np.mean(logits.argmax(1) != labels))
    top5_hits = [labels[i] in sorted(range(20), key=lambda j: -logits[i, j])[:5] for i in range(500)]
    assert topk_error(logits, labels, k=5) == pytest.approx(1 - np.mean(top5_hits))


def test_topk_ties_are_split_evenly_so_a_constant_model_gets_chance_error():
    logits = np.zeros((8, 4))
    labels = np.arange(8) % 4
    assert topk_error(logits, labels, k=1) == pytest.approx(0.75)
    assert topk_error(logits, labels, k=3) == pytest.approx(0.25)
    # label tied with one other class at the top: half a hit at k=1, full hit at k=2
    np.testing.assert_allclose(topk_correct(np.array([[1.0, 1.0, 0.0]]), np.array([1]), k=1), [0.5])
    np.testing.assert_allclose(topk_correct(np.array([[1.0, 1.0, 0.0]]), np.array([1]), k=2), [1.0])


def test_topk_indices_follow_the_reference_ordinal_rank_rule():
    logits = np.array([[0.1, 0.7, 0.1, 0.1, 0.7, 0.0]])
    np.testing.assert_array_equal(topk_indices(logits, 5), [[1, 4, 0, 2, 3]])
    rng = np.random.default_rng(2)
    # few classes (full sort) and many classes (partition path), both with many ties
    for n_classes, dtype in ((10, np.float64), (200, np.float32), (300, np.uint8)):
        tied = rng.integers(0, 4, (50, n_classes)).astype(dtype)
        ranks = np.array([rankdata(-row.astype(float), method="ordinal") for row in tied])  # 1 = best
        for k in (1, 3, 5):
            np.testing.assert_array_equal(topk_indices(tied, k), np.argsort(ranks, axis=1)[:, :k])
        np.testing.assert_array_equal(topk_indices(tied, 1)[:, 0], tied.argmax(1))


@pytest.mark.parametrize(
    ("logits", "labels", "k", "match"),
    [
        (np.zeros((3, 4)), np.zeros(2, int), 1, "same number of samples"),
        (np.zeros((0, 4)), np.zeros(0, int), 1, "empty"),
        (np.zeros(4), np.zeros(4, int), 1, "2 dimension"),
        (np.array([[0.0, np.nan]]), np.array([0]), 1, "NaN"),
        (np.zeros((2, 4)), np.array([0.0, 1.0]), 1, "integer class indices"),
        (np.zeros((2, 4)), np.array([0, 4]), 1, "only 4 classes"),
        (np.zeros((2, 4)), np.array([0, -1]), 1, "negative"),
        (np.zeros((2, 4)), np.array([0, 1]), 5, "exceeds the number of classes"),
        (np.zeros((2, 4)), np.array([0, 1]), 0, "k must be an integer >= 1"),
    ],
)
def test_topk_error_rejects_bad_input(logits, labels, k, match):
    with pytest.raises(ValueError, match=match):
        topk_error(logits, labels, k)


# --------------------------------------------------------------------------------------------------
# corruption errors: golden AlexNet values
# --------------------------------------------------------------------------------------------------


def test_fake_alexnet_has_normalized_mce_exactly_100(alexnet_like_errors):
    errors, _ = alexnet_like_errors
    assert errors["gaussian_noise"][1] == 0.69528  # the fake model really reproduces the cell
    ce = corruption_error_normalized(errors, ALEXNET_IMAGENET_C_ERRORS)
    assert list(ce) == list(BENCHMARK_CORRUPTIONS)
    assert all(v == 100.0 for v in ce.values())
    assert mce_normalized(errors, ALEXNET_IMAGENET_C_ERRORS) == 100.0


def test_fake_alexnet_has_relative_mce_exactly_100(alexnet_like_errors):
    errors, clean = alexnet_like_errors
    assert clean == ALEXNET_CLEAN_ERROR
    assert relative_mce(errors, clean, ALEXNET_IMAGENET_C_ERRORS, ALEXNET_CLEAN_ERROR) == 100.0


def test_a_better_model_scores_below_100():
    halved = {c: [e / 2 for e in row] for c, row in ALEXNET_IMAGENET_C_ERRORS.items()}
    assert mce_normalized(halved, ALEXNET_IMAGENET_C_ERRORS) == pytest.approx(50.0)
    # relative mCE: error growth of halved errors over clean error 0.2 vs AlexNet's growth over 0.43478
    want = np.mean(
        [
            100 * sum(e / 2 - 0.2 for e in row) / sum(e - ALEXNET_CLEAN_ERROR for e in row)
            for row in ALEXNET_IMAGENET_C_ERRORS.values()
        ]
    )
    assert relative_mce(halved, 0.2, ALEXNET_IMAGENET_C_ERRORS, ALEXNET_CLEAN_ERROR) == pytest.approx(want)


def test_unnormalized_mce_of_the_alexnet_table_is_the_mean_of_its_75_cells():
    cells = [e for row in ALEXNET_IMAGENET_C_ERRORS.values() for e in row]
    assert len(cells) == 75
    got = mean_corruption_error(ALEXNET_IMAGENET_C_ERRORS)
    assert got == pytest.approx(sum(cells) / 75, rel=1e-15)
    assert got == pytest.approx(0.7889930666666667, abs=1e-12)  # mean of the 15 published row means


def test_corruption_error_hand_example_and_key_by_name():
    base = {"fog": {1: 0.5, 2: 0.5, 3: 0.5, 4: 0.5, 5: 0.5}, "snow": [0.1, 0.2, 0.3, 0.2, 0.2]}
    mine = {"snow": {"1": 0.1, "2": 0.1, "3": 0.1, "4": 0.1, "5": 0.1}, "fog": [0.1, 0.2, 0.3, 0.4, 0.5]}
    ce = corruption_error_normalized(mine, base, corruptions=["fog", "snow"])
    assert ce == {"fog": pytest.approx(100 * 1.5 / 2.5), "snow": pytest.approx(100 * 0.5 / 1.0)}
    assert mce_normalized(mine, base, ["fog", "snow"]) == pytest.approx((60 + 50) / 2)
    assert mean_corruption_error(mine, ["fog", "snow"]) == pytest.approx((1.5 + 0.5) / 10)


def test_relative_mce_hand_example_can_be_negative():
    base = {"fog": [0.6] * 5}
    assert relative_mce({"fog": [0.3] * 5}, 0.2, base, 0.4, ["fog"]) == pytest.approx(100 * 0.5 / 1.0)
    assert relative_mce({"fog": [0.1] * 5}, 0.2, base, 0.4, ["fog"]) == pytest.approx(-50.0)


def test_missing_cells_are_all_named():
    errors = {c: [0.5] * 5 for c in BENCHMARK_CORRUPTIONS if c not in ("fog", "snow")}
    errors["frost"] = {1: 0.1, 2: 0.1, 4: 0.1, 5: 0.1}
    with pytest.raises(ValueError, match=r"frost \(severities \[3\]\).*fog \(all severities\)") as err:
        mean_corruption_error(errors)
    assert "snow" in str(err.value)


def test_baseline_without_the_extra_corruptions_is_a_clear_error():
    errors = {c: [0.5] * 5 for c in EXTRA_CORRUPTIONS}
    with pytest.raises(ValueError, match=r"baseline_errors lacks.*speckle_noise"):
        mce_normalized(errors, ALEXNET_IMAGENET_C_ERRORS, corruptions=EXTRA_CORRUPTIONS)


@pytest.mark.parametrize(
    ("errors", "match"),
    [
        ({"fog": [37.2, 0.1, 0.1, 0.1, 0.1]}, "outside \\[0, 1\\]"),
        ({"fog": [float("nan"), 0.1, 0.1, 0.1, 0.1]}, "outside \\[0, 1\\]"),
        ({"fog": [0.1, 0.1, 0.1]}, "exactly the 5 errors"),
        ({"fog": {0: 0.1}}, "outside 1..5"),
        ({"fog": {"one": 0.1}}, "not an integer"),
        ({"fog": {1: 0.1, "1": 0.2}}, "twice"),
        ({"fog": "0.1"}, "mapping"),
        ([0.1] * 5, "mapping"),
    ],
)
def test_bad_corruption_errors_are_rejected(errors, match):
    with pytest.raises(ValueError, match=match):
        mean_corruption_error(errors, corruptions=["fog"])


def test_bad_corruption_lists_are_rejected():
    errs = {"fog": [0.1] * 5}
    with pytest.raises(ValueError, match="empty"):
        mean_corruption_error(errs, corruptions=[])
    with pytest.raises(ValueError, match="more than once"):
        mean_corruption_error(errs, corruptions=["fog", "fog"])
    with pytest.raises(ValueError, match="single string"):
        mean_corruption_error(errs, corruptions="fog")
    with pytest.raises(ValueError, match="sum to 0"):
        corruption_error_normalized(errs, {"fog": [0.0] * 5}, ["fog"])
    with pytest.raises(ValueError, match="no error growth"):
        relative_mce(errs, 0.1, {"fog": [0.3] * 5}, 0.3, ["fog"])
    with pytest.raises(ValueError, match="clean_error"):
        relative_mce(errs, 1.5, {"fog": [0.3] * 5}, 0.1, ["fog"])


# --------------------------------------------------------------------------------------------------
# perturbation stability
# --------------------------------------------------------------------------------------------------


def test_flip_probability_noise_vs_consecutive_vs_stride():
    preds = np.array(
        [
            [0, 0, 1, 1, 0, 0],  # consecutive: flips at 1->2, 3->4: 2/5; vs frame 0: frames 2,3 differ: 2/5
            [2, 3, 2, 3, 2, 3],  # consecutive: 5/5; vs frame 0: frames 1,3,5 differ: 3/5
        ]
    )
    assert flip_probability(preds, noise=False) == pytest.approx((2 / 5 + 5 / 5) / 2)
    assert flip_probability(preds, noise=True) == pytest.approx((2 / 5 + 3 / 5) / 2)
    # stride 2: pairs (0,2) (1,3) (2,4) (3,5): seq 0 flips at (0,2),(1,3)... 0vs1,0vs1,1vs0,1vs0 -> 4/4
    # seq 1: 2vs2, 3vs3, 2vs2, 3vs3 -> 0/4
    assert flip_probability(preds, noise=False, stride=2) == pytest.approx(0.5)
    # noise comparisons are always against frame 0: the stride does not change them
    assert flip_probability(preds, noise=True, stride=3) == flip_probability(preds, noise=True)


def test_flip_probability_matches_the_chained_reference_loop():
    """The reference walks each residue class t = i, i+d, i+2d, ... comparing neighbours in the chain."""
    rng = np.random.default_rng(3)
    preds = rng.integers(0, 3, (20, 31))
    for d in (1, 2, 3):
        per_seq = []
        for seq in preds:
            flips = []
            for start in range(d):
                chain = seq[start::d]
                flips += [int(a != b) for a, b in itertools.pairwise(chain)]
            per_seq.append(np.mean(flips))
        assert flip_probability(preds, noise=False, stride=d) == pytest.approx(np.mean(per_seq))


def test_top5_distance_crafted_pairs():
    base = [0, 1, 2, 3, 4]
    cases = {
        (0, 1, 2, 3, 4): 0,  # identical
        (5, 6, 7, 8, 9): 15,  # disjoint: 5+4+3+2+1
        (1, 0, 2, 3, 4): 2,  # top-2 swap
        (4, 3, 2, 1, 0): 12,  # reversed: 4+2+0+2+4
        (9, 0, 1, 2, 3): 5,  # new winner pushes everything down one rank, class 4 falls out
    }
    for later, want in cases.items():
        seq = np.array([[base, list(later)]])
        assert top5_distance(seq, noise=False) == want
        assert top5_distance(seq, noise=True) == want


def test_top5_distance_noise_vs_consecutive_and_stride():
    frames = np.array([[[0, 1, 2, 3, 4], [1, 0, 2, 3, 4], [9, 0, 1, 2, 3], [0, 1, 2, 3, 4]]])
    # consecutive: f0->f1 = 2, f1->f2 = |0-2|+|1-1|+|2-3|+|3-4|+|4-5| = 5,
    # f2->f3 = |0-5| (9 drops out) + 1 + 1 + 1 + 1 (0..3 move up one rank) = 9: the distance is directed
    assert top5_distance(frames, noise=False) == pytest.approx((2 + 5 + 9) / 3)
    # vs frame 0: f1 -> 2, f2 -> 5, f3 -> 0
    assert top5_distance(frames, noise=True) == pytest.approx((2 + 5 + 0) / 3)
    # stride 2: f0->f2 = 5, f1->f3 = 2
    assert top5_distance(frames, noise=False, stride=2) == pytest.approx((5 + 2) / 2)


def _reference_rank_distance(scores_a: np.ndarray, scores_b: np.ndarray) -> int:
    """The reference definition on FULL rankings: sum_i |i - min(rank_b(top_a[i]), 5)| over a's top 5."""
    rank_a = rankdata(-scores_a, method="ordinal") - 1  # 0 = best
    rank_b = rankdata(-scores_b, method="ordinal") - 1
    order_a = np.argsort(rank_a)
    return int(sum(abs(min(i, 5) - min(rank_b[order_a[i]], 5)) for i in range(5)))


def test_top5_lists_determine_the_full_ranking_distance():
    rng = np.random.default_rng(4)
    logits = rng.integers(0, 6, (6, 7, 12)).astype(float)  # integer scores: many ties
    top5 = topk_indices(logits.reshape(-1, 12), 5).reshape(6, 7, 5)
    for noise, stride in ((False, 1), (False, 2), (True, 1)):
        per_seq = []
        for seq in logits:
            if noise:
                pairs = [(seq[0], seq[t]) for t in range(1, 7)]
            else:
                pairs = [(seq[t - stride], seq[t]) for t in range(stride, 7)]
            per_seq.append(np.mean([_reference_rank_distance(a, b) for a, b in pairs]))
        assert top5_distance(top5, noise=noise, stride=stride) == pytest.approx(np.mean(per_seq))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: flip_probability(np.zeros((3, 1), int), noise=False), "at least 2"),
        (lambda: flip_probability(np.zeros((3, 4), int), noise=False, stride=4), "stride = 4"),
        (lambda: flip_probability(np.zeros((3, 4), int), noise=False, stride=0), "stride must be"),
        (lambda: flip_probability(np.zeros((3, 4)), noise=False), "integer class indices"),
        (lambda: flip_probability(np.zeros(4, int), noise=False), "2 dimension"),
        (lambda: flip_probability(np.zeros((0, 4), int), noise=False), "empty"),
        (lambda: top5_distance(np.zeros((2, 3, 4), int), noise=False), r"\(S, T, 5\)"),
        (lambda: top5_distance(np.zeros((2, 3, 5), int), noise=False), "twice"),
        (lambda: top5_distance(np.tile(np.arange(5.0), (2, 3, 1)), noise=False), "integer"),
    ],
)
def test_perturbation_metrics_reject_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mean_flip_rate_plain_and_normalized():
    fp = {p: 0.01 * (i + 1) for i, p in enumerate(TEST_PERTURBATIONS)}
    assert mean_flip_rate(fp) == pytest.approx(0.055)
    doubled = {p: 2 * v for p, v in fp.items()}
    assert mean_flip_rate(fp, doubled) == pytest.approx(50.0)
    assert mean_flip_rate(fp, fp) == pytest.approx(100.0)
    custom = ["rotate", "spatter"]
    assert mean_flip_rate({"rotate": 0.1, "spatter": 0.3}, perturbations=custom) == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"values lacks \['spatter'\]"):
        mean_flip_rate(fp, perturbations=custom)
    with pytest.raises(ValueError, match="baseline lacks"):
        mean_flip_rate(fp, {"rotate": 1.0})
    with pytest.raises(ValueError, match="baseline is 0"):
        mean_flip_rate(fp, dict.fromkeys(fp, 0.0))
    with pytest.raises(ValueError, match="negative or non-finite"):
        mean_flip_rate({**fp, "rotate": float("nan")})
    with pytest.raises(ValueError, match=r"values\['rotate'\] must be a number"):
        mean_flip_rate({**fp, "rotate": "high"})


# --------------------------------------------------------------------------------------------------
# calibration
# --------------------------------------------------------------------------------------------------


def _rms_fixture() -> tuple[np.ndarray, np.ndarray]:
    """250 samples, bin_size 100 -> bins of 100 and 150 (the last takes the remainder).

    Bin 1: confidence 0.6, 50 of 100 correct -> |0.6 - 0.5| = 0.1
    Bin 2: confidence 0.9, 105 of 150 correct -> |0.9 - 0.7| = 0.2
    corrected RMS^2 = 100/250 * 0.01 + 150/250 * 0.04 = 0.004 + 0.024 = 0.028
    reference RMS^2 = 100/250 * 0.01 (last bin skipped, N still 250) = 0.004
    """
    conf = np.r_[np.full(100, 0.6), np.full(150, 0.9)]
    correct = np.r_[np.arange(100) < 50, np.arange(150) < 105]
    order = np.random.default_rng(5).permutation(250)  # input order must not matter
    return conf[order], correct[order]


def test_rms_calibration_error_hand_computed():
    conf, correct = _rms_fixture()
    assert rms_calibration_error(conf, correct) == pytest.approx(math.sqrt(0.028), abs=1e-12)
    ref = rms_calibration_error(conf, correct, reference_compatible=True)
    assert ref == pytest.approx(math.sqrt(0.004), abs=1e-12)


def test_reference_rms_differs_from_corrected_exactly_by_the_skipped_last_bin():
    rng = np.random.default_rng(6)
    for n in (100, 250, 999, 1234):
        conf = rng.uniform(0.1, 1.0, n)
        correct = rng.uniform(size=n) < conf
        corrected = rms_calibration_error(conf, correct)
        ref = rms_calibration_error(conf, correct, reference_compatible=True)
        order = np.argsort(conf)
        start = (n // 100 - 1) * 100  # the last bin: from here to the end
        last_conf, last_acc = conf[order][start:], correct[order][start:].mean()
        last_term = (n - start) / n * (last_conf.mean() - last_acc) ** 2
        assert corrected**2 - ref**2 == pytest.approx(last_term, abs=1e-12)
    # a single bin (100 <= n < 200): the reference sums nothing
    assert rms_calibration_error(conf[:150], correct[:150], reference_compatible=True) == 0.0


def test_rms_with_fewer_samples_than_a_bin():
    conf = np.array([0.9, 0.8, 0.7])
    correct = np.array([True, False, True])
    assert rms_calibration_error(conf, correct) == pytest.approx(abs(0.8 - 2 / 3))  # one bin
    with pytest.raises(ValueError, match="at least bin_size = 100 samples \\(got 3\\)"):
        rms_calibration_error(conf, correct, reference_compatible=True)


def test_ece_and_reliability_bins_hand_computed():
    # 3 bins of width 1/3: (0, 1/3]: 0.2, 0.3 ; (1/3, 2/3]: 0.5 ; (2/3, 1]: 0.8, 0.9, 1.0
    conf = np.array([0.2, 0.3, 0.5, 0.8, 0.9, 1.0])
    correct = np.array([0, 1, 1, 1, 1, 0])
    bins = reliability_bins(conf, correct, n_bins=3)
    np.testing.assert_array_equal(bins["count"], [2, 1, 3])
    np.testing.assert_allclose(bins["confidence"], [0.25, 0.5, 0.9])
    np.testing.assert_allclose(bins["accuracy"], [0.5, 1.0, 2 / 3])
    np.testing.assert_allclose(bins["bin_lower"], [0, 1 / 3, 2 / 3])
    np.testing.assert_allclose(bins["bin_upper"], [1 / 3, 2 / 3, 1])
    want = 2 / 6 * 0.25 + 1 / 6 * 0.5 + 3 / 6 * abs(2 / 3 - 0.9)
    assert expected_calibration_error(conf, correct, n_bins=3) == pytest.approx(want)


def test_reliability_bins_edges_and_empty_bins():
    bins = reliability_bins(np.array([0.0, 0.5, 1.0, 1.0]), np.array([True, True, False, True]), n_bins=4)
    np.testing.assert_array_equal(bins["count"], [1, 1, 0, 2])  # 0 -> bin 0; 0.5 -> (0.25, 0.5]
    assert np.isnan(bins["confidence"][2])
    assert np.isnan(bins["accuracy"][2])
    assert bins["count"].dtype == np.int64


def test_ece_matches_an_independent_loop_over_guo_bins():
    rng = np.random.default_rng(7)
    conf = rng.uniform(0, 1, 2000)
    correct = rng.uniform(size=2000) < conf**2
    edges = np.linspace(0, 1, 16)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - conf[inside].mean())
    assert expected_calibration_error(conf, correct) == pytest.approx(ece)


@pytest.mark.parametrize(
    ("conf", "correct", "match"),
    [
        (np.array([0.5, 0.6]), np.array([True]), "same number of samples"),
        (np.array([]), np.array([], bool), "empty"),
        (np.array([0.5, np.nan]), np.array([True, False]), "NaN"),
        (np.array([0.5, 1.2]), np.array([True, False]), "confidence must lie in \\[0, 1\\]"),
        (np.array([0.5, 0.6]), np.array([1, 2]), "boolean"),
        (np.array([[0.5, 0.6]]), np.array([True, False]), "1 dimension"),
    ],
)
def test_calibration_rejects_bad_input(conf, correct, match):
    for fn in (rms_calibration_error, expected_calibration_error, reliability_bins):
        with pytest.raises(ValueError, match=match):
            fn(conf, correct)


def test_calibration_rejects_bad_bin_settings():
    conf, correct = np.full(10, 0.5), np.ones(10, bool)
    with pytest.raises(ValueError, match="bin_size"):
        rms_calibration_error(conf, correct, bin_size=0)
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(conf, correct, n_bins=2.5)


# --------------------------------------------------------------------------------------------------
# anomaly detection
# --------------------------------------------------------------------------------------------------


def test_anomaly_scores_are_negative_max_softmax_and_stable():
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(50, 7))
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(anomaly_scores(logits, "float64"), -softmax.max(1), rtol=1e-13)
    np.testing.assert_allclose(anomaly_scores(logits), -softmax.max(1), rtol=2e-7)
    huge = np.array([[1e4, 0.0, -1e4], [1e4, 1e4, 1e4]])
    np.testing.assert_allclose(anomaly_scores(huge), [-1.0, -1 / 3])
    with pytest.raises(ValueError, match="NaN"):
        anomaly_scores(np.array([[np.inf, 0.0]]))
    with pytest.raises(ValueError, match="precision must be one of"):
        anomaly_scores(logits, "float16")


def test_anomaly_scores_are_the_reference_float32_softmax():
    """The reference scores are ``-F.softmax(float32 logits).max(1)``: confident rows tie at exactly -1.
    Ours equal torch's to an ulp, tie on exactly the same rows, and give the reference AUROC; the
    float64 variant separates the ties and moves AUROC (the case of issue 11: logit scale 80)."""
    import torch

    rng = np.random.default_rng(11)
    ins = (rng.normal(size=(2000, 10)) * 80).astype(np.float32)
    outs = (rng.normal(size=(400, 10)) * 80 / 3).astype(np.float32)
    ref_in = -torch.softmax(torch.from_numpy(ins), 1).max(1).values.double().numpy()
    ref_out = -torch.softmax(torch.from_numpy(outs), 1).max(1).values.double().numpy()
    ours_in, ours_out = anomaly_scores(ins), anomaly_scores(outs)
    np.testing.assert_allclose(ours_in, ref_in, rtol=0, atol=1.2e-7)
    np.testing.assert_array_equal(ours_in == -1.0, ref_in == -1.0)
    np.testing.assert_array_equal(ours_out == -1.0, ref_out == -1.0)
    assert (ref_in == -1.0).mean() > 0.3  # many exact ties: the point of the test
    ref_auroc = ood_metrics(ref_in, ref_out)["auroc"]
    assert ood_metrics(ours_in, ours_out)["auroc"] == pytest.approx(ref_auroc, abs=1e-4)
    f64 = ood_metrics(anomaly_scores(ins, "float64"), anomaly_scores(outs, "float64"))["auroc"]
    assert abs(f64 - ref_auroc) > 1e-3


def test_rms_ties_get_their_mean_accuracy_and_the_reference_variant_keeps_its_order():
    """N = 1000 all at confidence 0.5, half correct (ECE 0). Ours: 0 whatever the order. The
    reference-compatible variant equals the reference loop (written below from outlier-exposure
    utils/calibration_tools.py calib_err, p='2') on each input order, and moves with it."""

    def reference_calib_err(confidence, correct, beta=100):
        idx = np.argsort(confidence)
        confidence, correct = confidence[idx], correct[idx]
        bins = [[i * beta, (i + 1) * beta] for i in range(len(confidence) // beta)]
        bins[-1] = [bins[-1][0], len(confidence)]
        total = 0.0
        for lo, hi in bins[:-1]:
            total += (hi - lo) / len(confidence) * (confidence[lo:hi].mean() - correct[lo:hi].mean()) ** 2
        return math.sqrt(total)

    conf = np.full(1000, 0.5)
    half = np.arange(1000) < 500
    assert expected_calibration_error(conf, half) == 0.0
    rng = np.random.default_rng(0)
    ref_values = []
    for correct in (half, ~half, *(rng.permutation(half) for _ in range(5))):
        assert rms_calibration_error(conf, correct) == 0.0
        ref = rms_calibration_error(conf, correct, reference_compatible=True)
        assert ref == pytest.approx(reference_calib_err(conf, correct.astype(float)), abs=1e-12)
        ref_values.append(ref)
    assert max(ref_values) - min(ref_values) > 0.01  # the reference value depends on input order
    # two runs, the middle bin straddles them: each sample carries its run's accuracy (.6 / .8), so
    # bins [.6 x100], [.6 x50 + .9 x50], [.9 x100] have gaps 0, |.75 - .7|, |.9 - .8|
    conf2 = np.r_[np.full(150, 0.6), np.full(150, 0.9)]
    correct2 = np.r_[np.arange(150) < 90, np.arange(150) < 120]
    expected = math.sqrt((0.0 + 0.05**2 + 0.1**2) / 3)
    assert rms_calibration_error(conf2, correct2) == pytest.approx(expected, abs=1e-12)


def _auroc_by_pairs(ins: np.ndarray, outs: np.ndarray) -> float:
    """Mann-Whitney: P(out score > in score) + 0.5 P(equal)."""
    diff = outs[:, None] - ins[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def _aupr_by_thresholds(ins: np.ndarray, outs: np.ndarray) -> float:
    """Average precision: sum over distinct thresholds of (recall gain) * precision."""
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(np.r_[ins, outs])[::-1]:
        tp, fp = np.sum(outs >= t), np.sum(ins >= t)
        recall = tp / outs.size
        ap += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
    return ap


def test_ood_metrics_agree_with_sklearn_and_first_principles_ood_positive():
    rng = np.random.default_rng(9)
    ins = rng.normal(0, 1, 300).round(1)  # rounding creates ties
    outs = rng.normal(1, 1, 80).round(1)
    m = ood_metrics(ins, outs)
    y = np.r_[np.ones(80), np.zeros(300)]
    assert m["auroc"] == pytest.approx(roc_auc_score(y, np.r_[outs, ins]))
    assert m["aupr"] == pytest.approx(average_precision_score(y, np.r_[outs, ins]))
    assert m["auroc"] == pytest.approx(_auroc_by_pairs(ins, outs))
    assert m["aupr"] == pytest.approx(_aupr_by_thresholds(ins, outs))
    assert m["auroc"] > 0.6  # OOD (higher scores) is the positive class
    assert m["fpr95"] == fpr_at_recall(ins, outs, 0.95)


def test_fpr_at_recall_ties_hand_checked():
    # thresholds (desc): 0.9 -> tp 2 fp 0 (recall .5); 0.8 -> tp 2 fp 1 (.5); 0.5 -> tp 4 fp 3 (1.0);
    # 0.2 lies below the first full-recall threshold and is never considered.
    ins = np.array([0.2, 0.5, 0.5, 0.8])
    outs = np.array([0.5, 0.5, 0.9, 0.9])
    assert fpr_at_recall(ins, outs, 0.95) == 0.75  # closest recall is 1.0: 3 of 4 in-dist flagged
    # two thresholds reach recall 0.5 exactly: the tie goes to the LARGER FPR (1/4, not 0)
    assert fpr_at_recall(ins, outs, 0.5) == 0.25
    # recall 1.0 and 0.5 are equally far from 0.75: again the larger FPR wins
    assert fpr_at_recall(ins, outs, 0.75) == 0.75
    assert ood_metrics(ins, outs)["fpr95"] == 0.75


def test_fpr95_perfect_and_useless_detectors():
    assert fpr_at_recall(np.zeros(10), np.ones(20)) == 0.0
    assert fpr_at_recall(np.ones(10), np.ones(20)) == 1.0  # all tied: the only threshold flags everyone


def _fpr_oracle(ins: np.ndarray, outs: np.ndarray, level: float) -> float:
    """Brute force over thresholds with the reference rule (closest recall, ties -> larger FPR)."""
    best = None
    for t in sorted(set(ins.tolist()) | set(outs.tolist()), reverse=True):
        if t < outs.min():  # below the first threshold with full recall
            break
        recall = int(np.sum(outs >= t)) / outs.size
        fpr = int(np.sum(ins >= t)) / ins.size
        key = (abs(recall - level), -fpr)
        if best is None or key < best[0]:
            best = (key, fpr)
    return best[1]


scores = st.lists(st.integers(0, 6), min_size=1, max_size=30).map(lambda v: np.array(v, float))


@PROPS
@given(ins=scores, outs=scores, level=st.sampled_from([0.95, 0.9, 0.5, 0.75, 1.0, 0.3]))
def test_fpr_at_recall_matches_brute_force_oracle(ins, outs, level):
    assert fpr_at_recall(ins, outs, level) == _fpr_oracle(ins, outs, level)


@pytest.mark.parametrize(
    ("ins", "outs", "kw", "match"),
    [
        (np.array([]), np.array([0.1]), {}, "in_scores is empty"),
        (np.array([0.1]), np.array([]), {}, "out_scores is empty"),
        (np.array([0.1, np.nan]), np.array([0.1]), {}, "NaN"),
        (np.array([[0.1]]), np.array([0.1]), {}, "1 dimension"),
        (np.array([0.1]), np.array([0.2]), {"recall": 0.0}, "recall must be in"),
        (np.array([0.1]), np.array([0.2]), {"recall": 1.5}, "recall must be in"),
    ],
)
def test_ood_rejects_bad_input(ins, outs, kw, match):
    with pytest.raises(ValueError, match=match):
        fpr_at_recall(ins, outs, **kw)
    if not kw:
        with pytest.raises(ValueError, match=match):
            ood_metrics(ins, outs)


# --------------------------------------------------------------------------------------------------
# properties: ranges and permutation invariance
# --------------------------------------------------------------------------------------------------


@st.composite
def calibration_data(draw):
    n = draw(st.integers(1, 350))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # coarse confidences so ties straddle bin boundaries
    conf = rng.integers(0, 11, n) / 10 if draw(st.booleans()) else rng.uniform(0, 1, n)
    correct = rng.uniform(size=n) < 0.7
    return conf, correct, rng.permutation(n)


@PROPS
@given(data=calibration_data(), bin_size=st.integers(1, 120), n_bins=st.integers(1, 20))
def test_calibration_in_range_and_permutation_invariant(data, bin_size, n_bins):
    conf, correct, perm = data
    rms = rms_calibration_error(conf, correct, bin_size)
    ece = expected_calibration_error(conf, correct, n_bins)
    assert 0.0 <= rms <= 1.0
    assert 0.0 <= ece <= 1.0
    assert rms_calibration_error(conf[perm], correct[perm], bin_size) == pytest.approx(rms, abs=1e-12)
    assert expected_calibration_error(conf[perm], correct[perm], n_bins) == pytest.approx(ece, abs=1e-12)
    if conf.size >= bin_size:
        ref = rms_calibration_error(conf, correct, bin_size, reference_compatible=True)
        assert 0.0 <= ref <= 1.0
        if np.unique(conf).size == conf.size:  # the reference's order only matters among ties
            assert ref <= rms + 1e-12
            assert rms_calibration_error(conf[perm], correct[perm], bin_size, True) == pytest.approx(
                ref, abs=1e-12
            )


@PROPS
@given(n=st.integers(1, 40), k_classes=st.integers(1, 6), seed=st.integers(0, 2**32 - 1), k=st.integers(1, 6))
def test_topk_error_in_range_and_permutation_invariant(n, k_classes, seed, k):
    rng = np.random.default_rng(seed)
    logits = rng.integers(-2, 3, (n, k_classes)).astype(float)
    labels = rng.integers(0, k_classes, n)
    k = min(k, k_classes)
    err = topk_error(logits, labels, k)
    assert 0.0 <= err <= 1.0
    perm = rng.permutation(n)
    assert topk_error(logits[perm], labels[perm], k) == pytest.approx(err)
    cls = rng.permutation(k_classes)  # renaming classes does not change the error (ties split evenly)
    assert topk_error(logits[:, cls], np.argsort(cls)[labels], k) == pytest.approx(err)


@PROPS
@given(ins=scores, outs=scores, seed=st.integers(0, 2**32 - 1))
def test_ood_metrics_in_range_and_permutation_invariant(ins, outs, seed):
    m = ood_metrics(ins, outs)
    assert all(0.0 <= m[key] <= 1.0 for key in ("auroc", "aupr", "fpr95"))
    rng = np.random.default_rng(seed)
    p = ood_metrics(rng.permutation(ins), rng.permutation(outs))
    assert p == pytest.approx(m)


@PROPS
@given(s=st.integers(1, 6), t=st.integers(2, 8), seed=st.integers(0, 2**32 - 1), noise=st.booleans())
def test_perturbation_metrics_in_range_and_sequence_order_invariant(s, t, seed, noise):
    rng = np.random.default_rng(seed)
    logits = rng.integers(0, 4, (s * t, 8)).astype(float)
    top5 = topk_indices(logits, 5).reshape(s, t, 5)
    preds = top5[..., 0]
    stride = int(rng.integers(1, t))
    fp = flip_probability(preds, noise, stride)
    t5d = top5_distance(top5, noise, stride)
    assert 0.0 <= fp <= 1.0
    assert 0.0 <= t5d <= 18.0
    assert (t5d == 0.0) <= (fp == 0.0)  # the top-5 list never moved -> the top-1 never flipped
    perm = rng.permutation(s)
    assert flip_probability(preds[perm], noise, stride) == pytest.approx(fp)
    assert top5_distance(top5[perm], noise, stride) == pytest.approx(t5d)


def test_top5_distance_worst_case_is_18():
    """The earlier #0-#2 leave the top 5 and the earlier #3/#4 become #0/#1: 5 + 4 + 3 + 3 + 3."""
    seq = np.array([[[0, 1, 2, 3, 4], [3, 4, 7, 8, 9]]])
    assert top5_distance(seq, noise=False) == 18.0
