"""robust-eval adversarial --attack autoattack: torchattacks' standard AutoAttack with the number of
classes explicit, RobustBench's eps and first-N convention, recorded in the result, the protocol,
the report and the compare rows (digits fixture, a few examples)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from robust_eval_fixtures import make_context, make_data_root, write_project_checkpoint
from typer.testing import CliRunner

from robust_eval.cli import app
from robust_eval.suites import (
    AutoAttackSettings,
    autoattack_plan,
    clean_source,
    run_adversarial,
    run_clean,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("aa")
    return root, write_project_checkpoint(root / "ck.pth"), make_data_root(root / "data", n=30, with_p=False)


def _ctx(setup, cache: str, **options):
    root, ckpt, data = setup
    return make_context(ckpt, data, root / cache, **options)


@pytest.mark.parametrize(
    ("dataset", "classes", "eps_255", "n", "n_classes"),
    [
        ("cifar10", 10, 8, 10_000, 10),
        ("cifar100", 100, 8, 10_000, 10),
        ("imagenet", 1000, 4, 5_000, 10),
        ("imagefolder", 5, 8, None, 5),
    ],
)
def test_plan_is_robustbench_leaderboard_convention(setup, dataset, classes, eps_255, n, n_classes):
    ctx = _ctx(setup, "p", attack="autoattack")
    ctx.metadata = {**ctx.metadata, "dataset": dataset, "num_classes": classes}
    plan = autoattack_plan(ctx)
    assert plan["eps"] == pytest.approx(eps_255 / 255) and plan["n_examples"] == n
    assert plan["model_classes"] == classes and plan["n_classes"] == n_classes  # 9 target classes at most
    assert autoattack_plan(ctx, 7)["n_examples"] == 7  # never more than the test split holds
    ctx.autoattack = AutoAttackSettings(eps=1 / 255, n_examples=3)
    given = autoattack_plan(ctx, 100)
    assert given["eps"] == 1 / 255 and given["n_examples"] == 3 and not given["eps_default"]


def test_autoattack_on_the_first_examples_is_recorded_and_reproducible(setup):
    options = {
        "attack": "autoattack",
        "autoattack": AutoAttackSettings(n_examples=12),
        "batch_size": 8,
    }
    a = run_adversarial(_ctx(setup, "a1", **options))
    attack = a["attack"]
    assert a["n"] == 12 and a["source"].endswith("first 12")
    assert attack["kind"] == "autoattack" and attack["version"] == "standard" and attack["n_classes"] == 10
    assert [c["name"] for c in attack["components"]] == ["APGD", "APGDT", "FAB", "Square"]
    assert attack["components"][1]["n_target_classes"] == 9 and attack["components"][3]["n_queries"] == 5000
    assert a["max_linf_perturbation"] <= 8 / 255 + 1e-6 and a["inside_unit_box"]
    assert a["clean_error"] <= a["adversarial_error"]
    # the FIRST 12 clean examples (RobustBench's convention), not a sample
    ctx = _ctx(setup, "a2", **options)
    source, _ = clean_source(ctx)
    first = source.head(12)
    assert np.array_equal(first.labels, source.labels[:12])
    # same seed, fresh cache: the same numbers
    assert run_adversarial(ctx) == a
    assert run_clean(ctx)["n"] == 30  # the first-N selection is the adversarial suite's alone


@pytest.mark.slow
def test_cli_records_autoattack_in_protocol_report_and_compare(setup, tmp_path):
    _, ckpt, data = setup
    args = ["adversarial", ckpt, "--data-dir", data, "--attack", "autoattack", "--n-examples", "8"]
    r = runner.invoke(app, [str(a) for a in (*args, "--autoattack-eps", "6", "--out", tmp_path / "aa")])
    assert r.exit_code == 0, r.output
    result = json.loads((tmp_path / "aa" / "adversarial.json").read_text())
    proto = result["protocol"]
    assert proto["attack"] == "autoattack" and proto["pgd"] is None
    assert proto["autoattack"]["eps"] == pytest.approx(6 / 255) and proto["autoattack"]["n_examples"] == 8
    assert result["suites"]["adversarial"]["n"] == 8
    md = (tmp_path / "aa" / "adversarial.md").read_text()
    assert "## Adversarial (AutoAttack)" in md and "AutoAttack error (%)" in md and "(PGD)" not in md
    pgd = (
        "adversarial",
        ckpt,
        "--data-dir",
        data,
        "--subset",
        "8",
        "--steps",
        "2",
        "--out",
        tmp_path / "pgd",
    )
    p = runner.invoke(app, [str(a) for a in pgd])
    assert p.exit_code == 0, p.output
    files = [str(tmp_path / d / "adversarial.json") for d in ("aa", "pgd")]
    c = runner.invoke(app, ["compare", *files, "--allow-mismatch", "--out", str(tmp_path / "cmp")])
    assert c.exit_code == 0, c.output
    table = (tmp_path / "cmp" / "compare.md").read_text()
    assert "AutoAttack err. (%)" in table and "PGD err. (%)" in table
    assert "adversarial attack differs" in table


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [("--attack", "cw", "--attack must be one of pgd, autoattack"), ("--n-examples", "0", "--n-examples")],
)
def test_bad_attack_options_exit_2_in_one_line(setup, tmp_path, flag, value, says):
    _, ckpt, data = setup
    r = runner.invoke(
        app, ["adversarial", str(ckpt), "--data-dir", str(data), flag, value, "--out", str(tmp_path)]
    )
    assert r.exit_code == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1
