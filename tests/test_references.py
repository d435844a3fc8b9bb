"""Published reference rows (robust_eval.references): the shipped cells reproduce every published
aggregate, every row carries its provenance, and `compare --reference` puts them beside a result."""

from __future__ import annotations

import hashlib
import json
import math
import re
from importlib import resources

import pytest

from robust_eval import references
from robust_eval.references import (
    UnknownReference,
    parse_leaderboard_csv,
    reference_names,
    reference_result,
    robustbench_leaderboards,
)

#: RobustBench rows whose published corruption accuracy is the recomputed value truncated (not
#: rounded) to two decimals: the authors' own numbers (Diffenderfer et al. 2021), e.g. CIFAR-10
#: LRR_CARD_Deck cells mean 92.786 -> published 92.78.
TRUNCATED = {
    ("cifar10", "Diffenderfer2021Winning_LRR_CARD_Deck"),
    ("cifar10", "Diffenderfer2021Winning_Binary_CARD_Deck"),
    ("cifar100", "Diffenderfer2021Winning_LRR"),
    ("cifar100", "Diffenderfer2021Winning_LRR_CARD_Deck"),
}


def _matches_published(value: float, published: str, truncated_ok: bool) -> bool:
    """``value`` rounded (or, where allowed, truncated) to the published string's decimals equals it."""
    digits = len(published.split(".")[1]) if "." in published else 0
    target = float(published)
    if math.isclose(round(value, digits), target, abs_tol=1e-9):
        return True
    return truncated_ok and math.isclose(math.floor(value * 10**digits) / 10**digits, target, abs_tol=1e-9)


def test_every_leaderboard_reproduces_its_published_aggregates():
    boards = robustbench_leaderboards()
    assert sorted(boards) == ["cifar10", "cifar100", "imagenet", "imagenet_3dcc"]
    checked = 0
    for key, board in boards.items():
        assert set(board.accuracy) == set(board.published), key  # every CSV row has its JSON and back
        for model, meta in board.published.items():
            got = board.aggregates(model)
            acc = meta[f"corruptions_acc{board.suffix}"]
            truncated = (key, model) in TRUNCATED
            assert _matches_published(got["corruption_accuracy"], acc, truncated), (key, model, got, acc)
            if board.dataset == "imagenet":
                mce = meta[f"corruptions_mce{board.suffix}"]
                assert _matches_published(got["mce"], mce, False), (key, model, got, mce)
            else:
                assert got["mce"] is None  # no AlexNet row on the CIFAR leaderboards
            checked += 1
    assert checked == 23 + 13 + 12 + 12


def test_truncation_exceptions_are_really_truncations():
    """The exception list is not a blanket pass: each listed row fails plain rounding."""
    boards = robustbench_leaderboards()
    for key, model in TRUNCATED:
        value = boards[key].aggregates(model)["corruption_accuracy"]
        assert not _matches_published(value, boards[key].published[model]["corruptions_acc"], False)


def test_alexnet_row_normalizes_to_100_and_3dcc_has_12_corruptions():
    boards = robustbench_leaderboards()
    assert boards["imagenet"].aggregates("AlexNet")["mce"] == pytest.approx(100.0)
    assert len(boards["imagenet_3dcc"].corruptions) == 12
    assert len(boards["imagenet"].corruptions) == 15


