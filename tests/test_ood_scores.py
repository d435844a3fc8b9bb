"""robust_eval.ood_scores equals OpenOOD v1.5's postprocessors and metrics on the same inputs.

Golden values: ``tests/data/ood_scores/openood_golden.npz``, written once by
``tests/data/ood_scores/make_golden.py`` with OpenOOD's own code (commit 3c35632, its postprocessor
classes ``BasePostprocessor`` (MSP), ``MaxLogitPostprocessor``, ``EBOPostprocessor``,
``MDSPostprocessor``, ``KNNPostprocessor`` (faiss-cpu 1.15.1), ``VIMPostprocessor`` (dim 12),
``ODINPostprocessor`` and ``evaluators.metrics.compute_all_metrics``) in a throwaway environment
under /tmp; that script's docstring says how. Float tolerances: OpenOOD computes in float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robust_eval import ood_scores as S

GOLDEN = Path(__file__).parent / "data" / "ood_scores" / "openood_golden.npz"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # OpenOOD's normalization_dict['cifar10']


@pytest.fixture(scope="module")
def g() -> dict[str, np.ndarray]:
    with np.load(GOLDEN) as npz:
        return {k: npz[k] for k in npz.files}


def _logits(g: dict[str, np.ndarray], part: str) -> np.ndarray:
    return g[f"features_{part}"].astype(np.float64) @ g["weight"].T.astype(np.float64) + g["bias"]


@pytest.mark.parametrize("part", ["id", "ood"])
def test_logit_scores_equal_openood(g: dict[str, np.ndarray], part: str) -> None:
    logits = _logits(g, part)
    np.testing.assert_allclose(S.msp(logits), g[f"msp_{part}"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(S.max_logit(logits), g[f"maxlogit_{part}"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(S.energy(logits), g[f"energy_{part}"], rtol=1e-5, atol=1e-5)


def test_feature_scores_equal_openood(g: dict[str, np.ndarray]) -> None:
    train, labels = g["train_features"], g["train_labels"]
    maha = S.fit_mahalanobis(train, labels, num_classes=10)
    knn = S.fit_knn(train, k=50)
    vim = S.fit_vim(train, g["weight"], g["bias"], dim=12)
    assert S.vim_dim(train.shape[1]) == 12  # the default picks what the golden used
    for part in ("id", "ood"):
        feats = g[f"features_{part}"]
        np.testing.assert_allclose(S.mahalanobis(maha, feats), g[f"mahalanobis_{part}"], rtol=2e-4)
        np.testing.assert_allclose(S.knn(knn, feats), g[f"knn_{part}"], atol=2e-5)
        np.testing.assert_allclose(
            S.vim(vim, feats, _logits(g, part)), g[f"vim_{part}"], rtol=1e-4, atol=1e-4
        )


def test_knn_is_chunk_invariant(g: dict[str, np.ndarray]) -> None:
    state = S.fit_knn(g["train_features"], k=7)
    feats = g["features_ood"]
    np.testing.assert_allclose(S.knn(state, feats, chunk=7), S.knn(state, feats, chunk=1000), atol=1e-12)


def test_odin_on_the_input_contract_equals_openood_on_normalized_inputs(g: dict[str, np.ndarray]) -> None:
    """OpenOOD perturbs normalized inputs by noise / std; robust-eval's model normalizes inside and
    takes [0, 1] pixels: the same image step, so the same score."""
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(48, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)
    )
    net.load_state_dict(
        {k[len("odin_net.") :]: torch.from_numpy(v) for k, v in g.items() if k.startswith("odin_net.")}
    )
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    z = torch.from_numpy(g["odin_inputs_normalized"])
    pixels = z * std + mean
    np.testing.assert_allclose(S.odin(lambda x: net((x - mean) / std), pixels), g["odin"], rtol=1e-5)
    np.testing.assert_allclose(S.odin(net, z, input_std=CIFAR10_STD), g["odin"], rtol=1e-5)
    with torch.inference_mode():  # works under the evaluator's inference mode too
        np.testing.assert_allclose(S.odin(net, z.clone(), input_std=CIFAR10_STD), g["odin"], rtol=1e-5)


@pytest.mark.parametrize("name", ["msp", "maxlogit", "energy", "mahalanobis", "knn", "vim"])
def test_metrics_equal_openood_compute_all_metrics(g: dict[str, np.ndarray], name: str) -> None:
    got = S.openood_metrics(g[f"{name}_id"], g[f"{name}_ood"])
    fpr, auroc, aupr_in, aupr_out, _ = g[f"metrics_{name}"]
    assert got == pytest.approx(
        {"fpr95": fpr, "auroc": auroc, "aupr_in": aupr_in, "aupr_out": aupr_out}, abs=1e-12
    )


def test_metrics_on_a_worked_example() -> None:
    # ID confidences all above OOD ones: perfect separation
    m = S.openood_metrics([0.9, 0.8, 0.7], [0.1, 0.2])
    assert m == {"fpr95": 0.0, "auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0}
    # reversed: every OOD is more confident than every ID example
    assert S.openood_metrics([0.1, 0.2], [0.9, 0.8])["fpr95"] == 1.0


def test_parse_scores() -> None:
    assert S.parse_scores(None) == ("msp",)
    assert S.parse_scores("msp, KNN,msp,vim") == ("msp", "knn", "vim")
    with pytest.raises(ValueError, match=r"unknown OOD score.*choose from msp"):
        S.parse_scores("msp,gram")
    with pytest.raises(ValueError, match="unknown OOD score"):
        S.parse_scores(" , ")


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="logits must have shape"):
        S.msp(np.zeros(3))
    with pytest.raises(ValueError, match="every class"):
        S.fit_mahalanobis(np.zeros((4, 2)), np.array([0, 0, 1, 1]), num_classes=3)
    with pytest.raises(ValueError, match="KNN k"):
        S.fit_knn(np.ones((3, 2)), k=4)
    with pytest.raises(ValueError, match="ViM dim"):
        S.fit_vim(np.ones((3, 2)), np.ones((2, 2)), np.zeros(2), dim=2)
