"""Baselines from results (Baseline.from_result), their data set, --save-baseline's contract, and the
`robust-eval baseline` command on a tiny AlexNet-shaped checkpoint."""

from __future__ import annotations

import json

import pytest
from robust_eval_fixtures import make_data_root, write_project_checkpoint
from typer.testing import CliRunner

from robust_eval.baselines import Baseline, BaselineError, get_baseline, save_baseline
from robust_eval.cli import app
from robust_eval.constants import BENCHMARK_CORRUPTIONS, SEVERITIES

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
    zeros = _result()
    zeros["suites"]["corruptions"]["c"]["errors"]["fog"] = dict.fromkeys(map(str, SEVERITIES), 0.0)
    zeros["suites"]["perturbations"]["per_perturbation"]["rotate"] = {
        "flip_probability": 0.0,
        "top5_distance": 0.0,
    }
    left_out: list[str] = []
    b = Baseline.from_result(zeros, left_out=left_out)  # nothing can be divided by 0: left out, and said
    assert left_out == ["fog", "rotate", "rotate (top-5 distance)"]
    assert (
        "fog" not in b.corruption_errors
        and "rotate" not in b.flip_probability
        and "rotate" not in b.top5_distance
    )
    assert "left out, 0 cannot normalize: fog, rotate" in b.source
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


# ------------------------------------------------------------------------------------------------
# robust-eval baseline, end to end on tiny generated ImageNet-C / -C-bar / -P data
# ------------------------------------------------------------------------------------------------

SIDE = 64  # image side in px; the AlexNet runs at --input-size 64 to stay fast on a CPU
SMALL = ["--input-size", str(SIDE), "--crop-pct", "1"]


def _images(n: int = 6):
    import cv2
    from robust_eval_fixtures import heldout_digits

    images, _ = heldout_digits(n)
    return [cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR) for img in images]


def _predicted_wnids(weights, images) -> list[str]:
    """Each clean image's label is the class the random AlexNet predicts for it (clean error 0), so
    corruption errors fall between 0 and 1 and differ from cell to cell."""
    import numpy as np
    import torch

    from robust_eval.checkpoints.formats import load_checkpoint

    model, _ = load_checkpoint(weights, data_overrides={"input_size": [3, SIDE, SIDE], "crop_pct": 1.0})
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        return [f"n{int(k):08d}" for k in model(x).argmax(1)]


def _write_tree(folder, images, wnids) -> None:
    import cv2

    for i, (img, w) in enumerate(zip(images, wnids)):
        (folder / w).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / w / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def _write_videos(folder, images, frame) -> None:
    import cv2

    for k, img in enumerate(images):
        path = folder / f"n0000000{k % 2}" / f"{k}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (SIDE, SIDE))
        for i in range(5):
            writer.write(cv2.cvtColor(frame(img, i), cv2.COLOR_RGB2BGR))
        writer.release()


def _imagenet_root(root, weights):
    """ImageNet val (1000 wnid folders), -C (19 corruptions x 5 severities), one -C-bar corruption,
    -P rotate / gaussian_noise (+ its difficulty-2 folder)."""
    import cv2
    import numpy as np

    from robust_eval.constants import ALL_CORRUPTIONS

    images = _images()
    wnids = _predicted_wnids(weights, images)
    for k in range(1000):
        (root / "imagenet" / "val" / f"n{k:08d}").mkdir(parents=True, exist_ok=True)
    _write_tree(root / "imagenet" / "val", images, wnids)
    rng = np.random.default_rng(0)

    def noisy(img, sigma):
        return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)

    for c, name in enumerate(ALL_CORRUPTIONS):
        for s in SEVERITIES:
            cell = [noisy(img, 9.0 * s * (1 + c % 4)) for img in images]
            _write_tree(root / "ImageNet-C" / name / str(s), cell, wnids)
    for s in SEVERITIES:  # -C-bar severity folders are named by parameter value
        _write_tree(
            root / "ImageNet-C-bar" / "blue_noise_sample" / f"{0.1 * s:.2f}",
            [noisy(i, 30.0 * s) for i in images],
            wnids,
        )

    def rotate(img, i):
        return cv2.warpAffine(img, cv2.getRotationMatrix2D((SIDE / 2, SIDE / 2), 9 * i, 1.0), (SIDE, SIDE))

    _write_videos(root / "ImageNet-P" / "rotate", images, rotate)
    _write_videos(root / "ImageNet-P" / "gaussian_noise", images, lambda img, i: noisy(img, 25.0 * (i > 0)))
    _write_videos(root / "ImageNet-P" / "gaussian_noise_2", images, lambda img, i: noisy(img, 50.0 * (i > 0)))
    return root


