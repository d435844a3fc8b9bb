"""The OOD suite with ``--ood-scores``: every detector on every OOD set, fitted on the training split,
OpenOOD v1.5 grouping and table, cached passes; on the digits fixture model (CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from robust_eval_fixtures import digits_32, make_context, make_data_root, write_project_checkpoint

from robust_eval import ood_scores as S
from robust_eval.data import write_cifar
from robust_eval.ood_detectors import OPENOOD_V15_GROUPS, group_of, openood_csv, penultimate
from robust_eval.suites import SUITES

ALL = tuple(S.OOD_SCORES)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ooddet")
    data = make_data_root(root / "data", n=60, with_p=False, with_c=False)
    images, labels = digits_32()
    write_cifar(data / "cifar-10-batches-py", "cifar10", images[:400], labels[:400], train=True)
    return {"ckpt": write_project_checkpoint(root / "model.pt"), "data": data, "root": root}


@pytest.fixture(scope="module")
def result(env: dict[str, Path]) -> dict:
    ctx = make_context(env["ckpt"], env["data"], env["root"] / "cache", ood_scores=ALL, batch_size=64)
    return SUITES["ood"].run(ctx).to_dict()


def test_every_detector_scores_every_set(result: dict) -> None:
    block = result["detectors"]
    assert block["scores"] == list(ALL)
    for score in ALL:
        sets = block["per_score"][score]["sets"]
        assert set(sets) == set(result["sets"])
        for m in sets.values():
            assert 0 <= m["auroc"] <= 1 and 0 <= m["fpr95"] <= 1 and 0 < m["aupr_in"] <= 1
    fit = block["fit"]
    assert fit["n"] == 400 and fit["knn_k"] == 50 and fit["vim_dim"] == S.vim_dim(fit["feature_dim"])


def test_msp_detector_agrees_with_the_papers_auroc(result: dict) -> None:
    """The same MSP on the same examples: OpenOOD's trapezoidal AUROC equals sklearn's roc_auc_score."""
    per_set = result["detectors"]["per_score"]["msp"]["sets"]
    for name, values in result["sets"].items():
        assert per_set[name]["auroc"] == pytest.approx(values["auroc"], abs=1e-6), name


def test_openood_groups_and_csv(result: dict) -> None:
    block = result["detectors"]
    assert block["groups"]["far"]["present"] == ["textures"]  # OpenOOD's CIFAR "texture"
    assert block["groups"]["near"]["present"] == []
    knn = block["per_score"]["knn"]
    assert knn["far"] == pytest.approx(knn["sets"]["textures"])
    assert knn["near"] is None
    lines = openood_csv(block, "knn").splitlines()
    assert lines[0] == "dataset,FPR@95,AUROC,AUPR_IN,AUPR_OUT,ACC"
    assert [line.split(",")[0] for line in lines[1:3]] == ["texture", "farood"]
    assert lines[-1].startswith("mean,")
    acc = 100 * block["accuracy"]
    assert all(float(line.split(",")[-1]) == pytest.approx(acc, abs=0.006) for line in lines[1:])


def test_published_groups() -> None:
    assert OPENOOD_V15_GROUPS["cifar100"]["near"] == ("cifar10", "tin")
    assert group_of("imagenet", "openimage_o") == ("far", "openimage_o")
    assert group_of("cifar10", "textures") == ("far", "texture")
    assert group_of("cifar10", "gaussian") is None


def test_features_reproduce_the_logits(env: dict[str, Path]) -> None:
    import torch

    ctx = make_context(env["ckpt"], env["data"], env["root"] / "cache2")
    x = torch.rand(4, 3, 32, 32)
    with torch.inference_mode():
        logits, feats = penultimate(ctx.model, x)
        fc = ctx.model.model.get_classifier()
        torch.testing.assert_close(logits, ctx.model(x))
        torch.testing.assert_close(fc(feats), logits)


def test_second_run_reuses_every_cached_pass(env: dict[str, Path], result: dict) -> None:
    ctx = make_context(env["ckpt"], env["data"], env["root"] / "cache", ood_scores=ALL, batch_size=64)
    again = SUITES["ood"].run(ctx).to_dict()
    assert ctx.cache.misses == 0
    assert again["detectors"] == result["detectors"]


def test_without_a_training_split_the_logit_scores_still_run(tmp_path: Path, env: dict[str, Path]) -> None:
    data = make_data_root(tmp_path / "data", n=40, with_p=False, with_c=False)
    ctx = make_context(env["ckpt"], data, tmp_path / "cache", ood_scores=("energy", "knn"))
    block = SUITES["ood"].run(ctx).to_dict()["detectors"]
    assert list(block["per_score"]) == ["energy"]
    assert "training split" in block["fit"]["skipped"]
    assert np.isfinite(block["per_score"]["energy"]["mean"]["auroc"])