def test_shipped_csvs_are_the_recorded_bytes():
    manifest = json.loads(
        resources.files("robust_eval.reference_data").joinpath("robustbench.json").read_text()
    )
    for board in manifest["leaderboards"].values():
        data = resources.files("robust_eval.reference_data").joinpath(board["shipped"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == board["sha256"], board["shipped"]


def test_package_data_is_small():
    files = [
        f
        for f in resources.files("robust_eval.reference_data").iterdir()
        if f.name.endswith((".csv", ".json"))
    ]
    assert sum(len(f.read_bytes()) for f in files) < 300_000


def test_parse_leaderboard_csv_refuses_bad_files():
    good = ",fog,fog,fog,fog,fog\n,1,2,3,4,5\nm,0.9,0.8,0.7,0.6,0.5\n"
    assert parse_leaderboard_csv(good) == {"m": {"fog": {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.6, 5: 0.5}}}
    with pytest.raises(ValueError, match="severities 1-5"):
        parse_leaderboard_csv(",fog,fog\n,1,2\nm,0.9,0.8\n")
    with pytest.raises(ValueError, match="outside"):
        parse_leaderboard_csv(good.replace("0.5\n", "1.5\n"))
    with pytest.raises(ValueError, match="cells"):
        parse_leaderboard_csv(good.replace(",0.5\n", "\n"))


def test_every_reference_has_provenance_and_a_result_shape():
    names = reference_names()
    assert len(names) == len(set(names)) > 50
    for name in names:
        doc = reference_result(name)
        ref = doc["reference"]
        assert ref["name"] == name
        assert ref["source"] == name.split(":")[0]
        assert doc["tool"] == "robust-eval" and doc["checkpoint"]["dataset"] in {
            "cifar10",
            "cifar100",
            "imagenet",
        }
        assert doc["suites"], name
        if ref["source"] == "paper":
            assert (
                ref["paper"]["title"]
                and ref["paper"]["table"]
                and re.fullmatch(r"\d{4}\.\d{5}", ref["paper"]["arxiv"])
            )
            assert ref["read_from"]
        else:
            assert re.fullmatch(r"[0-9a-f]{40}", ref["commit"]) and "/" in ref["repository"]
            assert ref["files"] and all(
                re.fullmatch(r"[0-9a-f]{40}", f["blob"]) and f["file"] for f in ref["files"]
            )
        if ref["source"] == "robustbench":
            assert ref["paper"]["link"] and ref["model_files"]


def test_robustbench_imagenet_row_shape_and_numbers():
    doc = reference_result("robustbench:imagenet/Hendrycks2020AugMix")
    corr = doc["suites"]["corruptions"]
    assert corr["c"]["n_per_cell"]["fog"] == 5000
    assert doc["suites"]["clean"] == {
        "n": 5000,
        "top1_error": pytest.approx(1 - 0.7734),
        "source": "RobustBench",
    }
    assert round(corr["summary"]["normalized"]["mce"], 2) == 64.17
    assert round(100 * (1 - corr["summary"]["mce_unnormalized"]), 2) == 49.33
    assert round(corr["c_3dcc"]["normalized"]["mce"], 2) == 64.64
    assert round(100 * (1 - corr["c_3dcc"]["mean_error"]), 2) == 53.48
    assert "5,000" in doc["protocol"]["subset"]


def test_timm_row_values_and_name_resolution():
    doc = reference_result("timm:resnet50.am_in1k")  # the only size: @224
    assert doc["reference"]["name"] == "timm:resnet50.am_in1k@224"
    assert doc["suites"]["clean"]["top1_error"] == pytest.approx(0.20996)
    ar = doc["suites"]["imagenet_ar"]
    assert ar["imagenet-a"]["masked_to_classes"] == 200
    assert ar["imagenet-r"]["top1_error"] == pytest.approx(0.59407)
    assert ar["imagenet-v2-matched-frequency"]["top1_error"] == pytest.approx(0.3328)
    assert set(ar) >= {"imagenet-real", "imagenet-sketch"}
    with pytest.raises(UnknownReference, match=r"sizes: timm:resnet50\.ram_in1k@224"):
        reference_result("timm:resnet50.ram_in1k")
    with pytest.raises(UnknownReference, match="--reference list"):
        reference_result("robustbench:cifar10/NoSuchModel")


def test_paper_rows_fill_percent_values_as_fractions():
    doc = reference_result("paper:ipmix/cifar100-mean4")
    assert doc["suites"]["clean"]["top1_error"] == pytest.approx(0.192)
    assert doc["suites"]["corruptions"]["summary"]["mce_unnormalized"] == pytest.approx(0.283)
    assert doc["suites"]["calibration"]["rms_calibration_error"] == pytest.approx(0.049)
    assert references.reference_table()[-1][0] == reference_names()[-1]


# ------------------------------------------------------------------------------------------------
# robust-eval compare --reference
# ------------------------------------------------------------------------------------------------


def _result(dataset: str, n: int, cell_error: float, clean: float) -> dict:
    """A generated result as `robust-eval all` writes it: -C cells all ``cell_error`` on ``n`` images."""
    from robust_eval.constants import BENCHMARK_CORRUPTIONS

    errors = {c: {str(s): cell_error for s in range(1, 6)} for c in BENCHMARK_CORRUPTIONS}
    normalized = {"baseline": "alexnet", "mce": 50.0} if dataset == "imagenet" else None
    return {
        "schema_version": 1,
        "tool": "robust-eval",
        "command": "all",
        "checkpoint": {"path": "runs/m/final.pth", "sha256": "ab" * 32, "model": "m", "dataset": dataset},
        "protocol": {"subset": None, "seed": 0, "baseline": None},
        "suites": {
            "clean": {"n": n, "top1_error": clean, "top5_error": 0.0},
            "corruptions": {
                "c": {
                    "corruptions": list(BENCHMARK_CORRUPTIONS),
                    "errors": errors,
                    "n_per_cell": dict.fromkeys(BENCHMARK_CORRUPTIONS, n),
                },
                "summary": {"mce_unnormalized": cell_error, "normalized": normalized},
            },
        },
        "skipped": {},
    }


def _write(tmp_path, name: str, doc: dict):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "all.json").write_text(json.dumps(doc))
    return folder / "all.json"


def test_compare_reference_puts_published_rows_beside_a_result(tmp_path):
    from typer.testing import CliRunner

    from robust_eval.cli import app

    mine = _write(tmp_path, "mine", _result("cifar10", 10000, 0.10, 0.05))
    out = tmp_path / "cmp"
    args = ["compare", str(mine), "--out", str(out)]
    args += [
        "--reference",
        "robustbench:cifar10/Hendrycks2020AugMix_WRN",
        "--reference",
        "paper:augmix/cifar10-wrn40_2",
    ]
    got = CliRunner().invoke(app, args)
    assert got.exit_code == 0, got.output
    cmp = json.loads((out / "compare.json").read_text())
    assert [m["label"] for m in cmp["models"]] == [
        "mine",
        "robustbench:cifar10/Hendrycks2020AugMix_WRN",
        "paper:augmix/cifar10-wrn40_2",
    ]
    assert cmp["protocol_mismatches"] == []  # same test set, same 15 x 5 cells of 10,000 images
    mce = next(m for m in cmp["metrics"] if m["key"] == "mce")
    assert mce["values"][0] == pytest.approx(10.0)
    assert round(mce["values"][1], 2) == round(100 - 88.82, 2)
    assert mce["values"][2] == pytest.approx(11.2)
    assert mce["differences"][2] == pytest.approx(1.2)
    md = (out / "compare.md").read_text()
    assert "published numbers" in md and "RobustBench/robustbench" in md and "1912.02781" in md


def test_compare_reference_names_what_differs_on_imagenet(tmp_path):
    from robust_eval.report.compare import ProtocolMismatch, write_comparison

    mine = _write(tmp_path, "mine", _result("imagenet", 50000, 0.45, 0.24))
    ref = "robustbench:imagenet/Hendrycks2020AugMix"
    with pytest.raises(ProtocolMismatch, match=r"clean test size differs: 50000 .* vs 5000"):
        write_comparison([mine], tmp_path / "c1", references=[ref])
    cmp, _ = write_comparison([mine], tmp_path / "c2", references=[ref], allow_mismatch=True)
    text = " | ".join(cmp["protocol_mismatches"])
    assert "images per -C cell differs: [50000]" in text and "[5000]" in text
    assert "mCE normalized by differs" in text and "AlexNet (RobustBench)" in text
    metrics = {m["key"]: m["values"] for m in cmp["metrics"]}
    assert round(metrics["mce_normalized"][1], 2) == 64.17
    assert round(metrics["mce_3dcc"][1], 2) == 64.64


def test_compare_reference_list_and_unknown_name(tmp_path):
    from typer.testing import CliRunner

    from robust_eval.cli import app

    listed = CliRunner().invoke(app, ["compare", "--reference", "list"])
    assert listed.exit_code == 0
    assert "timm:resnet50.am_in1k@224" in listed.output and "paper:ipmix/cifar10-mean4" in listed.output
    mine = _write(tmp_path, "mine", _result("cifar10", 10000, 0.1, 0.05))
    bad = CliRunner().invoke(
        app, ["compare", str(mine), "--reference", "robustbench:nope", "--out", str(tmp_path / "o")]
    )
    assert bad.exit_code == 2
    assert "unknown reference 'robustbench:nope'" in bad.output
