"""The digits study script end to end at toy size (1 epoch, 2 augmentations, tiny -C/-P, eval subset)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "digits_study.py"


def _load_study():
    spec = importlib.util.spec_from_file_location("digits_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


TOY = [
    "--augs", "none,ipmix", "--epochs", "1", "--eval-subset", "40",
    "--corruptions", "gaussian_noise,contrast", "--perturbations", "gaussian_noise,rotate",
]  # fmt: skip


def test_print_commands_lists_every_public_command(capsys, tmp_path):
    study = _load_study()
    study.main(["--out", str(tmp_path), "--seeds", "0,1", "--print-commands"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"robust-eval data digits {tmp_path / 'data'}"
    assert sum(line.startswith("timm train ") for line in lines) == 8
    assert sum(line.startswith("robust-eval all ") for line in lines) == 8
    assert any("--aug ipmix --jsd" in line for line in lines)
    assert any("--aug augmix --jsd" in line for line in lines)
    assert any("--aug pixmix --no-progress" in line for line in lines)  # PixMix: no JSD
    assert lines[-1].startswith("robust-eval compare ") and f"{tmp_path}/eval/none-s0/all.json" in lines[-1]
    assert not tmp_path.joinpath("data").exists()  # printing runs nothing


@pytest.mark.slow
def test_toy_study_runs_end_to_end_and_resumes(capsys, tmp_path):
    study = _load_study()
    out = tmp_path / "study"
    study.main(["--out", str(out), *TOY])
    first = capsys.readouterr().out
    assert f"report: {out / 'compare' / 'compare.md'}" in first
    cmp = json.loads((out / "compare" / "compare.json").read_text())
    assert [m["label"] for m in cmp["models"]] == ["none-s0", "ipmix-s0"]
    assert cmp["protocol_mismatches"] == []
    keys = {m["key"] for m in cmp["metrics"]}
    assert {"clean_error", "mfr", "pgd_error", "ece", "ood_auroc"} <= keys
    assert set(cmp["models"][1]["ood_auroc"]) == {"gaussian", "rademacher", "blobs", "photos"}
    assert set(cmp["models"][0]["per_corruption_mean_error"]) == {"gaussian_noise", "contrast"}
    assert (out / "compare" / "plots" / "compare-corruption_errors.png").stat().st_size > 5000
    # a second run reuses every finished step
    study.main(["--out", str(out), *TOY])
    second = capsys.readouterr().out
    assert second.count("done already, skipped") == 4  # 2 trainings + 2 evaluations
    assert "timm train" not in second and "robust-eval all" not in second
