"""Result files are checked on load: `compare` and `report` refuse a damaged or edited result in one
line naming the file and the key (impossible metric values, wrong kinds, deep nesting), and
`compare` warns when a row repeats another."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robust_eval.cli import app
from robust_eval.report.write import ResultError, load_result

GOLDEN = Path(__file__).parent / "data" / "golden"
runner = CliRunner()


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads((GOLDEN / "all.json").read_text())


def _set(doc: dict, key: str, value) -> dict:
    """A copy of ``doc`` with the dotted ``key`` set to ``value``."""
    out = copy.deepcopy(doc)
    *parents, last = key.split(".")
    node = out
    for part in parents:
        node = node[part]
    node[last] = value
    return out


def _write(tmp_path: Path, name: str, doc: dict | str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    path = folder / "all.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, allow_nan=True))
    return path


def test_the_golden_results_pass_the_checks(golden):
    from robust_eval.report.results import check_result

    check_result(golden)
    check_result(json.loads((GOLDEN / "all_alexnet.json").read_text()))


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("suites.clean.top1_error", -5, "suites.clean.top1_error = -5"),
        ("suites.clean.top1_error", math.inf, "suites.clean.top1_error = inf"),
        ("suites.clean.top1_error", 1e308, "suites.clean.top1_error = 1e+308"),
        ("suites.ood.mean_auroc", 1.5, "suites.ood.mean_auroc = 1.5"),
        ("suites.perturbations.mt5d", -0.1, "suites.perturbations.mt5d = -0.1"),
        ("suites.clean.n", 2.5, "suites.clean.n = 2.5 is not an integer"),
        ("protocol.pgd.eps", -math.inf, "protocol.pgd.eps = -inf is not a finite number"),
        ("suites.corruptions.c", 7, "suites.corruptions.c is an integer; expected an object"),
        ("suites.clean", [1], "suites.clean is a list; expected an object"),
        ("checkpoint", None, "checkpoint is null; expected an object"),
        ("skipped", {"ood": 5}, "skipped.ood is an integer; expected a string"),
        ("suites.clean.top1_error", "low", "suites.clean.top1_error is a string; expected a number or null"),
        (
            "suites.ood.sets.gaussian.hist_in",
            3,
            "suites.ood.sets.gaussian.hist_in is an integer; expected a list",
        ),
        ("suites.perturbations.per_perturbation.rotate", 1, "per_perturbation.rotate is an integer"),
    ],
)
def test_impossible_values_and_wrong_kinds_are_refused_naming_file_and_key(
    golden, tmp_path, key, value, named
):
    path = _write(tmp_path, "bad", _set(golden, key, value))
    with pytest.raises(ResultError, match="damaged or was edited") as info:
        load_result(path)
    assert str(path) in str(info.value) and named in str(info.value)


def test_nan_stays_allowed_as_no_value(golden, tmp_path):
    # robust-eval itself writes NaN for an empty reliability bin
    doc = _set(golden, "suites.clean.top5_error", math.nan)
    assert math.isnan(load_result(_write(tmp_path, "nan", doc))["suites"]["clean"]["top5_error"])


def test_a_normalized_mce_is_a_percentage_and_relative_mce_may_be_negative(golden, tmp_path):
    doc = _set(
        golden,
        "suites.corruptions.summary.normalized",
        {"baseline": "b", "mce": 250.0, "relative_mce": -12.0},
    )
    load_result(_write(tmp_path, "ok", doc))
    doc = _set(golden, "suites.corruptions.summary.normalized", {"baseline": "b", "mce": -1.0})
    with pytest.raises(ResultError, match=r"summary\.normalized\.mce = -1\.0"):
        load_result(_write(tmp_path, "bad", doc))


def _deep(levels: int) -> str:
    return (
        '{"tool": "robust-eval", "schema_version": 1, "suites": {}, "protocol": {"x": '
        + "[" * levels
        + "]" * levels
        + "}}"
    )


@pytest.mark.parametrize("levels", [100, 100_000])
def test_deep_nesting_is_refused(tmp_path, levels):
    with pytest.raises(ResultError, match="nested"):
        load_result(_write(tmp_path, "deep", _deep(levels)))


@pytest.mark.parametrize(
    "doc",
    [
        {"suites.clean.top1_error": -5},
        {"suites.corruptions.c": 7},
        {"checkpoint": None},
        {"suites.ood.sets": {"x": 3}},
    ],
    ids=["negative", "c=7", "checkpoint-null", "ood-set-int"],
)
@pytest.mark.parametrize("command", ["compare", "report"])
def test_compare_and_report_refuse_in_one_line_with_exit_2(golden, tmp_path, doc, command):
    good = _write(tmp_path, "good", golden)
    bad_doc = golden
    for key, value in doc.items():
        bad_doc = _set(bad_doc, key, value)
    bad = _write(tmp_path, "bad", bad_doc)
    out = tmp_path / "out"
    args = (
        ["compare", str(good), str(bad), "--out", str(out)]
        if command == "compare"
        else ["report", str(bad), "--out", str(out)]
    )
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert str(bad) in result.output and "damaged or was edited" in result.output
    assert not out.exists()


def test_deeply_nested_file_is_one_line_exit_2(tmp_path):
    bad = _write(tmp_path, "deep", _deep(100_000))
    result = runner.invoke(app, ["report", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "nested too deep" in result.output


def test_compare_of_a_result_with_itself_warns(golden, tmp_path):
    one = _write(tmp_path, "one", golden)
    copy_ = _write(tmp_path, "copy", golden)
    out = tmp_path / "out"
    result = runner.invoke(app, ["compare", str(one), str(one), str(copy_), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "warning: rows 'one#1' and 'one#2' are the same file" in result.output
    assert "warning: rows 'one#1' and 'copy' hold identical results" in result.output
    cmp = json.loads((out / "compare.json").read_text())
    assert len(cmp["warnings"]) == 2
    assert "**Warning:** rows 'one\\#1' and 'one\\#2' are the same file" in (out / "compare.md").read_text()


def test_different_results_give_no_warning(golden, tmp_path):
    one = _write(tmp_path, "one", golden)
    two = _write(tmp_path, "two", _set(golden, "suites.clean.top1_error", 0.5))
    result = runner.invoke(app, ["compare", str(one), str(two), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0 and "warning" not in result.output
