"""AlexNet constants, the Baseline record, baseline JSON files (round trip, atomic writes, bad input)."""

from __future__ import annotations

import json
import os

import pytest

from robust_eval import baselines
from robust_eval.baselines import (
    ALEXNET_CLEAN_ERROR,
    ALEXNET_IMAGENET_C_ERRORS,
    Baseline,
    BaselineError,
    get_baseline,
    load_baseline,
    save_baseline,
)
from robust_eval.constants import BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES, TEST_PERTURBATIONS
from robust_eval.metrics import mce_normalized, mean_flip_rate, relative_mce

#: Row means as printed in robustness.md next to the AlexNet table (an independent check of the digits).
DOCUMENTED_ROW_MEANS = {
    "gaussian_noise": 0.886428,
    "shot_noise": 0.894468,
    "impulse_noise": 0.922640,
    "defocus_blur": 0.819880,
    "glass_blur": 0.826268,
    "motion_blur": 0.785948,
    "zoom_blur": 0.798360,
    "snow": 0.866816,
    "frost": 0.826572,
    "fog": 0.819324,
    "brightness": 0.564592,
    "contrast": 0.853204,
    "elastic_transform": 0.646056,
    "pixelate": 0.717840,
    "jpeg_compression": 0.606500,
}


def _example() -> Baseline:
    return Baseline(
        name="vanilla-wrn",
        corruption_errors={
            "fog": [0.1, 0.2, 0.3, 0.4, 0.5],
            "speckle_noise": {"1": 0.11, "2": 0.22, "3": 0.33, "4": 0.44, "5": 0.55},
        },
        clean_error=0.05,
        flip_probability={p: 0.01 * (i + 1) for i, p in enumerate(TEST_PERTURBATIONS)}
        | {"gaussian_noise_2": 0.2},
        top5_distance={"rotate": 0.7, "scale": 14.5},
        source="unit test",
    )


def test_alexnet_table_is_keyed_by_the_benchmark_names_in_order():
    assert tuple(ALEXNET_IMAGENET_C_ERRORS) == BENCHMARK_CORRUPTIONS
    assert ALEXNET_CLEAN_ERROR == 0.43478


@pytest.mark.parametrize("corruption", BENCHMARK_CORRUPTIONS)
def test_alexnet_rows_match_the_documented_means_and_are_counts_of_50000(corruption):
    row = ALEXNET_IMAGENET_C_ERRORS[corruption]
    assert len(row) == 5
    assert sum(row) / 5 == pytest.approx(DOCUMENTED_ROW_MEANS[corruption], abs=5e-7)
    for e in row:
        assert e * 50_000 == pytest.approx(round(e * 50_000), abs=1e-6)


def test_get_baseline_alexnet_is_builtin_case_insensitive_and_a_fresh_copy():
    b = get_baseline("alexnet")
    assert b.name == "alexnet"
    assert b.clean_error == ALEXNET_CLEAN_ERROR
    assert list(b.corruption_errors) == list(BENCHMARK_CORRUPTIONS)
    assert b.corruption_errors["snow"] == dict(zip(SEVERITIES, ALEXNET_IMAGENET_C_ERRORS["snow"]))
    assert b.flip_probability == {}
    assert b.top5_distance == {}
    assert "Hendrycks" in b.source
    b.corruption_errors["snow"][1] = 0.0
    assert get_baseline(" AlexNet ").corruption_errors["snow"][1] == 0.71726


def test_alexnet_baseline_normalizes_itself_to_100():
    b = get_baseline("alexnet")
    assert mce_normalized(b.corruption_errors, b.corruption_errors) == 100.0
    assert relative_mce(b.corruption_errors, b.clean_error, b.corruption_errors, b.clean_error) == 100.0


def test_json_round_trip_uses_string_severities_on_disk_and_ints_in_memory():
    b = _example()
    assert b.corruption_errors["speckle_noise"] == {1: 0.11, 2: 0.22, 3: 0.33, 4: 0.44, 5: 0.55}
    text = b.to_json()
    data = json.loads(text)
    assert data["format"] == "robust_eval.baseline"
    assert data["format_version"] == 1
    assert list(data["corruption_errors"]["fog"]) == ["1", "2", "3", "4", "5"]
    back = Baseline.from_json(text)
    assert back == b
    assert all(isinstance(s, int) for s in back.corruption_errors["fog"])
    assert Baseline.from_dict(b.to_dict()) == b


def test_save_then_get_baseline_by_path(tmp_path):
    path = save_baseline(tmp_path / "sub" / "b.json", _example())
    assert path == tmp_path / "sub" / "b.json"
    assert get_baseline(str(path)) == _example()
    assert load_baseline(path) == _example()
    assert os.listdir(path.parent) == ["b.json"]  # no temp file left behind


