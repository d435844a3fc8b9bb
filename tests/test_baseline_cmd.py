"""Baselines from results (Baseline.from_result), their data set, --save-baseline's contract, and the
`robust-eval baseline` command on a tiny AlexNet-shaped checkpoint."""

from __future__ import annotations

import json

import pytest
from robust_eval_fixtures import make_data_root, write_project_checkpoint
from typer.testing import CliRunner

from robust_eval.baselines import Baseline, BaselineError, get_baseline, save_baseline
from robust_eval.cli import app
from robust_eval.constants import SEVERITIES

runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline")
    return {"ckpt": write_project_checkpoint(root / "ck.pth"), "data": make_data_root(root / "data", n=20)}


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    return line


def _cli(args):
    return runner.invoke(app, [str(a) for a in args])


def _result() -> dict:
    """A result document as the suites write it (the fields from_result reads)."""
    cells = {str(s): 0.1 * s for s in SEVERITIES}
    return {
        "command": "all",
        "checkpoint": {
            "path": "b.pth",
            "sha256": "ab12cd34" + "0" * 56,
            "model": "wrn40_2",
            "dataset": "cifar100",
        },
        "protocol": {"data_dir": "data", "subset": None},
        "suites": {
            "clean": {"top1_error": 0.2},
            "corruptions": {
                "clean_error": 0.25,
                "c": {"errors": {"fog": cells, "saturate": cells, "snow": {"1": 0.3, "3": 0.5}}},
                "c_bar": {"errors": {"ripple": {str(s): 0.05 * s for s in SEVERITIES}}},
            },
            "perturbations": {
                "per_perturbation": {
                    "rotate": {"flip_probability": 0.04, "top5_distance": 1.5},
                    "gaussian_noise": {"flip_probability": 0.08, "top5_distance": None},
                },
                "difficulties": {
                    "2": {"per_perturbation": {"rotate": {"flip_probability": 0.07, "top5_distance": 2.5}}}
                },
            },
        },
    }


def test_from_result_takes_every_complete_cell_and_every_difficulty():
    b = Baseline.from_result(_result())
    assert b.name == "wrn40_2-ab12cd34" and b.dataset == "cifar100"
    assert set(b.corruption_errors) == {"fog", "saturate", "ripple"}  # snow lacks severities 2, 4, 5
    assert b.corruption_errors["fog"] == {s: 0.1 * s for s in SEVERITIES}
    assert b.corruption_errors["ripple"][5] == pytest.approx(0.25)  # -C-bar too
    assert b.clean_error == 0.2  # the clean suite's, before the corruption suite's
    assert b.flip_probability == {"rotate": 0.04, "gaussian_noise": 0.08, "rotate_2": 0.07}
    assert b.top5_distance == {"rotate": 1.5, "rotate_2": 2.5}  # no T5D measured for gaussian_noise
    assert "b.pth" in b.source and "ab12cd34" in b.source
    assert Baseline.from_json(b.to_json()) == b and json.loads(b.to_json())["dataset"] == "cifar100"
    assert Baseline.from_result(_result(), name="mine").name == "mine"
    only_clean = {**_result(), "suites": {"clean": {"top1_error": 0.2}}}
    with pytest.raises(BaselineError, match=r"no corruption .* or perturbation numbers"):
        Baseline.from_result(only_clean)


def test_a_baseline_normalizes_only_models_of_its_data_set(env, tmp_path):
    assert get_baseline("alexnet").dataset == "imagenet"
    get_baseline("alexnet").check_dataset("imagenet")
    common = [env["ckpt"], "--data-dir", env["data"], "--subset", "5", "--out", tmp_path / "o"]
    line = _one_line_error(_cli(["corruptions", *common, "--baseline", "alexnet"]))
    assert "measured on imagenet, but the checkpoint is a cifar10 model" in line
    other = save_baseline(tmp_path / "c100.json", Baseline.from_result(_result()))
    line = _one_line_error(_cli(["perturbations", *common, "--baseline", other]))
    assert "baseline 'wrn40_2-ab12cd34' was measured on cifar100" in line
    assert not (tmp_path / "o").exists()
    legacy = tmp_path / "legacy.json"  # written before the data set was recorded: not checked
    data = Baseline.from_result(_result()).to_dict()
    del data["dataset"]
    legacy.write_text(json.dumps(data))
    assert get_baseline(str(legacy)).dataset is None
    get_baseline(str(legacy)).check_dataset("cifar10")


@pytest.mark.parametrize("command", ["clean", "adversarial", "calibration", "ood"])
def test_save_baseline_is_offered_only_where_it_can_be_honoured(env, tmp_path, command, monkeypatch, capsys):
    from robust_mix.cli import run

    argv = ["robust-eval", command, str(env["ckpt"]), "--save-baseline", str(tmp_path / "b.json")]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_:
        run(app, "robust-eval")
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and line.startswith("robust-eval: error: No such option: --save-baseline")


def test_save_baseline_fails_before_the_run(env, tmp_path):
    out = tmp_path / "o"
    common = [env["ckpt"], "--data-dir", env["data"], "--subset", "5", "--out", out]
    (tmp_path / "file").write_text("x")
    (tmp_path / "taken.json").write_text("{}")
    for target, why in (
        (tmp_path / "taken.json", "already exists; remove it or choose another path"),
        (tmp_path, "is a folder"),
        (tmp_path / "file" / "b.json", "is a file, not a folder"),
    ):
        line = _one_line_error(_cli(["corruptions", *common, "--save-baseline", target]))
        assert line.startswith("robust-eval: error: --save-baseline: ") and why in line
        assert not out.exists()  # nothing ran, nothing was written
    assert (tmp_path / "taken.json").read_text() == "{}"
