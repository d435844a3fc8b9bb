"""The robust-eval CLI: end to end through the real command, resume after a kill, every bad-input path."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from robust_eval_fixtures import (
    MODEL,
    SUBPROCESS_ENV,
    heldout_digits,
    make_data_root,
    trained_state_dict,
    write_bare_state_dict,
    write_png_tree,
    write_project_checkpoint,
    write_timm_train_checkpoint,
)
from typer.testing import CliRunner

from robust_eval.cli import app
from robust_eval.data import write_cifar

runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return {
        "root": root,
        "ckpt": write_project_checkpoint(root / "ck.pth"),
        "timm": write_timm_train_checkpoint(root / "timm.pth"),
        "bare": write_bare_state_dict(root / "bare.pth"),
        "data": make_data_root(root / "data", n=30),
    }


def _one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _cli(args, tmp_path=None):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_all_end_to_end_through_the_real_cli(env, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "robust_eval.cli",
        "all",
        env["ckpt"],
        "--data-dir",
        env["data"],
        "--out",
        out,
    ]
    cmd += ["--subset", "20", "--eps", "8", "--alpha", "2", "--steps", "3", "--batch-size", "32", "--json"]
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result == json.loads((out / "all.json").read_text())
    assert result["schema_version"] == 1 and result["skipped"] == {}
    s = result["suites"]
    assert set(s) == {"clean", "corruptions", "perturbations", "adversarial", "calibration", "ood"}
    assert s["clean"]["n"] == 20 and s["clean"]["top1_error"] < 0.3
    assert s["corruptions"]["summary"]["mce_unnormalized"] > s["clean"]["top1_error"]
    assert len(s["corruptions"]["c_bar"]["corruptions"]) == 10
    assert s["perturbations"]["mfr"] is not None
    assert s["adversarial"]["max_linf_perturbation"] <= 8 / 255 + 1e-6
    assert set(s["ood"]["sets"]) == {"gaussian", "rademacher", "blobs", "noise_npy", "textures"}
    proto = result["protocol"]
    assert proto["pgd"]["steps"] == 3 and proto["corruption_lists"]["benchmark"][0] == "gaussian_noise"
    assert (
        proto["package_versions"]["torch"] == torch.__version__.split("+")[0]
        or proto["package_versions"]["torch"]
    )
    assert result["checkpoint"]["sha256"] and "[0, 1]" in result["checkpoint"]["input_contract"]
    plots = sorted(p.name for p in (out / "plots").iterdir())
    assert plots == ["all-corruption_errors.png", "all-ood.png", "all-reliability.png"]
    assert all((out / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in plots)
    md = (out / "all.md").read_text()
    assert "| gaussian_noise |" in md and "## Anomaly detection" in md
    # `report` re-renders the same Markdown from the JSON alone
    again = _cli(["report", out / "all.json", "--out", tmp_path / "re"])
    assert again.exit_code == 0, again.output
    assert (tmp_path / "re" / "all.md").read_text() == md
    assert len(list((tmp_path / "re" / "plots").glob("*.png"))) == 3


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_json(env, tmp_path):
    args = ["corruptions", env["ckpt"], "--data-dir", env["data"], "--subset", "24", "--batch-size", "4"]
    reference = _cli([*args, "--out", tmp_path / "ref"])
    assert reference.exit_code == 0, reference.output
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "robust_eval.cli", *args, "--out", out]
    proc = subprocess.Popen(
        [str(c) for c in cmd], env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / ".cache").rglob("*.json"))) >= 12:
            proc.kill()
            break
        time.sleep(0.05)
    proc.wait()
    done_before = len(list((out / ".cache").rglob("*.json")))
    total = 1 + 19 * 5 + 10 * 5  # clean + -C cells + -C-bar cells
    assert 12 <= done_before < total, "the process was not killed mid-run"
    assert not (out / "corruptions.json").exists()
    resumed = _cli([*args, "--out", out])
    assert resumed.exit_code == 0, resumed.output
    assert (out / "corruptions.json").read_text() == (tmp_path / "ref" / "corruptions.json").read_text()
    assert not list(out.rglob("*.tmp"))


def test_other_checkpoint_kinds(env, tmp_path):
    r = _cli(["clean", env["timm"], "--data-dir", env["data"], "--out", tmp_path, "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["checkpoint"]["kind"] == "timm-train" and res["suites"]["clean"]["n"] == 30
    line = _one_line_error(_cli(["clean", env["bare"], "--data-dir", env["data"], "--out", tmp_path]))
    assert all(flag in line for flag in ("--model", "--num-classes", "--dataset", "--input-size", "--mean"))
    bare = ["clean", env["bare"], "--model", MODEL, "--num-classes", "10", "--data-dir", env["data"]]
    line = _one_line_error(_cli([*bare, "--out", tmp_path / "bare"]))  # test_resnet's default is 160 px
    assert "cifar10 images are 32 px: pass --input-size 32" in line
    r = _cli([*bare, "--input-size", "32", "--out", tmp_path / "bare"])  # tmp_path/clean.json: the timm one
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "bare" / "clean.json").read_text())["checkpoint"]["kind"] == "state_dict"


class _Payload:
    def __reduce__(self):
        return (eval, ("print('pwned')",))


def test_malicious_checkpoint_is_refused(env, tmp_path):
    torch.save({"state_dict": trained_state_dict(), "model": MODEL, "x": _Payload()}, tmp_path / "evil.pth")
    r = _cli(["all", tmp_path / "evil.pth", "--data-dir", env["data"], "--out", tmp_path])
    line = _one_line_error(r)
    assert "refusing to load" in line and "pwned" not in r.output


def test_mismatches_and_unknown_model(env, tmp_path):
    common = ["--data-dir", env["data"], "--out", tmp_path]
    line = _one_line_error(_cli(["clean", env["bare"], "--model", MODEL, "--num-classes", "100", *common]))
    assert "do not fit" in line
    line = _one_line_error(_cli(["clean", env["ckpt"], "--dataset", "cifar100", *common]))
    assert "10 output classes but cifar100 has 100" in line
    line = _one_line_error(
        _cli(["clean", env["bare"], "--model", "resnet_9000", "--num-classes", "10", *common])
    )
    assert "unknown model 'resnet_9000'" in line
    assert "does not exist" in _one_line_error(_cli(["clean", tmp_path / "nope.pth", *common]))


def test_bad_option_values(env, tmp_path):
    common = [env["ckpt"], "--data-dir", env["data"], "--out", tmp_path]
    assert "--batch-size" in _one_line_error(_cli(["clean", *common, "--batch-size", "0"]))
    assert "--perturbations" in _one_line_error(_cli(["perturbations", *common, "--perturbations", "wobble"]))
    assert "--device" in _one_line_error(_cli(["clean", *common, "--device", "quantum"]))
    assert "unknown baseline" in _one_line_error(_cli(["corruptions", *common, "--baseline", "resnet99"]))


def test_missing_data_single_suite_and_all(env, tmp_path):
    """An existing data root without the sets: per-suite lines (a root that does not exist is one
    line, tests/test_eval_first_use.py)."""
    ckpt = env["ckpt"]
    (tmp_path / "empty").mkdir()
    line = _one_line_error(_cli(["clean", ckpt, "--data-dir", tmp_path / "empty", "--out", tmp_path / "o"]))
    assert "clean:" in line and "cifar-10-batches-py" in line
    line = _one_line_error(
        _cli(["perturbations", ckpt, "--data-dir", tmp_path / "empty", "--out", tmp_path / "o"])
    )
    assert "CIFAR-10-P" in line
    r = _cli(["all", ckpt, "--data-dir", tmp_path / "empty", "--out", tmp_path / "o"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 7 and all(line.startswith("skipped ") for line in lines[:6])
    assert lines[-1].startswith("robust-eval: error: no suite could run")
    assert not (tmp_path / "o" / "all.json").exists()
    only_clean = tmp_path / "only_clean"
    images, labels = heldout_digits(12)
    write_cifar(only_clean / "cifar-10-batches-py", "cifar10", images, labels)
    r = _cli(["all", ckpt, "--data-dir", only_clean, "--out", tmp_path / "o2", "--steps", "1"])
    assert r.exit_code == 0, r.output
    skipped = [line for line in r.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 2
    assert "skipped corruptions: no corruption data: put" in skipped[0] and "CIFAR-10-C" in skipped[0]
    assert skipped[1].startswith("skipped perturbations: no -P data: put")
    result = json.loads((tmp_path / "o2" / "all.json").read_text())
    assert set(result["skipped"]) == {"corruptions", "perturbations"}
    assert {"clean", "adversarial", "calibration", "ood"} == set(result["suites"])


def test_data_dir_from_environment(env, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUST_EVAL_DATA", str(env["data"]))
    r = _cli(["clean", env["ckpt"], "--out", tmp_path, "--subset", "5"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "clean.json").read_text())["protocol"]["data_dir"] == str(env["data"])


def test_baseline_round_trip_and_no_overwrite(env, tmp_path):
    base = tmp_path / "base.json"
    common = [env["ckpt"], "--data-dir", env["data"], "--subset", "20", "--out", tmp_path / "o"]
    r = _cli(["corruptions", *common, "--save-baseline", base])
    assert r.exit_code == 0, r.output
    saved = json.loads(base.read_text())
    assert set(saved["corruption_errors"]["fog"]) == {"1", "2", "3", "4", "5"}
    assert saved["clean_error"] is not None
    r = _cli(["corruptions", *common, "--baseline", base, "--json"])
    assert r.exit_code == 0, r.output
    norm = json.loads(r.stdout)["suites"]["corruptions"]["summary"]["normalized"]
    assert norm["mce"] == pytest.approx(100.0)  # a model is exactly its own baseline
    line = _one_line_error(_cli(["corruptions", *common, "--save-baseline", base]))
    assert "already exists" in line


def test_generate_corruptions_on_the_fly(env, tmp_path):
    pytest.importorskip("robust_eval.corruptions")
    data = tmp_path / "data"
    images, labels = heldout_digits(8)
    write_cifar(data / "cifar-10-batches-py", "cifar10", images, labels)
    args = ["corruptions", env["ckpt"], "--data-dir", data, "--out", tmp_path / "o", "--json"]
    assert "--generate" in _one_line_error(_cli(args[:-1]))
    r = _cli([*args, "--generate"])
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["suites"]["corruptions"]["c"]
    assert c["generated_on_the_fly"] and c["regenerated"] and len(c["corruptions"]) == 19
    assert json.loads(r.stdout)["protocol"]["generate_corruptions"] is True


def test_data_check_good_and_malformed(env, tmp_path):
    r = _cli(["data", "check", "--data-dir", env["data"], "--json"])
    assert r.exit_code == 0, r.output
    status = {e["name"]: e["status"] for e in json.loads(r.stdout)}
    assert status["cifar10"] == "present" and status["CIFAR-10-C"] == "present"
    bad = tmp_path / "bad"
    (bad / "CIFAR-10-C").mkdir(parents=True)
    np.save(bad / "CIFAR-10-C" / "labels.npy", np.zeros(10, np.uint8))
    np.save(bad / "CIFAR-10-C" / "fog.npy", np.zeros((10, 32, 32), np.uint8))
    r = _cli(["data", "check", "--data-dir", bad])
    assert r.exit_code == 1
    assert "malformed" in r.stdout and "fog.npy" in r.stdout


def test_report_rejects_non_results(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    assert "not a robust-eval result" in _one_line_error(_cli(["report", tmp_path / "x.json"]))
    assert "does not exist" in _one_line_error(_cli(["report", tmp_path / "y.json"]))


def test_help_documents_every_metric():
    r = _cli(["--help"])
    assert r.exit_code == 0
    text = " ".join(r.stdout.split())
    for word in ("mCE", "flip probability", "PGD", "RMS calibration error", "ECE", "AUROC", "FPR95"):
        assert word in text
    for cmd in (
        "all",
        "clean",
        "corruptions",
        "perturbations",
        "adversarial",
        "calibration",
        "ood",
        "report",
        "data",
    ):
        assert cmd in r.stdout


@pytest.mark.slow
def test_all_with_timm_and_bare_checkpoints_through_the_real_cli(env, tmp_path):
    base = [sys.executable, "-m", "robust_eval.cli", "all"]
    quick = ["--subset", "12", "--steps", "1", "--json"]
    # timm train.py checkpoint (argparse.Namespace inside) on the CIFAR layouts
    cmd = [*base, env["timm"], "--data-dir", env["data"], "--out", tmp_path / "timm", *quick]
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["checkpoint"]["kind"] == "timm-train" and res["skipped"] == {}
    assert {"clean", "corruptions", "perturbations", "adversarial", "calibration", "ood"} == set(
        res["suites"]
    )
    # bare state_dict on an ImageFolder root (with its own OOD folder): -C / -P do not apply
    images, labels = heldout_digits(40)
    root = tmp_path / "imgf"
    write_png_tree(root / "test", images, labels, scale=2)
    write_png_tree(root / "ood" / "faces", images[::-1][:10], None)
    np.save(root / "ood" / "flat.npy", np.full((10, 24, 24, 3), 128, np.uint8))
    cmd = [*base, env["bare"], "--model", MODEL, "--num-classes", "10", "--dataset", "imagefolder"]
    cmd += ["--data-dir", root, "--out", tmp_path / "bare", *quick]
    proc = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    assert res["checkpoint"]["kind"] == "state_dict" and res["checkpoint"]["dataset"] == "imagefolder"
    assert set(res["skipped"]) == {"corruptions", "perturbations"}
    assert "no corruption benchmark exists for dataset 'imagefolder'" in res["skipped"]["corruptions"]
    assert {"clean", "adversarial", "calibration", "ood"} == set(res["suites"])
    assert res["suites"]["clean"]["n"] == 12 and res["suites"]["clean"]["source"].endswith("test")
    assert {"faces", "flat"} <= set(res["suites"]["ood"]["sets"])
    skip_lines = [line for line in proc.stderr.splitlines() if line.startswith("skipped ")]
    assert len(skip_lines) == 2
