"""`robust-eval compare` on hand-made result files: values, differences, refusal, marking, plots."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from robust_eval.cli import app
from robust_eval.constants import BENCHMARK_CORRUPTIONS, SEVERITIES
from robust_eval.report.compare import md_escape, protocol_differences, write_comparison

runner = CliRunner()


def _result(clean: float, cell_error: float, pgd: float, auroc: float, name: str = "m") -> dict:
    """A minimal result document as `robust-eval all` writes it: every -C cell has ``cell_error``
    except gaussian_noise, whose cells are ``2 * cell_error``."""
    errors = {
        c: {str(s): (2 * cell_error if c == "gaussian_noise" else cell_error) for s in SEVERITIES}
        for c in BENCHMARK_CORRUPTIONS
    }
    mce = sum(sum(v.values()) for v in errors.values()) / (15 * 5)
    per = {c: sum(v.values()) / 5 for c, v in errors.items()}
    return {
        "schema_version": 1,
        "tool": "robust-eval",
        "command": "all",
        "checkpoint": {
            "path": f"runs/{name}/final.pth",
            "sha256": "ab" * 32,
            "model": "test_resnet",
            "dataset": "cifar10",
        },
        "protocol": {
            "data_dir": "data",
            "subset": None,
            "seed": 0,
            "perturbations": ["gaussian_noise", "rotate"],
            "pgd": {"eps": 2 / 255, "alpha": 0.5 / 255, "steps": 20, "random_start": True},
            "baseline": None,
            "some_future_key": {"x": 1},
        },
        "suites": {
            "clean": {"n": 100, "top1_error": clean, "top5_error": 0.0},
            "corruptions": {
                "c": {"regenerated": False, "corruptions": list(BENCHMARK_CORRUPTIONS), "errors": errors},
                "summary": {"mce_unnormalized": mce, "per_corruption_mean_error": per, "normalized": None},
            },
            "perturbations": {
                "perturbations": ["gaussian_noise", "rotate"],
                "per_perturbation": {
                    "gaussian_noise": {"flip_probability": 0.1},
                    "rotate": {"flip_probability": 0.2},
                },
                "mfr": 0.15,
                "mt5d": 0.5,
            },
            "adversarial": {"clean_error": clean, "adversarial_error": pgd},
            "calibration": {
                "rms_calibration_error": 0.05,
                "ece": 0.04,
                "reliability": {"confidence": [0.55, 0.95], "accuracy": [0.5, 0.9], "count": [10, 90]},
            },
            "ood": {
                "sets": {"gaussian": {"auroc": auroc}, "photos <b>|x": {"auroc": auroc - 0.1}},
                "mean_auroc": auroc - 0.05,
                "mean_fpr95": 0.5,
            },
        },
        "skipped": {},
    }


def _write(tmp_path, name: str, result: dict):
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "all.json"
    path.write_text(json.dumps(result))
    return path


@pytest.fixture
def two(tmp_path):
    ref = _write(tmp_path, "none-s0", _result(0.02, 0.10, 0.30, 0.80, "none"))
    other = _write(tmp_path, "ipmix-s0", _result(0.03, 0.04, 0.20, 0.90, "ipmix"))
    return ref, other


def test_values_differences_and_ratios(two, tmp_path):
    cmp, written = write_comparison(two, tmp_path / "cmp")
    metrics = {m["key"]: m for m in cmp["metrics"]}
    assert [m["label"] for m in cmp["models"]] == ["none-s0", "ipmix-s0"]
    # mCE = (14 * 0.10 + 0.20) / 15 for the reference, (14 * 0.04 + 0.08) / 15 for the other, in %
    ref_mce, other_mce = 100 * 1.6 / 15, 100 * 0.64 / 15
    assert metrics["mce"]["values"] == pytest.approx([ref_mce, other_mce])
    assert metrics["mce"]["differences"] == pytest.approx([0.0, other_mce - ref_mce])
    assert metrics["mce"]["ratios"][1] == pytest.approx(0.4)
    assert metrics["clean_error"]["differences"][1] == pytest.approx(1.0)  # percentage points
    assert metrics["pgd_error"]["values"] == pytest.approx([30.0, 20.0])
    assert metrics["ood_auroc"]["lower_is_better"] is False
    assert "mce_normalized" not in metrics  # absent from both: no column
    md = written["md"].read_text()
    assert f"| 3.00 (+1.00) | {other_mce:.2f} ({other_mce - ref_mce:+.2f}) |" in md
    assert "| 0.40x |" in md
    # per-corruption table: gaussian_noise is twice the other cells
    assert "| gaussian_noise | 20.00 | 8.00 (-12.00) |" in md
    assert json.loads(written["json"].read_text())["metrics"] == cmp["metrics"]


def test_every_plot_is_written_and_nonempty(two, tmp_path):
    _, written = write_comparison(two, tmp_path / "cmp")
    kinds = {"corruption_errors", "severity", "reliability", "ood", "pgd", "perturbations"}
    assert kinds <= set(written)
    for kind in kinds:
        data = written[kind].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, kind


def test_text_from_result_files_is_escaped_in_markdown(two, tmp_path):
    _, written = write_comparison(two, tmp_path / "cmp", labels=["<script>x</script>", "a|b"])
    md = written["md"].read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "a\\|b" in md
    assert "photos &lt;b&gt;\\|x" in md  # an OOD set name from the file
    assert md_escape("*[x](y)*") == "\\*\\[x\\]\\(y\\)\\*"


def test_protocol_mismatch_is_refused_in_one_line(two, tmp_path):
    ref, other = two
    changed = json.loads(other.read_text())
    changed["protocol"]["pgd"]["eps"] = 8 / 255
    other.write_text(json.dumps(changed))
    result = runner.invoke(app, ["compare", str(ref), str(other), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "PGD settings differ" in lines[0] and "--allow-mismatch" in lines[0]
    assert not (tmp_path / "cmp").exists()  # nothing written


def test_allow_mismatch_marks_every_output(two, tmp_path):
    ref, other = two
    changed = json.loads(other.read_text())
    changed["suites"]["corruptions"]["c"]["regenerated"] = True
    changed["protocol"]["perturbations"] = ["rotate"]
    other.write_text(json.dumps(changed))
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", str(ref), str(other), "--out", str(out), "--allow-mismatch"])
    assert result.exit_code == 0, result.output
    assert "PROTOCOL MISMATCH" in result.output
    md = (out / "compare.md").read_text()
    assert "PROTOCOL MISMATCH" in md and "perturbation list differs" in md
    mism = json.loads((out / "compare.json").read_text())["protocol_mismatches"]
    assert any(m.startswith("-C data origin differs") for m in mism)


def test_missing_and_extra_keys_are_tolerated():
    ref = _result(0.02, 0.1, 0.3, 0.8)
    old = copy.deepcopy(ref)
    del old["protocol"]["pgd"]  # an older result without the key: not a mismatch
    del old["suites"]["adversarial"]
    old["protocol"]["brand_new"] = 3
    assert protocol_differences([ref, old], ["a", "b"]) == []


def test_cli_table_and_no_overwrite_of_foreign_files(two, tmp_path):
    out = tmp_path / "cmp"
    result = runner.invoke(app, ["compare", *map(str, two), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "none-s0" in result.output and "(+1.00)" in result.output
    again = runner.invoke(app, ["compare", *map(str, two), "--out", str(out)])
    assert again.exit_code == 0  # its own files are replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "compare.md").write_text("my notes")
    refused = runner.invoke(app, ["compare", *map(str, two), "--out", str(foreign)])
    assert refused.exit_code == 2 and "was not written by robust-eval compare" in refused.output
    assert (foreign / "compare.md").read_text() == "my notes"
    bad = runner.invoke(app, ["compare", str(tmp_path / "nope.json"), "--out", str(out)])
    assert bad.exit_code == 2 and "does not exist" in bad.output
