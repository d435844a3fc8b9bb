"""Result JSON, Markdown, plots and the summary table, rendered from a real (tiny) run."""

from __future__ import annotations

import io
import json

import pytest
from robust_eval_fixtures import make_context, make_data_root, write_project_checkpoint

from robust_eval.report.write import (
    SCHEMA_VERSION,
    ResultError,
    build_result,
    load_result,
    make_plots,
    print_summary,
    render_markdown,
    summary_rows,
    write_report,
    write_result,
)
from robust_eval.suites import (
    PGDSettings,
    run_adversarial,
    run_calibration,
    run_clean,
    run_corruptions,
    run_ood,
)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    ckpt = write_project_checkpoint(root / "ck.pth")
    data = make_data_root(root / "data", n=20, with_p=False)
    ctx = make_context(ckpt, data, root / "cache", subset=12, pgd=PGDSettings(steps=1))
    suites = {
        "clean": run_clean(ctx),
        "corruptions": run_corruptions(ctx),
        "adversarial": run_adversarial(ctx),
        "calibration": run_calibration(ctx),
        "ood": run_ood(ctx),
    }
    protocol = {"subset": 12, "seed": 0}
    return build_result("all", ctx.metadata, protocol, suites, {"perturbations": "no -P data: put ..."})


def test_result_is_versioned_and_json_native(result, tmp_path):
    assert result["schema_version"] == SCHEMA_VERSION and result["tool"] == "robust-eval"
    assert "torch" in result["protocol"]["package_versions"]
    path = write_result(tmp_path / "r.json", result)
    assert load_result(path) == json.loads(json.dumps(result))
    assert not list(tmp_path.glob("*.tmp"))


def test_load_result_rejects_bad_files(tmp_path):
    (tmp_path / "a.json").write_text("[1, 2")
    with pytest.raises(ResultError, match="not a JSON result"):
        load_result(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(
        json.dumps({"tool": "robust-eval", "schema_version": SCHEMA_VERSION + 1})
    )
    with pytest.raises(ResultError, match="schema_version"):
        load_result(tmp_path / "b.json")


def test_summary_rows_and_markdown(result):
    rows = {r[0]: r for r in summary_rows(result)}
    clean = result["suites"]["clean"]["top1_error"]
    assert rows["Clean top-1 error (%)"][1] == f"{100 * clean:.2f}"
    mce = result["suites"]["corruptions"]["summary"]["mce_unnormalized"]
    assert rows["mCE, unnormalized (%)"][1] == f"{100 * mce:.2f}"
    assert "PGD error (%)" in rows and "ECE (%)" in rows and "OOD AUROC (%)" in rows
    md = render_markdown(result, {"corruption_errors": "plots/x.png"})
    assert md.startswith("# robust-eval report: test_resnet on cifar10")
    fog = result["suites"]["corruptions"]["c"]["errors"]["fog"]
    assert f"| fog | {100 * fog['1']:.2f} | {100 * fog['2']:.2f} |" in md
    assert "### -C-bar" in md and "![corruption errors](plots/x.png)" in md
    assert "**perturbations**: no -P data" in md
    assert "Reference-compatible" in md


def test_plots_are_pngs(result, tmp_path):
    made = make_plots(result, tmp_path, "run")
    assert set(made) == {"corruption_errors", "reliability", "ood"}
    for name in made.values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md_path, plots = write_report(result, tmp_path / "rep", "all")
    assert md_path.read_text().count("](plots/all-") == 3 and len(plots) == 3


def test_terminal_table(result):
    from rich.console import Console

    buf = io.StringIO()
    print_summary(Console(file=buf, width=150), result)
    text = buf.getvalue()
    assert "Clean top-1 error" in text and "skipped" in text and "perturbations" in text


def test_calibration_under_corruption_is_reported_next_to_clean(result):
    corr = result["suites"]["corruptions"]
    mean = corr["calibration"]["corrupted_mean"]
    md = render_markdown(result)
    assert "### Calibration under corruption" in md
    assert (
        f"| **mean (15 x 5 cells)** | {mean['rms_calibration_error'] * 100:.2f} | {mean['ece'] * 100:.2f} |"
        in md
    )
    clean = corr["calibration"]["clean"]
    assert f"| clean test set | {clean['rms_calibration_error'] * 100:.2f} | {clean['ece'] * 100:.2f} |" in md
    rows = {name: value for name, value, _ in summary_rows(result)}
    assert rows["ECE under -C (%)"] == f"{mean['ece'] * 100:.2f}"
    assert rows["ECE (%)"] == f"{result['suites']['calibration']['ece'] * 100:.2f}"


def test_ood_section_lists_the_sets_averaged_and_the_protocol_sets_missing(result):
    md = render_markdown(result)
    ood = result["suites"]["ood"]
    assert f"Means over the {len(ood['sets'])} sets present ({', '.join(ood['sets'])})" in md
    assert "not found: svhn, places365, lsun, cifar" in md


def test_text_from_a_checkpoint_cannot_inject_markup(result):
    """A crafted checkpoint's strings are shown as text: no HTML element, no extra table cell."""
    import copy

    crafted = copy.deepcopy(result)
    crafted["checkpoint"]["dataset"] = '<img src=x onerror="alert(1)">'
    crafted["checkpoint"]["model"] = "evil|model`<script>x</script>`"
    crafted["checkpoint"]["path"] = "](javascript:alert(1))"
    crafted["skipped"] = {"ood": "folder <b>x</b> | has *stars*"}
    md = render_markdown(crafted)
    assert "<img" not in md and "<script" not in md and "<b>" not in md
    assert '&lt;img src=x onerror="alert(1)"&gt;' in md
    assert "evil\\|model\\`&lt;script&gt;" in md
    assert "\\](javascript:alert(1))" in md
    assert "\\*stars\\*" in md
    # every table row keeps the column count of its header
    for block in md.split("\n\n"):
        lines = [line for line in block.splitlines() if line.startswith("|")]
        if lines:
            cells = {len(line.replace("\\|", "").split("|")) for line in lines}
            assert len(cells) == 1, block