@pytest.mark.slow
def test_baseline_command_writes_a_file_that_normalizes_its_own_model_to_exactly_100(tmp_path):
    from alexnet_fixtures import write_compact_alexnet

    from robust_eval.constants import ALL_CORRUPTIONS, EXTRA_CORRUPTIONS

    weights = write_compact_alexnet(tmp_path / "alexnet-owt-7be5be79.pth")
    data = _imagenet_root(tmp_path / "data", weights)
    common = ["--data-dir", data, "--out", tmp_path / "out", *SMALL]
    base = tmp_path / "alexnet-baseline.json"
    r = _cli(["baseline", base, "--weights", weights, *common])
    assert r.exit_code == 0, r.output
    assert f"wrote baseline {base} (imagenet): 20 corruptions" in r.stderr
    saved = get_baseline(str(base))  # --baseline's own reader accepts it
    assert saved.dataset == "imagenet" and saved.name.startswith("alexnet-")
    assert set(saved.corruption_errors) == {*ALL_CORRUPTIONS, "blue_noise_sample"}
    assert set(saved.flip_probability) == {
        "rotate",
        "gaussian_noise",
        "rotate_2",
        "rotate_3",
        "gaussian_noise_2",
    }
    assert saved.clean_error == 0.0
    cells = [e for per in saved.corruption_errors.values() for e in per.values()]
    assert len(set(cells)) > 3 and 0.0 <= min(cells) and max(cells) <= 1.0  # not a trivial table
    run = json.loads((tmp_path / "out" / "baseline.json").read_text())  # the run's own result document
    assert run["command"] == "baseline"
    assert saved == Baseline.from_result(run)

    r = _cli(["corruptions", weights, "--baseline", base, "--json", *common])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)["suites"]["corruptions"]["summary"]
    norm = summary["normalized"]
    assert norm["baseline"] == saved.name and norm["mce"] == 100.0  # exactly
    assert norm["ce"] == dict.fromkeys(BENCHMARK_CORRUPTIONS, 100.0)
    assert norm["extras_ce"] == dict.fromkeys(EXTRA_CORRUPTIONS, 100.0)

    args = [
        "perturbations",
        weights,
        "--baseline",
        base,
        "--perturbations",
        "rotate,gaussian_noise",
        "--json",
    ]
    r = _cli([*args, *common])
    assert r.exit_code == 0, r.output
    p = json.loads(r.stdout)["suites"]["perturbations"]
    assert p["normalized"] == {"baseline": saved.name, "mfr": 100.0, "mt5d": 100.0}
    assert p["difficulties"]["2"]["normalized"]["mfr"] == 100.0  # rotate_2 (stride) and gaussian_noise_2
    assert p["difficulties"]["2"]["normalized"]["mt5d"] == 100.0


def test_baseline_command_refusals(env, tmp_path, monkeypatch):
    common = ["--data-dir", env["data"], "--out", tmp_path / "o"]
    monkeypatch.setattr(
        "robust_eval.baseline_cmd.default_weights", lambda: tmp_path / "cache" / "alexnet-owt-7be5be79.pth"
    )
    line = _one_line_error(_cli(["baseline", tmp_path / "b.json", *common]))
    assert "no AlexNet weights at" in line and "nothing is downloaded" in line
    line = _one_line_error(_cli(["baseline", tmp_path / "b.json", "--weights", env["ckpt"], *common]))
    assert "is a robust-eval checkpoint, not torchvision's AlexNet" in line
    both = ["--weights", env["ckpt"], "--checkpoint", env["ckpt"]]
    assert "not both" in _one_line_error(_cli(["baseline", tmp_path / "b.json", *both, *common]))
    line = _one_line_error(
        _cli(["baseline", tmp_path / "o" / "baseline.json", "--checkpoint", env["ckpt"], *common])
    )
    assert "the run's own result" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_baseline_command_with_another_checkpoint_on_cifar(env, tmp_path):
    """--checkpoint: any baseline network, here the CIFAR-10 model on CIFAR-10-C / -C-bar / -P. Its
    error-free corruptions cannot normalize anything: they are left out (said on screen and in the
    file), and normalizing by the file then says which benchmark rows the baseline lacks."""
    base = tmp_path / "c10.json"
    common = ["--data-dir", env["data"], "--out", tmp_path / "o", "--subset", "10"]
    r = _cli(["baseline", base, "--checkpoint", env["ckpt"], *common])
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "o" / "baseline.json").read_text())
    measured = {
        **run["suites"]["corruptions"]["c"]["errors"],
        **run["suites"]["corruptions"]["c_bar"]["errors"],
    }
    perfect = sorted(c for c, per in measured.items() if not any(per.values()))
    saved = get_baseline(str(base))
    assert saved.dataset == "cifar10" and set(saved.corruption_errors) == set(measured) - set(perfect)
    per_p = run["suites"]["perturbations"]["per_perturbation"]
    assert len(measured) == 19 + 10 and {"spatter", "snow"} <= set(per_p)  # every -P set present
    assert set(saved.flip_probability) == {p for p, v in per_p.items() if v["flip_probability"] > 0}
    if perfect:
        assert "left out of the baseline" in r.stderr and all(c in saved.source for c in perfect)
    r = _cli(["corruptions", env["ckpt"], "--baseline", base, "--json", *common])
    assert r.exit_code == 0, r.output
    norm = json.loads(r.stdout)["suites"]["corruptions"]["summary"]["normalized"]
    lacking = [c for c in BENCHMARK_CORRUPTIONS if c in perfect]
    assert norm.get("mce") == (None if lacking else 100.0)
    assert norm.get("error") == (f"baseline lacks {lacking}" if lacking else None)