def test_saved_baseline_normalizes_a_model_identical_to_it(tmp_path):
    b = get_baseline(str(save_baseline(tmp_path / "b.json", _example())))
    names = ["fog", "speckle_noise"]
    assert mce_normalized(b.corruption_errors, b.corruption_errors, names) == 100.0
    assert mean_flip_rate(b.flip_probability, b.flip_probability) == 100.0
    assert mean_flip_rate(b.top5_distance, b.top5_distance, ["rotate", "scale"]) == 100.0


def test_save_baseline_never_silently_overwrites(tmp_path):
    path = tmp_path / "b.json"
    path.write_text("user data")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        save_baseline(path, _example())
    assert path.read_text() == "user data"
    save_baseline(path, _example(), overwrite=True)
    assert load_baseline(path) == _example()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        save_baseline(tmp_path, _example())


def test_save_baseline_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "b.json"
    save_baseline(path, get_baseline("alexnet"))
    before = path.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(baselines.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_baseline(path, _example(), overwrite=True)
    assert path.read_text() == before
    assert os.listdir(tmp_path) == ["b.json"]


def test_unknown_baseline_name_is_a_clear_error(tmp_path):
    with pytest.raises(BaselineError, match="unknown baseline 'resnet': not a built-in name \\(alexnet\\)"):
        get_baseline("resnet")
    with pytest.raises(BaselineError, match="--save-baseline"):
        get_baseline(str(tmp_path / "missing.json"))
    with pytest.raises(BaselineError, match="does not exist"):
        load_baseline(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"corruption_errors": {"fgo": [0.1] * 5}}, "unknown corruption 'fgo'"),
        ({"corruption_errors": {"fog": [0.1] * 4}}, "list of the 5 errors"),
        ({"corruption_errors": {"fog": {"1": 0.1, "2": 0.1}}}, "lacks severities \\[3, 4, 5\\]"),
        ({"corruption_errors": {"fog": {"6": 0.1}}}, "outside 1..5"),
        ({"corruption_errors": {"fog": {"x": 0.1}}}, "not one of 1..5"),
        ({"corruption_errors": {"fog": [37.0, 0.1, 0.1, 0.1, 0.1]}}, "0.372 means 37.2%"),
        ({"corruption_errors": {"fog": [None, 0.1, 0.1, 0.1, 0.1]}}, "must be a number"),
        ({"corruption_errors": [0.1]}, "corruption_errors must be a mapping"),
        ({"clean_error": -0.1}, "clean_error"),
        ({"clean_error": True}, "clean_error"),
        ({"flip_probability": {"wobble": 0.1}}, "unknown perturbation 'wobble'"),
        ({"flip_probability": {"wobble_2": 0.1}}, "unknown perturbation 'wobble_2'"),
        ({"flip_probability": {"rotate": 1.5}}, "outside \\[0, 1\\]"),
        ({"top5_distance": {"rotate": 18.5}}, "rank distance in \\[0, 18\\]"),
        ({"name": ""}, "non-empty name"),
        ({"format_version": 2}, "format_version 2 is not supported"),
        ({"format": "something.else"}, "not a baseline"),
        ({"colour": "red"}, "unknown key"),
    ],
)
def test_bad_baseline_content_is_rejected_with_the_culprit_named(tmp_path, change, match):
    data = _example().to_dict() | change
    with pytest.raises(BaselineError, match=match):
        Baseline.from_dict(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match=match) as err:
        get_baseline(str(path))
    assert "bad.json" in str(err.value)  # the file is named too


def test_malformed_files_are_rejected(tmp_path):
    path = tmp_path / "b.json"
    path.write_text("{not json")
    with pytest.raises(BaselineError, match=r"b\.json: baseline is not valid JSON"):
        get_baseline(str(path))
    path.write_text("[1, 2]")
    with pytest.raises(BaselineError, match="must be a JSON object"):
        get_baseline(str(path))
    path.write_text(json.dumps({"format_version": 1}))
    with pytest.raises(BaselineError, match="lacks its 'name'"):
        get_baseline(str(path))
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BaselineError, match="cannot read baseline file"):
        get_baseline(str(path))


def test_alexnet_has_no_errors_for_the_extras_so_normalizing_them_fails_clearly():
    b = get_baseline("alexnet")
    mine = {c: [0.5] * 5 for c in EXTRA_CORRUPTIONS}
    with pytest.raises(ValueError, match=r"baseline_errors lacks 4 .*speckle_noise \(all severities\)"):
        mce_normalized(mine, b.corruption_errors, EXTRA_CORRUPTIONS)


def test_a_baseline_accepts_the_largest_top5_distance_the_metric_reaches():
    """T5D reaches 18 (not 15): the 3 best classes leave the top 5 and the last two move to the front."""
    import numpy as np

    from robust_eval.metrics import top5_distance

    worst = np.array([[[0, 1, 2, 3, 4], [3, 4, 7, 8, 9]]])
    reached = top5_distance(worst, noise=False)
    assert reached == 18.0
    b = Baseline(name="worst", top5_distance={"rotate": reached})
    assert b.top5_distance == {"rotate": 18.0}
    assert Baseline.from_dict(b.to_dict()).top5_distance == {"rotate": 18.0}
