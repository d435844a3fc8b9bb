"""robust_eval.calibration against references: scikit-learn's log_loss / brier_score_loss, a brute
force over orderings for AURC's tie rule, and a grid search for the temperature."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from robust_eval import calibration as C


def _case(seed: int = 0, n: int = 200, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, (n, k)), rng.integers(0, k, n)


def test_nll_equals_sklearn_log_loss() -> None:
    z, y = _case()
    p = np.exp(C.log_softmax(z))
    assert C.nll(z, y) == pytest.approx(log_loss(y, p, labels=range(5)), rel=1e-12)
    assert C.nll(z, y, temperature=2.5) == pytest.approx(
        log_loss(y, np.exp(C.log_softmax(z, 2.5))), rel=1e-12
    )


def test_brier_equals_sklearn_multiclass_brier() -> None:
    z, y = _case(1)
    p = np.exp(C.log_softmax(z))
    assert C.brier(z, y) == pytest.approx(
        brier_score_loss(y, p, labels=range(5), scale_by_half=False), rel=1e-12
    )


def _aurc_brute(conf: np.ndarray, correct: np.ndarray) -> float:
    """Average of the tie-free AURC over every order of the tied examples."""
    values = []
    for perm in itertools.permutations(range(len(conf))):
        p = np.asarray(perm)
        order = p[np.argsort(-conf[p], kind="stable")]
        err = ~correct[order]
        values.append(np.mean(np.cumsum(err) / np.arange(1, len(conf) + 1)))
    return float(np.mean(values))


@pytest.mark.parametrize("seed", range(4))
def test_aurc_tie_rule_is_the_average_over_orders(seed: int) -> None:
    rng = np.random.default_rng(seed)
    conf = rng.choice([0.2, 0.5, 0.9], 6)
    correct = rng.random(6) < 0.5
    assert C.aurc(conf, correct) == pytest.approx(_aurc_brute(conf, correct), abs=1e-12)


def test_aurc_without_ties_and_bounds() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, False, True, False])
    assert C.aurc(conf, correct) == pytest.approx((0 + 1 / 2 + 1 / 3 + 2 / 4) / 4)
    assert C.aurc(conf, np.ones(4, bool)) == 0.0 and C.aurc(conf, np.zeros(4, bool)) == 1.0


def test_temperature_minimizes_nll() -> None:
    z, y = _case(2, n=400)
    z = 4 * (z + 2.0 * np.eye(5)[y])  # informative but overconfident: the best temperature is > 1
    t = C.fit_temperature(z, y)
    grid = np.exp(np.linspace(-3, 3, 2001))
    best = grid[np.argmin([C.nll(z, y, g) for g in grid])]
    assert t == pytest.approx(best, rel=5e-3) and t > 1
    assert C.nll(z, y, t) <= C.nll(z, y) + 1e-12


def test_heldout_split() -> None:
    fit, ev = C.heldout_split(11)
    assert fit.tolist() == [0, 5, 10] and len(ev) == 8 and not set(fit) & set(ev)
    with pytest.raises(ValueError, match="at least 2"):
        C.heldout_split(1)


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="labels must lie"):
        C.nll(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="need logits"):
        C.brier(np.zeros(3), [0])
    with pytest.raises(ValueError, match="equal-length"):
        C.aurc([0.5], [True, False])


def test_calibration_suite_extended_block(tmp_path) -> None:
    """On the digits fixture: the held-out split is recorded and every value lies in its range; the
    block appears only when asked for (default results stay byte-identical)."""
    from robust_eval_fixtures import make_context, make_data_root, write_project_checkpoint

    from robust_eval.suites import SUITES

    data = make_data_root(tmp_path / "data", n=60, with_p=False, with_c=False)
    ctx = make_context(
        write_project_checkpoint(tmp_path / "m.pt"), data, tmp_path / "cache", calibration_extras=True
    )
    out = SUITES["calibration"].run(ctx).to_dict()
    ext = out["extended"]
    assert (ext["n_fit"], ext["n_eval"]) == (12, 48) and ext["temperature"] > 0
    for when in ("before", "after_temperature_scaling"):
        v = ext[when]
        assert 0 <= v["aurc"] <= 1 and 0 <= v["brier"] <= 2 and v["nll"] >= 0 and 0 <= v["ece"] <= 1
    plain = make_context(tmp_path / "m.pt", data, tmp_path / "c2")  # default: the block is absent
    assert "extended" not in SUITES["calibration"].run(plain).to_dict()
